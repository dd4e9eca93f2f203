package relay_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/relay"
)

// checkKeyUntouched fails unless key id is in rotation, closed, and has
// nothing in flight.
func checkKeyUntouched(t *testing.T, e *env, id int) {
	t.Helper()
	if s := e.set.For(e.key(id)).State(); s != breaker.Closed {
		t.Errorf("key %d %v, want closed", id, s)
	}
	if !e.pool.Available(e.key(id), e.clock.Now().UnixNano()) {
		t.Errorf("key %d resting", id)
	}
	if cd := e.obs.cooldownList(); len(cd) != 0 {
		t.Errorf("cooldowns %v", cd)
	}
	if n := e.inFlight(id); n != 0 {
		t.Errorf("key %d in flight %d", id, n)
	}
}

func TestDoTransportError(t *testing.T) {
	tests := []struct {
		name string
		url  func(e *env) string
	}{
		{"refused", func(*env) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln.Close()
			return "http://" + ln.Addr().String() + "/chat/completions"
		}},
		{"hang-up", func(e *env) string { return e.url }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				conn.Close()
			})
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tt.url(e), nil)
			if err != nil {
				t.Fatal(err)
			}
			c := relay.Call{Strategy: first}
			resp, err := e.relay.Do(req, []byte("{}"), &c)
			var ae *relay.AttemptError
			if !errors.As(err, &ae) || resp != nil {
				t.Fatalf("Do = %v, %v; want an *AttemptError", resp, err)
			}
			if ae.Key.ID != 1 || c.Key.ID != 1 {
				t.Errorf("AttemptError.Key %d, Call.Key %d; want 1", ae.Key.ID, c.Key.ID)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, relay.ErrUpstreamTimeout) {
				t.Errorf("transport error %v classified as cancel or timeout", err)
			}
			e.obs.check(t, []int{1}, []upstreamEvent{{1, 0}}, nil)
			checkKeyUntouched(t, e, 1)
		})
	}
}

func TestDoClientGone(t *testing.T) {
	for _, when := range []string{"before the call", "waiting for headers"} {
		t.Run(when, func(t *testing.T) {
			var b *blocker
			e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) { b.wait(r) })
			b = newBlocker(t)
			ctx, cancel := context.WithCancel(t.Context())
			if when == "before the call" {
				cancel()
			} else {
				go func() {
					<-b.arrived
					cancel()
				}()
			}
			c := relay.Call{Strategy: first}
			resp, err := e.relay.Do(e.request(t, ctx), []byte("{}"), &c)
			cancel()
			var ae *relay.AttemptError
			if !errors.Is(err, context.Canceled) || !errors.As(err, &ae) || resp != nil {
				t.Fatalf("Do = %v, %v; want an *AttemptError wrapping context.Canceled", resp, err)
			}
			if errors.Is(err, relay.ErrUpstreamTimeout) {
				t.Errorf("client gone reported as timeout: %v", err)
			}
			e.obs.check(t, []int{1}, []upstreamEvent{{1, relay.StatusClientClosed}}, nil)
			checkKeyUntouched(t, e, 1)
		})
	}
}

func TestDoSilenceBeforeHeaders(t *testing.T) {
	var b *blocker
	e := newEnv(t, envOptions{keys: 2, timeout: 50 * time.Millisecond},
		func(w http.ResponseWriter, r *http.Request, id int) { b.wait(r) })
	b = newBlocker(t)
	c := relay.Call{Strategy: first}
	resp, err := e.relay.Do(e.request(t, t.Context()), nil, &c)
	var ae *relay.AttemptError
	if !errors.Is(err, relay.ErrUpstreamTimeout) || !errors.As(err, &ae) || resp != nil {
		t.Fatalf("Do = %v, %v; want an *AttemptError wrapping ErrUpstreamTimeout", resp, err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("timeout reported as client gone: %v", err)
	}
	e.obs.check(t, []int{1}, []upstreamEvent{{1, 0}}, nil)
	checkKeyUntouched(t, e, 1)
	equalEvents(t, "hits", e.hitsByKey(), []int{1, 0})
}

func TestBodyStallsMidway(t *testing.T) {
	// The headers must arrive within the timeout; on a machine too busy
	// for that, try again with a longer one rather than fail.
	for timeout := 50 * time.Millisecond; ; timeout *= 4 {
		var b *blocker
		e := newEnv(t, envOptions{keys: 1, timeout: timeout}, func(w http.ResponseWriter, r *http.Request, id int) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("data: one\n\n"))
			http.NewResponseController(w).Flush()
			b.wait(r)
		})
		b = newBlocker(t)
		resp, err := e.relay.Do(e.request(t, t.Context()), nil, &relay.Call{Strategy: first})
		if errors.Is(err, relay.ErrUpstreamTimeout) && timeout < 10*time.Second {
			continue
		}
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
		got, err := io.ReadAll(resp.Body)
		if string(got) != "data: one\n\n" {
			t.Errorf("read %q before the stall", got)
		}
		if !errors.Is(err, relay.ErrUpstreamTimeout) {
			t.Errorf("Read after the stall: %v, want ErrUpstreamTimeout", err)
		}
		if e.inFlight(1) != 1 {
			t.Errorf("in flight %d before Close, want 1", e.inFlight(1))
		}
		resp.Body.Close()
		checkKeyUntouched(t, e, 1)
		return
	}
}

func TestBodyClose(t *testing.T) {
	tests := []struct {
		name string
		read bool // to EOF before closing
	}{
		{"after EOF", true},
		{"unread", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
				w.Write([]byte(`{"choices":[]}`))
			})
			resp, err := e.do(t, nil, &relay.Call{})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if tt.read {
				if _, err := io.ReadAll(resp.Body); err != nil {
					t.Fatalf("read: %v", err)
				}
			}
			if n := e.inFlight(1); n != 1 {
				t.Errorf("in flight %d while the body is open, want 1", n)
			}
			for i := range 3 {
				if err := resp.Body.Close(); err != nil {
					t.Errorf("Close #%d: %v", i+1, err)
				}
				if n := e.inFlight(1); n != 0 {
					t.Errorf("in flight %d after Close #%d, want 0", n, i+1)
				}
			}
			equalEvents(t, "upstream closes", e.tr.closes(), [][2]int{{1, 1}})
		})
	}
}
