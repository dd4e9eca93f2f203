package relay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

func TestDoAnswerNotKeyFault(t *testing.T) {
	for _, code := range []int{200, 201, 400, 404, 500, 503} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 3}, func(w http.ResponseWriter, r *http.Request, id int) {
				if r.URL.Path != "/chat/completions" {
					t.Errorf("upstream path %q", r.URL.Path)
				}
				w.WriteHeader(code)
				w.Write([]byte(`{"key":` + strconv.Itoa(id) + `}`))
			})
			var c relay.Call
			resp, err := e.do(t, nil, &c)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if resp.StatusCode != code {
				t.Errorf("status %d, want %d", resp.StatusCode, code)
			}
			if got := resp.Header.Get("X-Keygate-Key"); got != "1" {
				t.Errorf("X-Keygate-Key %q, want 1", got)
			}
			if e.inFlight(1) != 1 {
				t.Errorf("in flight %d while the body is open, want 1", e.inFlight(1))
			}
			if body := readAll(t, resp); body != `{"key":1}` {
				t.Errorf("body %q", body)
			}
			if c.Key == nil || c.Key.ID != 1 || c.Tried.Len() != 1 || !c.Tried.Has(0) {
				t.Errorf("Call.Key %v, Tried %d keys", c.Key, c.Tried.Len())
			}
			e.obs.check(t, []int{1}, []upstreamEvent{{1, code}}, nil)
			if cd := e.obs.cooldownList(); len(cd) != 0 {
				t.Errorf("cooldowns %v", cd)
			}
			if s := e.set.For(e.key(1)).State(); s != breaker.Closed {
				t.Errorf("key 1 %v, want closed", s)
			}
			equalEvents(t, "hits", e.hitsByKey(), []int{1, 0, 0})
		})
	}
}

func TestDoKeyFaultGoesToNextKey(t *testing.T) {
	tests := []struct {
		status     int
		retryAfter string
		reason     breaker.Reason
		rest       time.Duration
	}{
		{401, "", breaker.Auth, 10 * time.Minute},
		{401, "5", breaker.Auth, 10 * time.Minute}, // auth rests ignore hints
		{402, "", fault.KeyLimit, 10 * time.Minute},
		{429, "", breaker.RateLimit, 30 * time.Second},
		{429, "7", breaker.RateLimit, 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status)+"/"+tt.retryAfter, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 3}, func(w http.ResponseWriter, r *http.Request, id int) {
				if id == 1 {
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					w.WriteHeader(tt.status)
					w.Write([]byte(`{"error":"key fault"}`))
					return
				}
				w.Write([]byte(`{"ok":true}`))
			})
			var retried []int
			c := relay.Call{OnRetry: func(k *keyring.Key) { retried = append(retried, k.ID) }}
			resp, err := e.do(t, nil, &c)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key") != "2" || c.Key.ID != 2 {
				t.Errorf("status %d, X-Keygate-Key %q, Call.Key %d; want 200 from key 2",
					resp.StatusCode, resp.Header.Get("X-Keygate-Key"), c.Key.ID)
			}
			if e.inFlight(1) != 0 {
				t.Errorf("key 1 in flight %d after its fault", e.inFlight(1))
			}
			if body := readAll(t, resp); body != `{"ok":true}` {
				t.Errorf("body %q", body)
			}
			e.obs.check(t, []int{1, 2}, []upstreamEvent{{1, tt.status}, {2, 200}}, []breaker.Reason{tt.reason})
			equalEvents(t, "OnRetry", retried, []int{2})
			equalEvents(t, "Cooldown", e.obs.cooldownList(), []cooldownEvent{{1, tt.reason, tt.status, tt.rest}})
			equalEvents(t, "hits", e.hitsByKey(), []int{1, 1, 0})
			equalEvents(t, "closes", e.tr.closes(), [][2]int{{1, 1}, {2, 1}})
			if !c.Tried.Has(0) || !c.Tried.Has(1) || c.Tried.Len() != 2 {
				t.Errorf("Tried holds %d keys, want slots 0 and 1", c.Tried.Len())
			}
			if s := e.set.For(e.key(1)).State(); s != breaker.Open {
				t.Errorf("key 1 %v, want open", s)
			}
			if s := e.set.For(e.key(2)).State(); s != breaker.Closed {
				t.Errorf("key 2 %v, want closed", s)
			}
		})
	}
}

