package e2e

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/simulator"
)

// Stream scripts: what one key's upstream writes, piece by piece, each
// flushed. sfBlock waits for the test's gate (or the client's leaving).
const (
	sfBlock      = "\x00block"
	sfProcessing = ": OPENROUTER PROCESSING\n\n"
	sfOK         = "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n" +
		"data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n" +
		"data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n" +
		"data: [DONE]\n\n"
	sfKeyLimit   = `data: {"id":"gen-1","object":"chat.completion.chunk","error":{"code":402,"message":"Key limit exceeded","metadata":{"limit_source":"openrouter_key_limit"}},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}` + "\n\n"
	sfRateLimit  = `data: {"error":{"code":429,"message":"Rate limit exceeded"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}` + "\n\n"
	sfBadRequest = `data: {"error":{"code":400,"message":"context too long"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}` + "\n\n"
)

// sfGate lets blocked upstream scripts go on; open it once.
type sfGate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t testing.TB) *sfGate {
	g := &sfGate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *sfGate) open() { g.once.Do(func() { close(g.ch) }) }

// sfUpstream answers every request made with keys[i] with the stream
// scripts[i] (a key without a script streams sfOK); gone gets one value per
// request whose client went away while it was blocked.
func sfUpstream(t testing.TB, keys []string, scripts map[int][]string, gate *sfGate) (srv *httpServer, log *ptLog, gone chan string) {
	gone = make(chan string, 16)
	up, log := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		pieces := []string{sfOK}
		for i, k := range keys {
			if k == s.Key {
				if p, ok := scripts[i]; ok {
					pieces = p
				}
			}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, p := range pieces {
			if p == sfBlock {
				select {
				case <-gate.ch:
				case <-r.Context().Done():
					gone <- s.Key
					return
				}
				continue
			}
			ptFlushed(w, p)
		}
	})
	return &httpServer{up.URL, up.Close}, log, gone
}

type httpServer struct {
	URL   string
	Close func()
}

