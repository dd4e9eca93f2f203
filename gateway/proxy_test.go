package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestOutboundHeader: what of a client's headers goes upstream.
func TestOutboundHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out http.Header
	}{
		{"plain headers pass, sharing nothing else",
			http.Header{"Content-Type": {"application/json"}, "User-Agent": {"sdk/1"}, "X-Title": {"app"}},
			http.Header{"Content-Type": {"application/json"}, "User-Agent": {"sdk/1"}, "X-Title": {"app"}}},
		{"no User-Agent: an empty one, so that Go's is not sent",
			http.Header{"Content-Type": {"application/json"}},
			http.Header{"Content-Type": {"application/json"}, "User-Agent": {""}}},
		{"hop-by-hop headers and those Connection names are dropped",
			http.Header{"Connection": {"X-Hop, keep-alive", " x-other "}, "X-Hop": {"1"}, "X-Other": {"2"}, "Keep-Alive": {"5"},
				"Te": {"trailers"}, "Trailer": {"X"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"websocket"},
				"Proxy-Connection": {"keep-alive"}, "User-Agent": {"u"}},
			http.Header{"User-Agent": {"u"}}},
		{"forwarding headers pass, even when Connection names them",
			http.Header{"Connection": {"X-Forwarded-For"}, "X-Forwarded-For": {"10.0.0.1"}, "Forwarded": {"for=10.0.0.1"}, "User-Agent": {"u"}},
			http.Header{"X-Forwarded-For": {"10.0.0.1"}, "Forwarded": {"for=10.0.0.1"}, "User-Agent": {"u"}}},
		{"credentials, Accept-Encoding and Expect are dropped",
			http.Header{"Authorization": {"Bearer x"}, "X-Api-Key": {"k"}, "Cookie": {"c"}, "Proxy-Authorization": {"p"},
				"Accept-Encoding": {"gzip"}, "Expect": {"100-continue"}, "Idempotency-Key": {"i"}, "User-Agent": {"u"}},
			http.Header{"Idempotency-Key": {"i"}, "User-Agent": {"u"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.in.Clone()
			if got := outboundHeader(tc.in); !reflect.DeepEqual(got, tc.out) {
				t.Fatalf("got %v, want %v", got, tc.out)
			}
			if !reflect.DeepEqual(tc.in, before) {
				t.Fatalf("the client's header changed: %v", tc.in)
			}
		})
	}
}

// TestAddHeader: values are added after those there, and a slice already
// in dst is never appended to in place.
func TestAddHeader(t *testing.T) {
	shared := make([]string, 1, 4)
	shared[0] = "a"
	dst := http.Header{"Vary": shared}
	addHeader(dst, http.Header{"Vary": {"b"}, "X-New": {"c"}})
	if want := (http.Header{"Vary": {"a", "b"}, "X-New": {"c"}}); !reflect.DeepEqual(dst, want) {
		t.Fatalf("got %v, want %v", dst, want)
	}
	if full := shared[:2]; full[1] != "" {
		t.Fatalf("the shared slice was written to: %q", full)
	}
}

// TestTraceKey: the context key httptrace looks a request's trace up by
// was learnt, and an exchange's context answers it with its own trace.
func TestTraceKey(t *testing.T) {
	if traceKey == nil {
		t.Fatal("httptrace's context key was not learnt")
	}
	xc := &exchangeCtx{Context: t.Context()}
	if got := httptrace.ContextClientTrace(xc); got != &xc.ex.info.trace {
		t.Fatalf("the exchange's context gives trace %p, want its own %p", got, &xc.ex.info.trace)
	}
}

// toServer sends every request to the test server at base, whatever its
// URL's host, through keygate's own transport.
type toServer struct {
	base *url.URL
	rt   http.RoundTripper
}

func (s toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	r.URL.Scheme, r.URL.Host = s.base.Scheme, s.base.Host
	return s.rt.RoundTrip(r)
}

// proxyTo is keygate over the upstream handler h, served over loopback.
func proxyTo(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	base, _ := url.Parse(up.URL)
	tr := relay.NewTransport(0)
	t.Cleanup(tr.CloseIdleConnections)
	s, _ := newAccessServer(t, toServer{base: base, rt: tr}, "text", slog.LevelWarn)
	gw := httptest.NewServer(s)
	t.Cleanup(gw.Close)
	return gw
}

// wantChoices sends req and wants the upstream's answer, a 200 with an
// empty choices list, read whole (so that its trailers are in).
func wantChoices(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"choices":[]}` {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	return resp
}

// TestProxyPassesEarlyHints: a 1xx answer from upstream reaches the
// client, its headers masked, and its headers are not the final answer's.
func TestProxyPassesEarlyHints(t *testing.T) {
	gw := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.Header().Set("X-Echo", "key "+accessKeys[1])
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Del("X-Echo")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[]}`)
	}))
	var mu sync.Mutex
	var hints []textproto.MIMEHeader
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	req = req.WithContext(httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			if code == http.StatusEarlyHints {
				hints = append(hints, h)
			}
			return nil
		},
	}))
	resp := wantChoices(t, req)
	if len(hints) != 1 || hints[0].Get("Link") != "</a.css>; rel=preload" {
		t.Fatalf("1xx answers seen: %v, want one 103 with its Link", hints)
	}
	if got := hints[0].Get("X-Echo"); strings.Contains(got, accessKeys[1]) || got == "" {
		t.Fatalf("the 103's X-Echo is %q, want it there with the key masked", got)
	}
	if resp.Header.Get("Link") != "" || resp.Header.Get("X-Echo") != "" {
		t.Fatalf("the 103's headers came with the final answer: %v", resp.Header)
	}
}

