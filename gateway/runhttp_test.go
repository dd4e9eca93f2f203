package gateway

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// chatTransport answers every chat completion with a canned reply and
// counts the calls.
type chatTransport struct{ calls atomic.Int64 }

func (c *chatTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	body := `{"choices":[{"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    r,
	}, nil
}

const fuzzMaxBody = 2048

// newRunServer is a gateway over 3 keys whose upstream is tr.
func newRunServer(t testing.TB, tr http.RoundTripper) *Server {
	t.Helper()
	var entries []keyring.Entry
	for i := 1; i <= 3; i++ {
		entries = append(entries, keyring.Entry{ID: i, Secret: secret.New("sk-or-v1-fuzz0000000000000000000" + string(rune('0'+i)))})
	}
	pool, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := keyring.ByName(keyring.NameRandom, nil)
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}), relay.Options{Transport: tr})
	return New(Options{
		Relay: rl, Strategy: st, BaseURL: base, MaxBodyBytes: fuzzMaxBody,
		Logger: slog.New(slog.DiscardHandler),
		// httptest requests name example.com.
		AllowedHosts: []string{"example.com"},
	})
}

// FuzzRunHandler drives POST /run with arbitrary bodies: never a 5xx; a
// valid body gets 200 with every model answered, anything else a 4xx with
// {"error": "..."} and no upstream call.
func FuzzRunHandler(f *testing.F) {
	for _, tc := range badRunBodies {
		f.Add([]byte(tc.body))
	}
	f.Add([]byte(`{"prompt":"hi","models":["a/b","c/d"],"random_key":false,"params":{"temperature":1}}`))
	f.Add([]byte(`{"prompt":"` + strings.Repeat("x", fuzzMaxBody) + `","models":["a"]}`))
	tr := &chatTransport{}
	s := newRunServer(f, tr)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := tr.calls.Load()
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run", bytes.NewReader(body)))
		calls := tr.calls.Load() - before
		if w.Code >= 500 {
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		valid := len(body) <= fuzzMaxBody && acceptable(body, testMaxModels)
		if !valid {
			var e map[string]string
			if w.Code < 400 || json.Unmarshal(w.Body.Bytes(), &e) != nil || len(e) != 1 || e["error"] == "" || calls != 0 {
				t.Fatalf("invalid %q: status %d, body %s, %d upstream calls; want 4xx {\"error\"} and none", body, w.Code, w.Body, calls)
			}
			if len(body) > fuzzMaxBody && w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("%d-byte body: status %d, want 413", len(body), w.Code)
			}
			return
		}
		var out runResponse
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &out) != nil {
			t.Fatalf("valid %q: status %d, body %s", body, w.Code, w.Body)
		}
		n := int64(len(out.Responses))
		if out.TotalModels != len(out.Responses) || out.Successful != out.TotalModels || out.Failed != 0 || calls != n {
			t.Fatalf("valid %q: %d upstream calls, answer %s", body, calls, w.Body)
		}
	})
}

func TestRunHandlerGetIs405(t *testing.T) {
	tr := &chatTransport{}
	s := newRunServer(t, tr)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPatch} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(m, "/run", nil))
		if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Body.String(), `"error"`) {
			t.Fatalf("%s /run: %d %s, want 405 {\"error\"}", m, w.Code, w.Body)
		}
	}
	if tr.calls.Load() != 0 {
		t.Fatal("upstream called")
	}
}

// TestRunRefusesEncodedBody: a /run body with a Content-Encoding gets 415
// saying so (it was "not UTF-8" for a gzip'd one) and reaches no upstream;
// identity is no encoding.
func TestRunRefusesEncodedBody(t *testing.T) {
	plain := `{"prompt":"hi","models":["a/b"]}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(plain))
	_ = zw.Close()
	for _, tc := range []struct {
		name     string
		encoding []string
		body     []byte
		want     int
	}{
		{"gzip", []string{"gzip"}, gz.Bytes(), http.StatusUnsupportedMediaType},
		{"gzip, case and blanks", []string{" GZip "}, gz.Bytes(), http.StatusUnsupportedMediaType},
		{"identity then br", []string{"identity, br"}, []byte(plain), http.StatusUnsupportedMediaType},
		{"in a second header", []string{"identity", "deflate"}, []byte(plain), http.StatusUnsupportedMediaType},
		{"identity", []string{"identity"}, []byte(plain), http.StatusOK},
		{"empty", []string{""}, []byte(plain), http.StatusOK},
		{"none", nil, []byte(plain), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &chatTransport{}
			s := newRunServer(t, tr)
			req := httptest.NewRequest(http.MethodPost, "/run", bytes.NewReader(tc.body))
			req.Header["Content-Encoding"] = tc.encoding
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			if tc.want == http.StatusOK {
				return
			}
			var e map[string]string
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || !strings.Contains(e["error"], "Content-Encoding") || tr.calls.Load() != 0 {
				t.Errorf("body %s, %d upstream calls: want an error naming Content-Encoding and none", w.Body, tr.calls.Load())
			}
			if got := w.Header().Get("Accept-Encoding"); got != "identity" {
				t.Errorf("Accept-Encoding %q, want identity", got)
			}
		})
	}
}

// TestProcessingLine: a /run's start line counts its models in words, "1
// model" for one (it said "1 models").
func TestProcessingLine(t *testing.T) {
	for n, want := range map[int]string{1: "🔄 Processing 1 model...", 2: "🔄 Processing 2 models...", 32: "🔄 Processing 32 models..."} {
		if got := processingLine(n); got != want {
			t.Errorf("processingLine(%d) = %q, want %q", n, got, want)
		}
	}
}