func TestDoFaultReturnedWhenNoOtherKey(t *testing.T) {
	tests := []struct {
		name  string
		keys  int
		setup func(t *testing.T, e *env)
	}{
		{"one key", 1, func(*testing.T, *env) {}},
		{"other key resting", 2, func(t *testing.T, e *env) { e.rest(t, 2, 429, 0) }},
		{"other key's trial busy", 2, func(t *testing.T, e *env) {
			e.rest(t, 2, 401, 0)
			e.clock.Add(10 * time.Minute)
			if _, err := e.set.For(e.key(2)).Allow(); err != nil { // the trial, kept out
				t.Fatal(err)
			}
		}},
		{"other key already tried", 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: tt.keys}, func(w http.ResponseWriter, r *http.Request, id int) {
				w.WriteHeader(http.StatusTooManyRequests)
				w.Write([]byte("slow down"))
			})
			var c relay.Call
			if tt.setup != nil {
				tt.setup(t, e)
			} else {
				c.Tried.Add(e.key(2).Slot())
			}
			retried := 0
			c.OnRetry = func(*keyring.Key) { retried++ }
			resp, err := e.do(t, nil, &c)
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if resp.StatusCode != 429 || resp.Header.Get("X-Keygate-Key") != "1" {
				t.Errorf("status %d from key %q, want 429 from key 1", resp.StatusCode, resp.Header.Get("X-Keygate-Key"))
			}
			if body := readAll(t, resp); body != "slow down" {
				t.Errorf("body %q", body)
			}
			e.obs.check(t, []int{1}, []upstreamEvent{{1, 429}}, nil)
			if retried != 0 {
				t.Errorf("OnRetry called %d times", retried)
			}
			equalEvents(t, "Cooldown", e.obs.cooldownList(), []cooldownEvent{{1, breaker.RateLimit, 429, 30 * time.Second}})
			if e.inFlight(1) != 0 {
				t.Errorf("key 1 in flight %d after Close", e.inFlight(1))
			}
		})
	}
}

func TestDoAllKeysFault(t *testing.T) {
	statuses := []int{401, 429, 402}
	e := newEnv(t, envOptions{keys: 3}, func(w http.ResponseWriter, r *http.Request, id int) {
		w.WriteHeader(statuses[id-1])
		w.Write([]byte("answer of key " + strconv.Itoa(id)))
	})
	var retried []int
	c := relay.Call{OnRetry: func(k *keyring.Key) { retried = append(retried, k.ID) }}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	// The earlier answers were closed before Do returned; the last is open.
	equalEvents(t, "closes before reading", e.tr.closes(), [][2]int{{1, 1}, {2, 1}, {3, 0}})
	if resp.StatusCode != 402 || resp.Header.Get("X-Keygate-Key") != "3" || c.Key.ID != 3 {
		t.Errorf("status %d from key %q, want 402 from key 3", resp.StatusCode, resp.Header.Get("X-Keygate-Key"))
	}
	if body := readAll(t, resp); body != "answer of key 3" {
		t.Errorf("body %q", body)
	}
	equalEvents(t, "closes after Close", e.tr.closes(), [][2]int{{1, 1}, {2, 1}, {3, 1}})
	equalEvents(t, "hits", e.hitsByKey(), []int{1, 1, 1})
	equalEvents(t, "OnRetry", retried, []int{2, 3})
	e.obs.check(t, []int{1, 2, 3}, []upstreamEvent{{1, 401}, {2, 429}, {3, 402}},
		[]breaker.Reason{breaker.Auth, breaker.RateLimit})
	if c.Tried.Len() != 3 {
		t.Errorf("Tried holds %d keys", c.Tried.Len())
	}
	for _, k := range e.pool.Keys() {
		if e.inFlight(k.ID) != 0 {
			t.Errorf("key %d in flight %d", k.ID, e.inFlight(k.ID))
		}
	}
}

func TestDoNoKey(t *testing.T) {
	e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
		t.Errorf("upstream called with key %d", id)
	})
	e.rest(t, 1, 401, 0)              // back in 10m
	e.rest(t, 2, 429, 20*time.Second) // back in 20s: the first
	for _, passed := range []time.Duration{0, 5 * time.Second, 19 * time.Second} {
		t.Run(passed.String(), func(t *testing.T) {
			e.clock.Add(passed - (e.clock.Now().Sub(epoch)))
			var c relay.Call
			resp, err := e.do(t, nil, &c)
			var nk *relay.NoKeyError
			if !errors.As(err, &nk) || resp != nil {
				t.Fatalf("Do = %v, %v; want a *NoKeyError", resp, err)
			}
			if want := 20*time.Second - passed; nk.RetryAfter != want {
				t.Errorf("RetryAfter %v, want %v", nk.RetryAfter, want)
			}
			if c.Key != nil {
				t.Errorf("Call.Key %d with no attempt", c.Key.ID)
			}
		})
	}
	e.obs.check(t, nil, nil, nil)
}

