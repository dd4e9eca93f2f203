package relay_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/relay"
)

// block, in a stream script, waits for the test's release or the client's
// leaving before the next piece.
const block = "\x00block"

// streams answers each key with a text/event-stream whose pieces are
// written and flushed one by one; a key not in by streams ok.
func streams(by map[int][]string, b *blocker) handler {
	return func(w http.ResponseWriter, r *http.Request, id int) {
		pieces, ok := by[id]
		if !ok {
			pieces = []string{okStream}
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, p := range pieces {
			if p == block {
				b.wait(r)
				continue
			}
			if _, err := io.WriteString(w, p); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
}

const (
	okStream    = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
	processing  = ": OPENROUTER PROCESSING\n\n"
	keyRL       = `data: {"error":{"code":429,"message":"Rate limit exceeded"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}` + "\n\n"
	badRequest  = `data: {"error":{"code":400,"message":"bad things"},"choices":[{"finish_reason":"error"}]}` + "\n\n"
	noCredits   = `data: {"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_key_limit"}}}` + "\n\n"
	finishError = `data: {"choices":[{"delta":{"content":""},"finish_reason":"error"}]}` + "\n\n"
)

func TestStreamHold(t *testing.T) {
	tests := []struct {
		name string
		keys int
		by   map[int][]string
		// want: the answer's status, body, key; err: the call's error.
		status    int
		body      string
		key       int
		err       error
		failovers []string
		cooldowns []int // keys sent to rest
	}{
		{name: "data first", keys: 2, status: 200, body: okStream, key: 1},
		{name: "data first after comments, cut anywhere", keys: 2,
			by:     map[int][]string{1: {": OPENROUTER", " PROCESSING\r\n\r\n", "da", "ta: {\"choices\":[]}\r", "\n\r\n", "data: [DONE]\n\n"}},
			status: 200, body: ": OPENROUTER PROCESSING\r\n\r\ndata: {\"choices\":[]}\r\n\r\ndata: [DONE]\n\n", key: 1},
		{name: "key fault first goes to the next key", keys: 2,
			by:     map[int][]string{1: {processing, keyRL[:20], keyRL[20:]}},
			status: 200, body: okStream, key: 2, failovers: []string{relay.FailoverErrorEvent}, cooldowns: []int{1}},
		{name: "key fault on every key is the last one's JSON error", keys: 2,
			by:     map[int][]string{1: {noCredits}, 2: {processing, noCredits}},
			status: 402, body: `{"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_key_limit"}}}`, key: 2,
			failovers: []string{relay.FailoverErrorEvent}, cooldowns: []int{1, 2}},
		{name: "other error is an ordinary JSON error", keys: 2,
			by:     map[int][]string{1: {badRequest}},
			status: 400, body: `{"error":{"code":400,"message":"bad things"}}`, key: 1},
		{name: "finish_reason error without an object", keys: 2,
			by:     map[int][]string{1: {finishError}},
			status: 502, body: `{"error":{"message":"upstream stream ended in error","type":"upstream_error","code":502}}`, key: 1},
		{name: "closed before data goes to the next key", keys: 2,
			by:     map[int][]string{1: {processing, "data: {\"cho"}},
			status: 200, body: okStream, key: 2, failovers: []string{relay.FailoverClosedBeforeData}},
		{name: "closed before data on every key", keys: 2,
			by:  map[int][]string{1: {processing}, 2: {}},
			err: relay.ErrClosedBeforeData, failovers: []string{relay.FailoverClosedBeforeData}},
		{name: "a JSON key fault for a stream goes to the next key", keys: 2,
			by:     map[int][]string{1: {"\n", `{"error":{"code":429,"message":"Rate limit exceeded"}}`, "\n"}},
			status: 200, body: okStream, key: 2, failovers: []string{relay.FailoverErrorEvent}, cooldowns: []int{1}},
		{name: "a JSON request error for a stream is an ordinary JSON error", keys: 2,
			by:     map[int][]string{1: {`{"error":{"code":400,"message":"bad things"}}`}},
			status: 400, body: `{"error":{"code":400,"message":"bad things"}}`, key: 1},
		{name: "a JSON answer for a stream passes as it came", keys: 2,
			by:     map[int][]string{1: {`{"choices":[{"message":`, `{"content":"hi"}}]}`}},
			status: 200, body: `{"choices":[{"message":{"content":"hi"}}]}`, key: 1},
		{name: "a cut JSON answer for a stream goes to the next key", keys: 2,
			by:     map[int][]string{1: {`{"choices":[{"message":`}},
			status: 200, body: okStream, key: 2, failovers: []string{relay.FailoverClosedBeforeData}},
		{name: "late error passes unchanged", keys: 2,
			by:     map[int][]string{1: {"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", keyRL}},
			status: 200, body: "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n" + keyRL, key: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaks := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
			e := newEnv(t, envOptions{keys: tt.keys}, streams(tt.by, nil))
			resp, err := e.do(t, nil, &relay.Call{})
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				body := readAll(t, resp)
				if resp.StatusCode != tt.status || body != tt.body || resp.Header.Get("X-Keygate-Key") != itoa(tt.key) {
					t.Fatalf("answer %d %q from key %s, want %d %q from key %d", resp.StatusCode, body, resp.Header.Get("X-Keygate-Key"), tt.status, tt.body, tt.key)
				}
				if tt.status != 200 && (resp.Header.Get("Content-Type") != "application/json" || resp.ContentLength != int64(len(body))) {
					t.Errorf("error answer Content-Type %q, length %d", resp.Header.Get("Content-Type"), resp.ContentLength)
				}
			}
			e.obs.mu.Lock()
			failovers := e.obs.failovers
			e.obs.mu.Unlock()
			equalEvents(t, "StreamFailover", failovers, tt.failovers)
			var rested []int
			for _, c := range e.obs.cooldownList() {
				rested = append(rested, c.key)
			}
			equalEvents(t, "cooldowns", rested, tt.cooldowns)
			for id := 1; id <= tt.keys; id++ {
				if n := e.inFlight(id); n != 0 {
					t.Errorf("key %d in flight %d after the call", id, n)
				}
			}
		})
	}
}

// open lets a blocked upstream go on before the test ends.
func (b *blocker) open() {
	b.opened.Do(func() { close(b.release) })
}

func itoa(id int) string {
	if id == 0 {
		return ""
	}
	return string(rune('0' + id))
}

// committer records what the hold's timeout commits, as the passthrough
// would send it to its client.
type committer struct {
	context.Context
	// looked is closed when the timeout asks for the committer; with
	// none set, Value then answers nil.
	looked chan struct{}
	once   sync.Once
	none   bool
	status int
	held   string
	// done gets one value per commit.
	done chan struct{}
}

func newCommitter(ctx context.Context, none bool) *committer {
	return &committer{Context: ctx, looked: make(chan struct{}), none: none, done: make(chan struct{}, 2)}
}

func (c *committer) Value(key any) any {
	if key == (relay.CommitterKey{}) {
		c.once.Do(func() { close(c.looked) })
		if c.none {
			return nil
		}
		return c
	}
	return c.Context.Value(key)
}

func (c *committer) CommitHeld(resp *http.Response, _ http.Header, held []byte) {
	c.status, c.held = resp.StatusCode, string(held)
	c.done <- struct{}{}
}

// TestStreamHoldTimeout: a stream of comments only is committed at the hold
// timeout while upstream is silent: the committer sends the status and the
// held comments then, and the answer that follows carries the later bytes
// only, in order.
func TestStreamHoldTimeout(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var b *blocker
	e := newEnv(t, envOptions{keys: 2, hold: 20 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request, id int) {
		streams(map[int][]string{1: {processing, processing, block, okStream}}, b)(w, r, id)
	})
	b = newBlocker(t)
	c := newCommitter(t.Context(), false)
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.relay.Do(e.request(t, c), nil, &relay.Call{Strategy: first})
		done <- result{resp, err}
	}()
	// Committed while upstream still waits: the held comments went out.
	<-c.done
	if c.status != 200 || c.held != processing+processing {
		t.Fatalf("committed %d %q, want 200 and the held comments", c.status, c.held)
	}
	b.open()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	rest := readAll(t, res.resp)
	if rest != okStream || res.resp.StatusCode != 200 || len(c.done) != 0 {
		t.Fatalf("after the hold: %d %q (%d more commits), want %q", res.resp.StatusCode, rest, len(c.done), okStream)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	equalEvents(t, "StreamFailover", e.obs.failovers, []string{relay.FailoverHoldTimeout})
}

// TestStreamHoldTimeoutNoCommitter: without a committer (POST /run's
// streamed form) the timeout only commits: the answer comes when the read
// that waited returns, with every byte, and a later error event in it is
// the client's, not a failover.
func TestStreamHoldTimeoutNoCommitter(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var b *blocker
	e := newEnv(t, envOptions{keys: 2, hold: 10 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request, id int) {
		streams(map[int][]string{1: {processing, block, keyRL}}, b)(w, r, id)
	})
	b = newBlocker(t)
	c := newCommitter(t.Context(), true)
	go func() {
		<-c.looked
		b.open()
	}()
	resp, err := e.relay.Do(e.request(t, c), nil, &relay.Call{Strategy: first})
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || body != processing+keyRL {
		t.Fatalf("%d %q, want 200 %q", resp.StatusCode, body, processing+keyRL)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	equalEvents(t, "StreamFailover", e.obs.failovers, []string{relay.FailoverHoldTimeout})
	if e.hitsByKey()[1] != 0 {
		t.Fatal("a committed stream went on to another key")
	}
}

// TestStreamHoldTimeoutClientGone: a stream committed at the hold timeout
// whose client then leaves ends its waiting read with the client's error
// and frees its key.
func TestStreamHoldTimeoutClientGone(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var b *blocker
	e := newEnv(t, envOptions{keys: 1, hold: 10 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request, id int) {
		streams(map[int][]string{1: {processing, block}}, b)(w, r, id)
	})
	b = newBlocker(t)
	ctx, cancel := context.WithCancel(t.Context())
	c := newCommitter(ctx, false)
	go func() {
		<-c.done
		cancel()
	}()
	resp, err := e.relay.Do(e.request(t, c), nil, &relay.Call{Strategy: first})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("body error %v, want context.Canceled", err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if n := e.inFlight(1); n != 0 {
		t.Fatalf("in flight %d after close", n)
	}
}

// TestStreamHoldClientGone: a client that leaves during the hold cancels
// the upstream call, and nothing rests.
func TestStreamHoldClientGone(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var b *blocker
	gone := make(chan struct{})
	e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
		streams(map[int][]string{1: {processing, block}}, b)(w, r, id)
		if r.Context().Err() != nil {
			close(gone)
		}
	})
	b = newBlocker(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-b.arrived
		cancel()
	}()
	_, err := e.relay.Do(e.request(t, ctx), nil, &relay.Call{Strategy: first})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	<-gone
	if len(e.obs.cooldownList()) != 0 || e.hitsByKey()[1] != 0 {
		t.Fatalf("cooldowns %v, hits %v: want none and no second key", e.obs.cooldownList(), e.hitsByKey())
	}
}

// TestJSONErrorInOK: a non-streamed 200 whose body is an error object that
// is not retried reaches the client with the error's status, or as a 502
// when its code is no error status; the same body under an event-stream
// label is judged the same. On a blind call (GET /v1/responses/{id} of a
// failed response) an error object without an error status is the
// resource's own field, and the 200 stands. A completion whose
// finish_reason is "error" but that has its text passes as it came.
func TestJSONErrorInOK(t *testing.T) {
	const failed = `{"id":"resp_1","object":"response","status":"failed","error":{"code":"server_error","message":"The model failed"},"output":[]}`
	for _, tc := range []struct {
		body          string
		status, blind int
	}{
		{`{"error":{"code":500,"message":"provider failed"}}`, 500, 500},
		{`{"error":{"code":"server_error","message":"provider failed"}}`, 502, 200},
		{`{"error":{"message":"provider failed"}}`, 502, 200},
		{failed, 502, 200},
		{`{"id":"gen-1","choices":[{"index":0,"finish_reason":"error","message":{"role":"assistant","content":"partial answer"}}]}`, 200, 200},
	} {
		for _, label := range []string{"application/json", "text/event-stream"} {
			for _, blind := range []bool{false, true} {
				h := answers(map[int]answer{1: {status: 200, body: tc.body}})
				if label == "text/event-stream" {
					h = streams(map[int][]string{1: {tc.body}}, nil)
				}
				e := newEnv(t, envOptions{keys: 2}, h)
				resp, err := e.do(t, nil, &relay.Call{Blind: blind})
				if err != nil {
					t.Fatal(err)
				}
				want := tc.status
				if blind {
					want = tc.blind
				}
				if got := readAll(t, resp); resp.StatusCode != want || got != tc.body {
					t.Errorf("%.40s as %s, blind %v: %d %q, want %d and the body as it came", tc.body, label, blind, resp.StatusCode, got, want)
				}
			}
		}
	}
}

// TestLateFault: an error event after the commit rests the key by the
// fault table, without retry.
func TestLateFault(t *testing.T) {
	e := newEnv(t, envOptions{keys: 2}, streams(nil, nil))
	resp, err := e.do(t, nil, &relay.Call{})
	if err != nil {
		t.Fatal(err)
	}
	late := relay.LateOf(resp)
	readAll(t, resp)
	if late.Event([]byte(`{"choices":[{"delta":{"content":"x"}}]}`)) {
		t.Fatal("a content event counted as an error")
	}
	if !late.Event([]byte(strings.TrimSuffix(strings.TrimPrefix(keyRL, "data: "), "\n\n"))) {
		t.Fatal("an error event not counted")
	}
	cds := e.obs.cooldownList()
	if len(cds) != 1 || cds[0].key != 1 || cds[0].reason != fault.RateLimit {
		t.Fatalf("cooldowns %v, want key 1 for a rate limit", cds)
	}
	if _, err := e.set.For(e.key(1)).Allow(); err == nil {
		t.Fatal("key 1 still allowed after its late 429")
	}
	var zero relay.Late
	if zero.Event([]byte(keyRL)) {
		t.Fatal("the zero Late counted")
	}
}

// TestLateFaultBounds: an error event after the commit is bounded as the
// head's faults are: one client rests at most CLIENT_REST_SHARE of the
// pool with them (a client whose streams end in 429s after a first chunk
// benched every key), and a blind call's rest nothing.
func TestLateFaultBounds(t *testing.T) {
	event := []byte(strings.TrimSuffix(strings.TrimPrefix(keyRL, "data: "), "\n\n"))
	late := func(e *env, c *relay.Call) {
		t.Helper()
		resp, err := e.do(t, nil, c)
		if err != nil {
			t.Fatal(err)
		}
		l := relay.LateOf(resp)
		readAll(t, resp)
		if !l.Event(event) {
			t.Fatal("an error event not counted")
		}
	}
	for _, tt := range []struct {
		name  string
		calls []relay.Call
		want  int // keys resting
	}{
		{"one client, its share of the pool", []relay.Call{{Client: "c"}, {Client: "c"}, {Client: "c"}}, 2},
		{"two clients", []relay.Call{{Client: "a"}, {Client: "a"}, {Client: "b"}}, 3},
		{"blind calls", []relay.Call{{Client: "c", Blind: true}, {Blind: true}}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 4, share: 0.5}, streams(nil, nil))
			for _, c := range tt.calls {
				late(e, &c)
			}
			resting := 0
			for id := 1; id <= 4; id++ {
				if _, err := e.set.For(e.key(id)).Allow(); err != nil {
					resting++
				}
			}
			if resting != tt.want {
				t.Fatalf("%d keys resting after %d late 429s, want %d", resting, len(tt.calls), tt.want)
			}
			// The 429s that rested nothing are not the key's failures in
			// /keys (fault.Verdict.Spared).
			if got := spared(e); got != len(tt.calls)-tt.want {
				t.Errorf("%d verdicts spared, want %d", got, len(tt.calls)-tt.want)
			}
		})
	}
}

