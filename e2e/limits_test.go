package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// TestMaxInFlight: past MAX_IN_FLIGHT concurrent requests the gateway
// answers 503 with Retry-After at once, without calling upstream; once the
// requests in flight end it serves again.
func TestMaxInFlight(t *testing.T) {
	var calls atomic.Int64
	arrived := make(chan struct{}, 8)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		arrived <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	g := hdStart(t, up.URL, hdKeys(2), newClock(), "MAX_IN_FLIGHT=2")

	var wg sync.WaitGroup
	results := make(chan hdResult, 2)
	for range 2 {
		wg.Go(func() {
			results <- hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false)))
		})
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the first two requests never reached upstream")
		}
	}
	for _, third := range []*http.Request{
		hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false)),
		hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"p","models":["a/b"]}`),
		hdRequest(t, http.MethodGet, g.URL+"/keys", ""),
	} {
		r := hdDo(g.Client, third)
		if r.Err != nil || r.Status != http.StatusServiceUnavailable {
			t.Fatalf("%s past the cap: %d %v %s", third.URL.Path, r.Status, r.Err, r.Body)
		}
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("%s: Retry-After %q", third.URL.Path, r.Header.Get("Retry-After"))
		}
		var e struct {
			Error struct{ Type string } `json:"error"`
		}
		if json.Unmarshal(r.Body, &e) != nil || e.Error.Type == "" {
			t.Errorf("%s: not an OpenAI-style error: %s", third.URL.Path, r.Body)
		}
	}
	if r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/healthz", "")); r.Status != http.StatusOK {
		t.Errorf("/healthz past the cap: %d", r.Status)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("upstream called %d times, want 2", n)
	}
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r.Err != nil || r.Status != http.StatusOK {
			t.Errorf("a request in flight: %d %v", r.Status, r.Err)
		}
	}
	if r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false))); r.Status != http.StatusOK {
		t.Errorf("after the requests ended: %d %s", r.Status, r.Body)
	}
}

// TestRequestLimits: a body over MAX_BODY_BYTES gets 413 (whether its length
// is declared or not), a /run over RUN_MAX_MODELS 400, a header block over
// 1 MiB 431 — none reaching upstream; and the model label is bounded.
func TestRequestLimits(t *testing.T) {
	clk := newClock()
	keys := hdKeys(1)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk, "MAX_BODY_BYTES=1024", "RUN_MAX_MODELS=2", "METRICS_MAX_MODELS=3")
	big := `{"prompt":"` + strings.Repeat("x", 2000) + `","models":["a/b"]}`
	unsized := func(req *http.Request) *http.Request {
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(big)), -1
		return req
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want int
	}{
		{"v1 body", hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", big), http.StatusRequestEntityTooLarge},
		{"v1 body unsized", unsized(hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", "")), http.StatusRequestEntityTooLarge},
		{"run body", hdRequest(t, http.MethodPost, g.URL+"/run", big), http.StatusRequestEntityTooLarge},
		{"run body unsized", unsized(hdRequest(t, http.MethodPost, g.URL+"/run", "")), http.StatusRequestEntityTooLarge},
		{"run fan-out", hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"p","models":["a","b","c"]}`), http.StatusBadRequest},
		{"headers", hdRequest(t, http.MethodGet, g.URL+"/v1/models", "", "X-Big", strings.Repeat("h", 2<<20)), http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := sim.Stats().Total
			r := hdDo(g.Client, tc.req)
			if r.Err != nil || r.Status != tc.want {
				t.Fatalf("status %d %v, want %d: %.200s", r.Status, r.Err, tc.want, r.Body)
			}
			if n := sim.Stats().Total - before; n != 0 {
				t.Fatalf("%d upstream calls", n)
			}
		})
	}
	for i := range 8 {
		r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("m/"+strconv.Itoa(i), false)))
		if r.Status != http.StatusOK {
			t.Fatalf("model %d: %d", i, r.Status)
		}
	}
	labels := map[string]bool{}
	for _, s := range hdScrape(t, g)["keygate_upstream_requests_total"] {
		labels[string(s.Metric["model"])] = true
	}
	if len(labels) > 4 || !labels["other"] {
		t.Errorf("model labels %v: want at most 3 and other", labels)
	}
}

// TestSlowloris: a client that sends its headers a byte at a time is cut
// off after READ_HEADER_TIMEOUT, while other clients are served; an idle
// keep-alive connection is closed after IDLE_TIMEOUT.
func TestSlowloris(t *testing.T) {
	clk := newClock()
	keys := hdKeys(1)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk, "READ_HEADER_TIMEOUT=1s", "IDLE_TIMEOUT=500ms")
	srv := g.App.Server()
	if srv.ReadHeaderTimeout != time.Second || srv.IdleTimeout != 500*time.Millisecond {
		t.Fatalf("server timeouts %v, %v", srv.ReadHeaderTimeout, srv.IdleTimeout)
	}
	addr := strings.TrimPrefix(g.URL, "http://")

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	cut := make(chan time.Duration, 1)
	go func() {
		_, _ = slow.Read(make([]byte, 1)) // returns when the server hangs up
		cut <- time.Since(start)
	}()
	headers := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 100) + "\r\n\r\n"
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	served := 0
	var took time.Duration
loop:
	for i := 0; i < len(headers); i++ {
		if _, err := slow.Write([]byte{headers[i]}); err != nil {
			break
		}
		r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/v1/models", ""))
		if r.Err != nil || r.Status != http.StatusOK {
			t.Fatalf("a normal client during the slow one: %d %v", r.Status, r.Err)
		}
		served++
		select {
		case took = <-cut:
			break loop
		case <-tick.C:
		}
	}
	if took == 0 {
		select {
		case took = <-cut:
		case <-time.After(3 * time.Second):
			t.Fatal("the slow client was never cut off")
		}
	}
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("slow client cut off after %v, want about 1s", took)
	}
	if served < 3 {
		t.Errorf("only %d normal requests served meanwhile", served)
	}

	// Idle keep-alive: one request, then silence.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start = time.Now()
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want closed by the server", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed after %v, want about 500ms", d)
	}
}