func TestDoUsesFirstLease(t *testing.T) {
	e := newEnv(t, envOptions{keys: 3}, func(w http.ResponseWriter, r *http.Request, id int) {
		if id == 3 {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	var ex keyring.Exclude
	ex.Add(0)
	ex.Add(1)
	lease, err := e.relay.Acquire(first, &ex)
	if err != nil || lease.Key.ID != 3 {
		t.Fatalf("Acquire = %v, %v; want key 3", lease.Key, err)
	}
	c := relay.Call{First: lease}
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	readAll(t, resp)
	if resp.StatusCode != 200 || c.Key.ID != 1 {
		t.Errorf("status %d from key %d, want 200 from key 1", resp.StatusCode, c.Key.ID)
	}
	if c.First.Key != nil {
		t.Error("Call.First still set after Do")
	}
	equalEvents(t, "hits", e.hitsByKey(), []int{1, 0, 1})
	e.obs.check(t, []int{3, 1}, []upstreamEvent{{3, 429}, {1, 200}}, []breaker.Reason{breaker.RateLimit})
}

func TestAcquire(t *testing.T) {
	e := newEnv(t, envOptions{keys: 3}, func(http.ResponseWriter, *http.Request, int) {})
	b1 := e.set.For(e.key(1))
	e.rest(t, 1, 429, 0)
	e.clock.Add(30 * time.Second)
	if b1.State() != breaker.HalfOpen {
		t.Fatalf("key 1 %v, want half-open", b1.State())
	}
	var ex keyring.Exclude
	ex.Add(e.key(3).Slot())
	acquire := func(want int) relay.Lease {
		t.Helper()
		l, err := e.relay.Acquire(first, &ex)
		if err != nil || l.Key.ID != want {
			t.Fatalf("Acquire = key %v, %v; want key %d", l.Key, err, want)
		}
		return l
	}
	trial := acquire(1)   // key 1's one trial
	other := acquire(2)   // key 1 refuses: its trial is out
	another := acquire(2) // closed: any number at once
	if ex.Len() != 1 || !ex.Has(e.key(3).Slot()) {
		t.Errorf("Acquire changed the caller's Exclude (%d slots)", ex.Len())
	}
	e.relay.Release(other)
	e.relay.Release(another)
	e.relay.Release(relay.Lease{}) // nothing to release
	e.relay.Release(trial)
	if b1.State() != breaker.HalfOpen {
		t.Errorf("key 1 %v after Release, want half-open", b1.State())
	}
	e.relay.Release(acquire(1)) // the trial is free again

	ex.Add(e.key(2).Slot())
	busy := acquire(1)
	_, err := e.relay.Acquire(first, &ex)
	var nk *relay.NoKeyError
	if !errors.As(err, &nk) || nk.RetryAfter != 0 || !strings.Contains(err.Error(), "busy with its trial call") {
		t.Errorf("Acquire with the only key's trial out = %v, want *NoKeyError, RetryAfter 0, saying the key is busy", err)
	}
	e.relay.Release(busy)
	// Leases given back unused made no call: none counts as a selection
	// (keygate_key_selected_total), which counted all five.
	e.obs.check(t, []int{}, nil, nil)
	for _, k := range e.pool.Keys() {
		if e.inFlight(k.ID) != 0 {
			t.Errorf("key %d in flight %d after leases only", k.ID, e.inFlight(k.ID))
		}
	}
}

func TestDoSendsBodyOnEveryAttempt(t *testing.T) {
	big := bytes.Repeat([]byte(`{"messages":[{"role":"user","content":"0123456789"}]}`), 4096)
	tests := []struct {
		name string
		body []byte
	}{
		{"none", nil},
		{"empty", []byte{}},
		{"small", []byte(`{"model":"m"}`)},
		{"200KB", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct {
				auth        string
				body        []byte
				length      int64
				chunked     bool
				contentType string
			}
			var mu sync.Mutex
			got := map[int]seen{}
			e := newEnv(t, envOptions{keys: 3}, func(w http.ResponseWriter, r *http.Request, id int) {
				var buf bytes.Buffer
				if _, err := buf.ReadFrom(r.Body); err != nil {
					t.Errorf("upstream reading body: %v", err)
				}
				mu.Lock()
				got[id] = seen{r.Header.Get("Authorization"), buf.Bytes(), r.ContentLength,
					slices.Contains(r.TransferEncoding, "chunked"), r.Header.Get("Content-Type")}
				mu.Unlock()
				if id < 3 {
					w.WriteHeader([]int{0, 401, 429}[id])
				}
			})
			req := e.request(t, t.Context())
			req.Header.Set("Authorization", "Bearer client-token")
			req.TransferEncoding = []string{"chunked"}
			resp, err := e.relay.Do(req, tt.body, &relay.Call{Strategy: first})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			readAll(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d, want 200 from key 3", resp.StatusCode)
			}
			for id := 1; id <= 3; id++ {
				s, ok := got[id]
				if !ok {
					t.Fatalf("key %d never called", id)
				}
				if !bytes.Equal(s.body, tt.body) || s.length != int64(len(tt.body)) || s.chunked {
					t.Errorf("key %d: upstream got %d bytes (Content-Length %d, chunked %v), want the %d sent",
						id, len(s.body), s.length, s.chunked, len(tt.body))
				}
				if s.auth != "Bearer "+rawKey(id) {
					t.Errorf("key %d: Authorization %q", id, s.auth)
				}
				if s.contentType != "application/json" {
					t.Errorf("key %d: Content-Type %q", id, s.contentType)
				}
			}
		})
	}
}

// TestDoWritesRequestOnce: an attempt's request, headers and a body that
// fit the transport's write buffer, leaves in one write to the connection,
// a retry's on the next key too. A body net/http does not know to be in
// memory gets its headers flushed ahead of it: a second write system call
// (and packet) on every call.
func TestDoWritesRequestOnce(t *testing.T) {
	tests := []struct {
		name string
		body []byte
	}{
		{"none", nil},
		{"small", []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)},
		{"1KB", bytes.Repeat([]byte("x"), 1<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var writes atomic.Int32
			var d net.Dialer
			dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &writeCounter{Conn: c, n: &writes}, nil
			}
			e := newEnv(t, envOptions{keys: 2, dial: dial}, func(w http.ResponseWriter, r *http.Request, id int) {
				if got, _ := io.ReadAll(r.Body); !bytes.Equal(got, tt.body) {
					t.Errorf("key %d: upstream got %d bytes, want %d", id, len(got), len(tt.body))
				}
				if id == 1 {
					w.WriteHeader(http.StatusUnauthorized)
				}
			})
			for call := 1; call <= 3; call++ {
				resp, err := e.relay.Do(e.request(t, t.Context()), tt.body, &relay.Call{Strategy: first})
				if err != nil {
					t.Fatalf("call %d: %v", call, err)
				}
				readAll(t, resp)
				// The first call is answered 401 on key 1, then 200 on
				// key 2; key 1 rests for the calls after it.
				want := int32(call + 1)
				if got := writes.Load(); got != want {
					t.Errorf("after call %d: %d writes to upstream connections, want %d (one per request)", call, got, want)
				}
			}
		})
	}
}