// spared counts the key faults e's relay judged that rested nothing.
func spared(e *env) int {
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	n := 0
	for _, v := range e.obs.judged {
		if v.Learns() && v.Spared {
			n++
		}
	}
	return n
}

// TestStreamHoldNoGoroutine: a held stream whose upstream is silent costs
// no goroutine of the relay's: many at once count as many goroutines as as
// many committed streams waiting on their next chunk, and none was started
// by the relay.
func TestStreamHoldNoGoroutine(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	const n = 40
	count := func(script []string, read bool) (perStream float64, dump string) {
		var arrived atomic.Int32
		b := &blocker{release: make(chan struct{}), arrived: make(chan struct{})}
		e := newEnv(t, envOptions{keys: 1}, func(w http.ResponseWriter, r *http.Request, id int) {
			arrived.Add(1)
			streams(map[int][]string{1: script}, b)(w, r, id)
		})
		base := runtime.NumGoroutine()
		var wg sync.WaitGroup
		started := make(chan struct{}, n)
		for range n {
			wg.Go(func() {
				resp, err := e.relay.Do(e.request(t, t.Context()), nil, &relay.Call{Strategy: first})
				started <- struct{}{}
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		for arrived.Load() < n {
			runtime.Gosched()
		}
		if read {
			for range n {
				<-started
			}
		}
		// Every call now waits on its upstream; let the counts settle.
		for prev := -1; prev != runtime.NumGoroutine(); {
			prev = runtime.NumGoroutine()
			time.Sleep(10 * time.Millisecond)
		}
		perStream = float64(runtime.NumGoroutine()-base) / n
		buf := make([]byte, 1<<22)
		dump = string(buf[:runtime.Stack(buf, true)])
		b.opened.Do(func() { close(b.release) })
		wg.Wait()
		return perStream, dump
	}
	held, dump := count([]string{processing, block, okStream}, false)
	if strings.Contains(dump, "created by github.com/keygate/keygate/relay.") {
		t.Fatal("a goroutine started by the relay runs while streams are held")
	}
	committed, _ := count([]string{"data: {\"choices\":[]}\n\n", block, okStream}, true)
	if held > committed+0.5 {
		t.Fatalf("%.2f goroutines per held stream, %.2f per committed one", held, committed)
	}
}

// TestBlindStreamUncoded: a stream fetched rather than asked for (GET
// /v1/responses/{id}?stream=true of a failed response) whose first event
// is an error without an HTTP code is the resource's own state: the 200
// and its events stand, as for the same object in a JSON answer. An
// inference stream's is a 502 of upstream; a coded error is one on both.
func TestBlindStreamUncoded(t *testing.T) {
	const failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"The model failed\"}}}\n\n"
	const finErr = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n"
	for _, tc := range []struct {
		event         string
		status, blind int
	}{
		{failed, 502, 200},
		{finErr, 502, 200},
		{keyRL, 429, 429},
	} {
		for _, blind := range []bool{false, true} {
			e := newEnv(t, envOptions{keys: 1}, streams(map[int][]string{1: {tc.event}}, nil))
			resp, err := e.do(t, nil, &relay.Call{Blind: blind})
			if err != nil {
				t.Fatal(err)
			}
			got := readAll(t, resp)
			want := tc.status
			if blind {
				want = tc.blind
			}
			if resp.StatusCode != want || (want == 200 && got != tc.event) {
				t.Errorf("%.40q, blind %v: %d %q, want %d", tc.event, blind, resp.StatusCode, got, want)
			}
		}
	}
	// Later in the stream, the same: on a blind call it is no error.
	for _, blind := range []bool{false, true} {
		e := newEnv(t, envOptions{keys: 1}, streams(nil, nil))
		resp, err := e.do(t, nil, &relay.Call{Blind: blind})
		if err != nil {
			t.Fatal(err)
		}
		late := relay.LateOf(resp)
		readAll(t, resp)
		if got := late.Event([]byte(`{"error":{"code":"server_error","message":"The model failed"}}`)); got == blind {
			t.Errorf("blind %v: a late uncoded error counted %v", blind, got)
		}
	}
}