// TestProxyTrailers: an answer's trailers reach the client, announced or
// not, and its hop-by-hop headers do not.
func TestProxyTrailers(t *testing.T) {
	gw := proxyTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Announced")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		_, _ = io.WriteString(w, `{"choices":[]}`)
		w.Header().Set("X-Announced", "a")
		w.Header().Set(http.TrailerPrefix+"X-Late", "b")
	}))
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
	resp := wantChoices(t, req)
	if got := resp.Trailer.Get("X-Announced"); got != "a" {
		t.Fatalf("announced trailer %q, want a (trailers %v)", got, resp.Trailer)
	}
	if got := resp.Trailer.Get("X-Late"); got != "b" {
		t.Fatalf("unannounced trailer %q, want b (trailers %v)", got, resp.Trailer)
	}
	if resp.Header.Get("X-Hop") != "" {
		t.Fatalf("a header the answer's Connection names came through: %v", resp.Header)
	}
}

// TestInformationalKeepsHeaders: a 1xx answer carries its own headers, and
// the final answer keeps those set before the call (CORS) but not the 1xx's.
func TestInformationalKeepsHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Access-Control-Allow-Origin", "https://app.example")
	var i informational
	i.start(rec)
	if err := i.got(http.StatusEarlyHints, textproto.MIMEHeader{"Link": {"</a.css>; rel=preload"}}); err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Access-Control-Allow-Origin": {"https://app.example"}}
	if !reflect.DeepEqual(rec.Header(), want) {
		t.Fatalf("headers after the 1xx: %v, want %v", rec.Header(), want)
	}
	i.end()
	if err := i.got(http.StatusEarlyHints, textproto.MIMEHeader{"Link": {"</b.css>"}}); err != nil || rec.Header().Get("Link") != "" {
		t.Fatalf("a 1xx after the final answer began changed its headers: %v", rec.Header())
	}
}

// sdkHeader is what the OpenAI Python SDK sends with a chat call, as the
// server hands it to the handler.
var sdkHeader = http.Header{
	"Accept": {"application/json"}, "Accept-Encoding": {"gzip, deflate"}, "Authorization": {"Bearer gateway-key"},
	"Connection": {"keep-alive"}, "Content-Length": {"95"}, "Content-Type": {"application/json"},
	"User-Agent": {"OpenAI/Python 1.99.1"}, "X-Stainless-Arch": {"x64"}, "X-Stainless-Async": {"false"},
	"X-Stainless-Lang": {"python"}, "X-Stainless-Os": {"Linux"}, "X-Stainless-Package-Version": {"1.99.1"},
	"X-Stainless-Read-Timeout": {"600"}, "X-Stainless-Retry-Count": {"0"}, "X-Stainless-Runtime": {"CPython"},
	"X-Stainless-Runtime-Version": {"3.12.3"},
}

// BenchmarkOutboundHeader is the outbound header of an SDK's call: every
// client header's name is checked for a credential's shape.
func BenchmarkOutboundHeader(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		outboundHeader(sdkHeader)
	}
}

// TestAnswerHeadOneCORSAnswer: with keygate's own CORS headers set for an
// allowed origin, upstream's (OpenRouter answers "*") are not added: a
// browser refuses an answer whose Access-Control-Allow-Origin has two
// values. Without keygate's, upstream's pass as they are.
func TestAnswerHeadOneCORSAnswer(t *testing.T) {
	upstream := func() *http.Response {
		return &http.Response{Header: http.Header{"Access-Control-Allow-Origin": {"*"},
			"Access-Control-Expose-Headers": {"X-Upstream"}, "Content-Type": {"application/json"}}}
	}
	h := http.Header{"Access-Control-Allow-Origin": {"https://app.example"}, "Access-Control-Expose-Headers": {exposed}}
	answerHead(h, upstream(), upstream().Trailer)
	if got := h.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example" {
		t.Errorf("Access-Control-Allow-Origin %q, want keygate's alone", got)
	}
	if got := h.Values("Access-Control-Expose-Headers"); len(got) != 1 || got[0] != exposed {
		t.Errorf("Access-Control-Expose-Headers %q, want keygate's alone", got)
	}
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("the answer's own headers lost: %v", h)
	}
	plain := http.Header{}
	answerHead(plain, upstream(), upstream().Trailer)
	if plain.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("without keygate's CORS, upstream's is gone: %v", plain)
	}
}
