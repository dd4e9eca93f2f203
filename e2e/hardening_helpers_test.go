package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/simulator"
)

// hdGateway is a gateway whose every connection the test can close: its
// upstream transport and its clients' transport are the test's own, so
// that a goroutine leak check sees only what the gateway itself left.
type hdGateway struct {
	*gateway
	Upstream *http.Transport // the relay's transport
	Client   *http.Client    // a client of the gateway, without compression
}

// hdStart runs keygate against upstream with keys (ids 1..n) on clk, with
// extra settings (NAME=value). Cleanup closes every connection it made.
func hdStart(t testing.TB, upstream string, keys []string, clk *clock, env ...string) *hdGateway {
	t.Helper()
	up := relay.NewTransport(0)
	a, logs := newApp(t, upstream, keys, app.Options{Now: clk.Now, Transport: up}, env...)
	// The app's own http.Server, so that its error log goes to logs too.
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = a.Server()
	srv.Start()
	ct := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 128}
	g := &hdGateway{
		gateway:  &gateway{App: a, URL: srv.URL, Clock: clk, Logs: logs, srv: srv},
		Upstream: up,
		Client:   &http.Client{Transport: ct, Timeout: 30 * time.Second},
	}
	t.Cleanup(g.Close)
	return g
}

// Close closes the clients' connections, the server and the upstream
// connections. It may be called more than once.
func (g *hdGateway) Close() {
	g.Client.CloseIdleConnections()
	g.srv.Close()
	g.Upstream.CloseIdleConnections()
}

// hdSim starts a simulated upstream with the given key profiles on clk.
func hdSim(t testing.TB, clk *clock, keys map[string]simulator.Profile) *simulator.Server {
	t.Helper()
	sim, err := simulator.Start(simulator.Options{Keys: keys, Now: clk.Now, Seed: 7})
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// hdKeys returns n random keys shaped like OpenRouter's: 64 hex digits
// after the public prefix, so that no 12-byte piece of one turns up in
// ordinary output by chance.
func hdKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		keys[i] = "sk-or-v1-" + hex.EncodeToString(b)
	}
	return keys
}

// hdLeak returns the first 12-byte piece of any key found in out.
func hdLeak(out string, keys []string) (string, bool) {
	for _, k := range keys {
		for i := 0; i+12 <= len(k); i++ {
			if w := k[i : i+12]; strings.Contains(out, w) {
				return w, true
			}
		}
	}
	return "", false
}

// hdResult is what a client got: status, headers, body and trailers, or the
// error that cut the exchange short.
type hdResult struct {
	Status  int
	Header  http.Header
	Trailer http.Header
	Body    []byte
	Err     error
}

// hdDo sends req with c and reads the whole answer.
func hdDo(c *http.Client, req *http.Request) hdResult {
	resp, err := c.Do(req)
	if err != nil {
		return hdResult{Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return hdResult{Status: resp.StatusCode, Header: resp.Header, Trailer: resp.Trailer, Body: body, Err: err}
}

// Intact reports whether the body is the one the simulator sent: its
// SHA-256 header (or trailer, on streams) matches.
func (r hdResult) Intact() bool {
	want := r.Header.Get(simulator.HeaderBodySHA256)
	if want == "" {
		want = r.Trailer.Get(simulator.HeaderBodySHA256)
	}
	sum := sha256.Sum256(r.Body)
	return want != "" && want == hex.EncodeToString(sum[:])
}

// hdRequest builds a request; hdr are header name, value pairs.
func hdRequest(t testing.TB, method, url, body string, hdr ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// hdChat is a chat-completion body.
func hdChat(model string, stream bool) string {
	return `{"model":"` + model + `","stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"hello there"}]}`
}

// hdScrape reads /metrics.
func hdScrape(t testing.TB, g *hdGateway) map[string][]*model.Sample {
	t.Helper()
	r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/metrics", ""))
	if r.Err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", r.Status, r.Err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(r.Body)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string][]*model.Sample{}
	for name, mf := range mfs {
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, mf)
		if err != nil {
			t.Fatalf("samples of %s: %v", name, err)
		}
		out[name] = vec
	}
	return out
}

// hdSum adds the samples of a metric whose labels include want.
func hdSum(samples []*model.Sample, want map[string]string) float64 {
	total := 0.0
next:
	for _, s := range samples {
		for k, v := range want {
			if string(s.Metric[model.LabelName(k)]) != v {
				continue next
			}
		}
		total += float64(s.Value)
	}
	return total
}

// hdKeyStates is each key's breaker state by GET /keys, in id order.
func hdKeyStates(t testing.TB, g *hdGateway) []string {
	t.Helper()
	r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/keys", ""))
	var v struct {
		Keys []struct {
			State string `json:"state"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil || len(v.Keys) == 0 {
		t.Fatalf("/keys: %v %s", err, r.Body)
	}
	states := make([]string, len(v.Keys))
	for i, k := range v.Keys {
		states[i] = k.State
	}
	return states
}
