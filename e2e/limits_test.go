package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// TestSlowloris: a client that sends its headers a byte at a time does not
// hold up other clients, and is cut off by the server after
// READ_HEADER_TIMEOUT however steadily it trickles; an idle keep-alive
// connection is closed after IDLE_TIMEOUT. Nothing here measures time: a
// cut or a close must happen (a generous deadline only keeps a broken build
// from hanging), and the other clients' requests are ordered between the
// slow client's bytes.
func TestSlowloris(t *testing.T) {
	clk := newClock()
	keys := hdKeys(1)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}})

	t.Run("others served meanwhile", func(t *testing.T) {
		// A header timeout far beyond the test: the slow client stays
		// connected until it completes its headers, and is answered then.
		g := hdStart(t, sim.BaseURL(), keys, clk, "READ_HEADER_TIMEOUT=10m")
		slow, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		headers := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 20) + "\r\n\r\n"
		for i := 0; i < len(headers); i++ {
			if _, err := slow.Write([]byte{headers[i]}); err != nil {
				t.Fatalf("slow client cut after %d of %d header bytes: %v", i, len(headers), err)
			}
			if i == len(headers)-1 {
				break // the headers are complete: the slow client is no longer slow
			}
			r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/v1/models", ""))
			if r.Err != nil || r.Status != http.StatusOK {
				t.Fatalf("a normal client after %d slow header bytes: %d %v", i+1, r.Status, r.Err)
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
		if err != nil {
			t.Fatalf("the slow client, headers complete: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the slow client, headers complete: status %d", resp.StatusCode)
		}
	})

	g := hdStart(t, sim.BaseURL(), keys, clk, "READ_HEADER_TIMEOUT=300ms", "IDLE_TIMEOUT=300ms")
	srv := g.App.Server()
	if srv.ReadHeaderTimeout != 300*time.Millisecond || srv.IdleTimeout != 300*time.Millisecond {
		t.Fatalf("server timeouts %v, %v; want 300ms, 300ms", srv.ReadHeaderTimeout, srv.IdleTimeout)
	}
	addr := strings.TrimPrefix(g.URL, "http://")

	t.Run("slow headers cut", func(t *testing.T) {
		slow, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		type readResult struct {
			n   int
			err error
		}
		cut := make(chan readResult, 1)
		go func() {
			n, err := slow.Read(make([]byte, 1)) // returns when the server hangs up
			cut <- readResult{n, err}
		}()
		// Headers that never end: only the server's header timeout can end
		// this connection. The ticker paces the bytes (so that the header
		// size limit is never reached); it bounds nothing.
		if _, err := io.WriteString(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		hang := time.NewTimer(30 * time.Second)
		defer hang.Stop()
		for {
			if _, err := slow.Write([]byte{'a'}); err != nil {
				break // the server is gone: the read below says how
			}
			r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/v1/models", ""))
			if r.Err != nil || r.Status != http.StatusOK {
				t.Fatalf("a normal client during the slow one: %d %v", r.Status, r.Err)
			}
			if len(cut) > 0 {
				break
			}
			select {
			case <-hang.C:
				t.Fatal("the slow client was never cut off")
			case <-tick.C:
			}
		}
		var got readResult
		select {
		case got = <-cut:
		case <-hang.C:
			t.Fatal("the slow client was never cut off")
		}
		if got.n != 0 || !(errors.Is(got.err, io.EOF) || errors.Is(got.err, syscall.ECONNRESET)) {
			t.Fatalf("slow client: read %d bytes, %v; want the connection closed by the server, no answer", got.n, got.err)
		}
		if r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/v1/models", "")); r.Err != nil || r.Status != http.StatusOK {
			t.Fatalf("a normal client after the slow one was cut: %d %v", r.Status, r.Err)
		}
	})

	t.Run("idle keep-alive closed", func(t *testing.T) {
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
		if resp.Close {
			t.Fatal("the server closes the connection after the answer: nothing left to test")
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// The deadline only keeps the test from hanging: with the default
		// IDLE_TIMEOUT (120s) the connection would still be open then.
		_ = idle.SetReadDeadline(time.Now().Add(30 * time.Second))
		if b, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection: read %q, %v; want it closed by the server", b, err)
		}
	})
}