func sfRequest(t testing.TB, ctx context.Context, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// TestStreamFailover: through the passthrough, a stream whose first event
// is a key's fault, or that ends before any data, goes on to another key
// and the client sees one clean answer; an error first event that is not
// the key's is an ordinary JSON error answer; after data, an error event
// is passed on unchanged and rests the key.
func TestStreamFailover(t *testing.T) {
	keys := testKeys(2)
	tests := []struct {
		name    string
		scripts map[int][]string
		status  int
		body    string
		key     string
		// rested: keys that must be out of rotation after the call.
		rested []int
		calls  int
	}{
		{name: "key fault first", scripts: map[int][]string{0: {sfProcessing, sfKeyLimit[:30], sfKeyLimit[30:]}},
			status: 200, body: sfOK, key: "2", rested: []int{1}, calls: 2},
		{name: "rate limit first", scripts: map[int][]string{0: {sfRateLimit}},
			status: 200, body: sfOK, key: "2", rested: []int{1}, calls: 2},
		{name: "closed before data", scripts: map[int][]string{0: {sfProcessing, "data: {\"choi"}},
			status: 200, body: sfOK, key: "2", calls: 2},
		{name: "request error first", scripts: map[int][]string{0: {sfProcessing, sfBadRequest}},
			status: 400, body: `{"error":{"code":400,"message":"context too long"}}`, key: "1", calls: 1},
		{name: "closed before data on every key", scripts: map[int][]string{0: {}, 1: {sfProcessing}},
			status: 502, key: "2", calls: 2},
		{name: "late error after data", scripts: map[int][]string{0: {sfOK[:strings.Index(sfOK, "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo")], sfRateLimit}},
			status: 200, key: "1", rested: []int{1}, calls: 1,
			body: sfOK[:strings.Index(sfOK, "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo")] + sfRateLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaks := goleak.IgnoreCurrent()
			up, log, _ := sfUpstream(t, keys, tt.scripts, newGate(t))
			g := hdStart(t, up.URL, keys, newClock(), "KEY_ROTATION=round-robin")
			resp := hdDo(g.Client, sfRequest(t, t.Context(), g.URL))
			if resp.Err != nil {
				t.Fatal(resp.Err)
			}
			if resp.Status != tt.status || resp.Header.Get("X-Keygate-Key") != tt.key {
				t.Fatalf("%d from key %s (%s), want %d from key %s", resp.Status, resp.Header.Get("X-Keygate-Key"), resp.Body, tt.status, tt.key)
			}
			switch {
			case tt.status == 502:
				ptAPIError(t, resp.Response(), resp.Body, 502, "upstream_error")
			case tt.body != string(resp.Body):
				t.Fatalf("body %q, want %q", resp.Body, tt.body)
			case tt.status != 200 && resp.Header.Get("Content-Type") != "application/json":
				t.Fatalf("error answer Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if log.len() != tt.calls {
				t.Errorf("%d upstream calls, want %d", log.len(), tt.calls)
			}
			ptEventually(t, "rests as the fault table says", func() bool {
				ks := ptKeys(t, g.gateway)
				for id := 1; id <= len(keys); id++ {
					want := "closed"
					for _, r := range tt.rested {
						if r == id {
							want = "open"
						}
					}
					if ks[id].State != want {
						return false
					}
				}
				return true
			})
			ptIdle(t, g.gateway)
			g.Close()
			up.Close()
			goleak.VerifyNone(t, leaks)
		})
	}
}

// TestStreamHoldTimeoutCommits: a stream of comments only is committed at
// STREAM_HOLD_TIMEOUT: the client gets the 200 and the comments while
// upstream still waits, then the rest as it comes.
func TestStreamHoldTimeoutCommits(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	keys := testKeys(2)
	gate := newGate(t)
	up, log, _ := sfUpstream(t, keys, map[int][]string{0: {sfProcessing, sfBlock, sfOK}, 1: {sfProcessing, sfBlock, sfOK}}, gate)
	g := hdStart(t, up.URL, keys, newClock(), "STREAM_HOLD_TIMEOUT=30ms")
	resp := ptStart(t, sfRequest(t, t.Context(), g.URL))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %q, want the 200 stream committed", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	if ev := ptNextEvent(t, rd, "the held comment"); ev != sfProcessing {
		t.Fatalf("first bytes %q, want the held comment", ev)
	}
	gate.open()
	rest, err := io.ReadAll(rd)
	if err != nil || string(rest) != sfOK {
		t.Fatalf("rest %q (%v), want %q", rest, err, sfOK)
	}
	resp.Body.Close()
	if log.len() != 1 {
		t.Errorf("%d upstream calls, want 1 (a committed stream is not retried)", log.len())
	}
	ptIdle(t, g.gateway)
	g.Close()
	up.Close()
	goleak.VerifyNone(t, leaks)
}

// TestStreamHoldClientGone: a client that leaves while its stream is held
// cancels the upstream call; no key rests and no other key is tried.
func TestStreamHoldClientGone(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	keys := testKeys(2)
	up, log, gone := sfUpstream(t, keys, map[int][]string{0: {sfProcessing, sfBlock}, 1: {sfProcessing, sfBlock}}, newGate(t))
	g := hdStart(t, up.URL, keys, newClock())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		resp, err := g.Client.Do(sfRequest(t, ctx, g.URL))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	ptEventually(t, "the upstream call", func() bool { return log.len() == 1 })
	cancel()
	if err := ptWait(t, done, "the client's call to end"); err == nil {
		t.Fatal("the client got an answer while its stream was held")
	}
	ptWait(t, gone, "upstream to see the client gone")
	ptIdle(t, g.gateway)
	for id, k := range ptKeys(t, g.gateway) {
		if k.State != "closed" {
			t.Errorf("key %d %s, want closed", id, k.State)
		}
	}
	if log.len() != 1 {
		t.Errorf("%d upstream calls, want 1", log.len())
	}
	g.Close()
	up.Close()
	goleak.VerifyNone(t, leaks)
}

// ptResponse rebuilds an *http.Response for ptAPIError from an hdResult.
func (r hdResult) Response() *http.Response {
	return &http.Response{StatusCode: r.Status, Header: r.Header}
}

