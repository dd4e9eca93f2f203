package relay_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
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

// TestStreamHoldTimeout: a stream of comments only is committed at the hold
// timeout with what came, and its later bytes follow in order.
func TestStreamHoldTimeout(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var b *blocker
	e := newEnv(t, envOptions{keys: 2, hold: 20 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request, id int) {
		streams(map[int][]string{1: {processing, processing, block, okStream}}, b)(w, r, id)
	})
	b = newBlocker(t)
	resp, err := e.do(t, nil, &relay.Call{})
	if err != nil {
		t.Fatal(err)
	}
	// Committed while upstream still waits: the held comments come first.
	head := make([]byte, 2*len(processing))
	if _, err := io.ReadFull(resp.Body, head); err != nil || string(head) != processing+processing {
		t.Fatalf("held bytes %q, %v", head, err)
	}
	b.open()
	rest := readAll(t, resp)
	if rest != okStream || resp.StatusCode != 200 {
		t.Fatalf("after the hold: %d %q, want %q", resp.StatusCode, rest, okStream)
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	equalEvents(t, "StreamFailover", e.obs.failovers, []string{relay.FailoverHoldTimeout})
}

// TestStreamHoldTimeoutClose: a stream committed at the hold timeout and
// closed unread ends its read in flight and frees its key.
func TestStreamHoldTimeoutClose(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	var b *blocker
	e := newEnv(t, envOptions{keys: 1, hold: 10 * time.Millisecond}, func(w http.ResponseWriter, r *http.Request, id int) {
		streams(map[int][]string{1: {processing, block}}, b)(w, r, id)
	})
	b = newBlocker(t)
	resp, err := e.do(t, nil, &relay.Call{})
	if err != nil {
		t.Fatal(err)
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
// is not retried reaches the client with the error's status.
func TestJSONErrorInOK(t *testing.T) {
	body := `{"error":{"code":500,"message":"provider failed"}}`
	e := newEnv(t, envOptions{keys: 2}, answers(map[int]answer{1: {status: 200, body: body}}))
	resp, err := e.do(t, nil, &relay.Call{})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 500 || got != body {
		t.Fatalf("%d %q, want 500 %q", resp.StatusCode, got, body)
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