// writeCounter counts the writes made to a connection.
type writeCounter struct {
	net.Conn
	n *atomic.Int32
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestRetryDoesNotWaitForAStalledFault: a key fault whose body stalls
// halfway is dropped unread, so the retry on the next key goes ahead at
// once; before, it read up to 64 KiB of the failed answer first and sat
// out the silence timeout.
func TestRetryDoesNotWaitForAStalledFault(t *testing.T) {
	e := newEnv(t, envOptions{keys: 2, timeout: time.Hour}, func(w http.ResponseWriter, r *http.Request, id int) {
		if id == 1 {
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":"rate limited, and then `))
			w.(http.Flusher).Flush()
			<-r.Context().Done() // the rest never comes while the client waits
			return
		}
		w.Write([]byte(`{"ok":true}`))
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := e.do(t, nil, &relay.Call{})
		if err != nil {
			t.Errorf("Do: %v", err)
			return
		}
		if body := readAll(t, resp); resp.StatusCode != 200 || body != `{"ok":true}` {
			t.Errorf("got %d %q, want key 2's answer", resp.StatusCode, body)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a hang guard, far beyond any honest run
		t.Fatal("the retry waited on the stalled body of the failed answer")
	}
}

// TestSelectedCountsCalls: a selection is counted for a call made on the
// key, not for a lease: a first lease Do gives back (its key already
// tried) counts nothing, the key the call goes out on once.
func TestSelectedCountsCalls(t *testing.T) {
	e := newEnv(t, envOptions{keys: 3}, func(http.ResponseWriter, *http.Request, int) {})
	lease, err := e.relay.Acquire(first, nil)
	if err != nil || lease.Key.ID != 1 {
		t.Fatalf("Acquire = %v, %v; want key 1", lease.Key, err)
	}
	c := relay.Call{First: lease}
	c.Tried.Add(e.key(1).Slot())
	resp, err := e.do(t, nil, &c)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	e.obs.check(t, []int{2}, []upstreamEvent{{2, 200}}, nil)
}