// TestStreamHoldSimulator: through the hold, the simulator's streams reach
// the client byte for byte (its body digest trailer matches), a revoked
// key's 401 still goes on to the next key, and a stream that breaks after
// its first event is committed: passed on as it broke, never retried.
func TestStreamHoldSimulator(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	clk := newClock()
	keys := hdKeys(2)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {Status: http.StatusUnauthorized}, keys[1]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk, "KEY_ROTATION=least-busy")
	url := g.URL + "/v1/chat/completions"

	res := hdDo(g.Client, hdRequest(t, http.MethodPost, url, hdChat("sim/chunks=20,chunkdelay=1ms", true)))
	if res.Err != nil || res.Status != 200 || !res.Intact() || res.Header.Get("X-Keygate-Key") != "2" {
		t.Fatalf("stream %d from key %s, intact %v, err %v", res.Status, res.Header.Get("X-Keygate-Key"), res.Intact(), res.Err)
	}
	before := sim.Stats().Keys[keys[1]].Requests
	res = hdDo(g.Client, hdRequest(t, http.MethodPost, url, hdChat("sim/reset", true)))
	if res.Err == nil || res.Status != 200 || !strings.Contains(string(res.Body), "\ndata: ") && !strings.HasPrefix(string(res.Body), "data: ") {
		t.Fatalf("reset stream: %d %q err %v, want the first event, then the break", res.Status, res.Body, res.Err)
	}
	if n := sim.Stats().Keys[keys[1]].Requests - before; n != 1 {
		t.Fatalf("%d upstream calls for a stream broken after its first event, want 1", n)
	}
	ptIdle(t, g.gateway)
	g.Close()
	_ = sim.Close()
	goleak.VerifyNone(t, leaks)
}

// TestStreamHoldSimulatorDirectives: the simulator's OpenRouter-shaped
// stream faults, through the hold: an in-band error first event is an
// ordinary JSON error answer (after every key, for a key's fault), a stream
// with no data goes on to each key once and then is a 502, a stream of
// comments is committed at the hold timeout and arrives whole, and an
// error after data is passed on as it came.
func TestStreamHoldSimulatorDirectives(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	clk := newClock()
	keys := hdKeys(2)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}, keys[1]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk, "STREAM_HOLD_TIMEOUT=100ms")
	url := g.URL + "/v1/chat/completions"
	calls := func() int64 { return sim.Stats().Keys[keys[0]].Requests + sim.Stats().Keys[keys[1]].Requests }
	for _, tc := range []struct {
		model  string
		status int
		calls  int64
		check  func(res hdResult) bool
	}{
		// A JSON error answer announces none of the stream's trailers.
		{"sim/inband=400", 400, 1, func(r hdResult) bool {
			return r.Header.Get("Content-Type") == "application/json" && r.Header.Get("Trailer") == ""
		}},
		{"sim/inband=429", 429, 2, func(r hdResult) bool {
			return r.Header.Get("Content-Type") == "application/json" && r.Header.Get("Trailer") == ""
		}},
		{"sim/nodata", 502, 2, func(r hdResult) bool { return r.Header.Get("Content-Type") == "application/json" }},
		{"sim/hold=400ms,chunks=3", 200, 1, func(r hdResult) bool { return r.Err == nil && r.Intact() }},
		{"sim/errorafter=2", 200, 1, func(r hdResult) bool {
			return r.Err == nil && strings.Contains(string(r.Body), `"finish_reason":"error"`)
		}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			before := calls()
			res := hdDo(g.Client, hdRequest(t, http.MethodPost, url, hdChat(tc.model, true)))
			if res.Status != tc.status || !tc.check(res) {
				t.Fatalf("%d %q (%v), want %d", res.Status, res.Body, res.Err, tc.status)
			}
			if n := calls() - before; n != tc.calls {
				t.Fatalf("%d upstream calls, want %d", n, tc.calls)
			}
			// Rests do not carry over to the next case.
			clk.Advance(time.Hour)
		})
	}
	ptIdle(t, g.gateway)
	g.Close()
	_ = sim.Close()
	goleak.VerifyNone(t, leaks)
}
