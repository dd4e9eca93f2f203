package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// ptFaulty is an upstream where key 1 answers with a fault while fault is
// set, and every other answer is 200 naming its key.
type ptFaulty struct {
	keys    []string
	fault   atomic.Int32 // status key 1 answers; 0 for success
	hold    chan struct{}
	entered chan struct{}
	holding atomic.Bool // key 1's next success waits on hold
}

func (f *ptFaulty) serve(w http.ResponseWriter, r *http.Request, s ptSeen) {
	if s.Key == f.keys[0] {
		if code := f.fault.Load(); code != 0 {
			w.WriteHeader(int(code))
			_, _ = fmt.Fprintf(w, `{"error":{"message":"key fault","code":%d}}`, code)
			return
		}
		if f.holding.CompareAndSwap(true, false) {
			f.entered <- struct{}{}
			select {
			case <-f.hold:
			case <-r.Context().Done():
				return
			}
		}
	}
	_, _ = fmt.Fprintf(w, "ok key %d", slicesIndex(f.keys, s.Key)+1)
}

// TestKeyAuthFaults checks 401 and 402: the request goes on to another
// key, the key rests for AUTH_FAILURE_COOLDOWN, then comes back with one
// trial at a time, and a successful trial puts it back in rotation.
func TestKeyAuthFaults(t *testing.T) {
	for _, code := range []int{401, 402} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			keys := testKeys(3)
			f := &ptFaulty{keys: keys, hold: make(chan struct{}), entered: make(chan struct{}, 1)}
			f.fault.Store(int32(code))
			up, seen := ptUpstream(t, f.serve)
			gw := startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin", "AUTH_FAILURE_COOLDOWN=5m")
			newCall := func() *http.Request {
				return newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"model":"m"}`)).WithContext(t.Context())
			}
			call := func() (*http.Response, []byte) { return do(t, newCall()) }

			resp, body := call() // round-robin starts at key 1
			id, _ := strconv.Atoi(resp.Header.Get("X-Keygate-Key"))
			if resp.StatusCode != 200 || id < 2 || string(body) != "ok key "+strconv.Itoa(id) {
				t.Fatalf("got %d key %d %q, want 200 from key 2 or 3", resp.StatusCode, id, body)
			}
			if n := seen.len(); n != 2 {
				t.Fatalf("upstream got %d requests, want 2 (key 1, then another)", n)
			}
			ptWantRested(t, gw, 1, gw.Clock.Now().Add(5*time.Minute))
			if got := ptKeys(t, gw)[1].Failures; len(got) != 1 || got[strconv.Itoa(code)] != 1 {
				t.Errorf("key 1 failures %v, want {%d: 1}", got, code)
			}
			for range 30 {
				if resp, _ := call(); resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key") == "1" {
					t.Fatalf("got %d from key %s while key 1 rests", resp.StatusCode, resp.Header.Get("X-Keygate-Key"))
				}
			}
			gw.Clock.Advance(5*time.Minute - time.Second)
			for range 6 {
				call()
			}
			if n := seen.count(keys[0]); n != 1 {
				t.Fatalf("resting key 1 got %d requests, want only the first", n)
			}

			// Rest over, key repaired: one trial at a time.
			gw.Clock.Advance(time.Second + time.Millisecond)
			f.fault.Store(0)
			f.holding.Store(true)
			var trial chan *http.Response
			for i := 0; ; i++ {
				done := make(chan *http.Response, 1)
				go func() {
					r, err := http.DefaultClient.Do(newCall())
					if err == nil {
						r.Body.Close()
					}
					done <- r
				}()
				select {
				case <-f.entered:
					trial = done
				case r := <-done:
					if r.StatusCode != 200 || r.Header.Get("X-Keygate-Key") == "1" {
						t.Fatalf("got %d from key %s before key 1's trial", r.StatusCode, r.Header.Get("X-Keygate-Key"))
					}
					if i < 3 {
						continue
					}
					t.Fatal("key 1 got no trial after its rest")
				}
				break
			}
			if st := ptKeys(t, gw)[1].State; st != "half-open" {
				t.Errorf("key 1 state %q during its trial, want half-open", st)
			}
			for range 9 {
				if resp, _ := call(); resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key") == "1" {
					t.Fatalf("got %d from key %s while key 1's trial is out", resp.StatusCode, resp.Header.Get("X-Keygate-Key"))
				}
			}
			if n := seen.count(keys[0]); n != 2 {
				t.Fatalf("key 1 got %d requests, want the fault and one trial", n)
			}
			close(f.hold)
			if r := ptWait(t, trial, "key 1's trial"); r.StatusCode != 200 || r.Header.Get("X-Keygate-Key") != "1" {
				t.Fatalf("trial got %d from key %s, want 200 from key 1", r.StatusCode, r.Header.Get("X-Keygate-Key"))
			}
			ptWantRested(t, gw, 1, time.Time{})
			for range 12 {
				call()
			}
			if n := seen.count(keys[0]); n != 2+4 {
				t.Errorf("key 1 got %d of 12 round-robin requests after its trial, want 4", n-2)
			}
		})
	}
}

// TestKeyFailedTrialRestsAgain checks that a trial that fails again sends
// the key back to rest, for at least the cooldown.
func TestKeyFailedTrialRestsAgain(t *testing.T) {
	keys := testKeys(2)
	f := &ptFaulty{keys: keys}
	f.fault.Store(401)
	up, seen := ptUpstream(t, f.serve)
	gw := startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin", "AUTH_FAILURE_COOLDOWN=1m")
	for range 4 {
		do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/chat/completions", nil))
	}
	gw.Clock.Advance(time.Minute + time.Millisecond)
	for range 4 {
		if resp, _ := do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/chat/completions", nil)); resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200 from key 2", resp.StatusCode)
		}
	}
	if n := seen.count(keys[0]); n != 2 {
		t.Fatalf("key 1 got %d requests, want the fault and one failed trial", n)
	}
	k := ptKeys(t, gw)[1]
	if k.State != "open" || k.CooldownUntil == nil || k.CooldownUntil.Before(gw.Clock.Now().Add(time.Minute)) {
		t.Errorf("key 1 after a failed trial: %s until %v, want open for at least 1m", k.State, k.CooldownUntil)
	}
}

// TestKeyRateLimitHints checks that a 429 rests the key as long as its
// reset hint says, else RATE_LIMIT_COOLDOWN, and that the request succeeds
// on another key.
func TestKeyRateLimitHints(t *testing.T) {
	for _, tc := range []struct {
		name string
		hint func(h http.Header, now time.Time)
		rest time.Duration
	}{
		{"retry-after seconds", func(h http.Header, _ time.Time) { h.Set("Retry-After", "7") }, 7 * time.Second},
		{"retry-after date", func(h http.Header, now time.Time) {
			h.Set("Retry-After", now.Add(90*time.Second).UTC().Format(http.TimeFormat))
		}, 90 * time.Second},
		{"x-ratelimit-reset ms", func(h http.Header, now time.Time) {
			h.Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(45500*time.Millisecond).UnixMilli(), 10))
		}, 45500 * time.Millisecond},
		{"no hint", func(http.Header, time.Time) {}, 42 * time.Second},
		{"garbage hint", func(h http.Header, _ time.Time) { h.Set("Retry-After", "soon") }, 42 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := testKeys(2)
			var gw *gateway
			up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				if s.Key == keys[0] {
					tc.hint(w.Header(), gw.Clock.Now())
					w.WriteHeader(429)
					return
				}
				ptOK(w, r, s)
			})
			gw = startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin", "RATE_LIMIT_COOLDOWN=42s")
			resp, _ := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{}`)))
			if resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key") != "2" {
				t.Fatalf("got %d from key %s, want 200 from key 2", resp.StatusCode, resp.Header.Get("X-Keygate-Key"))
			}
			until := gw.Clock.Now().Add(tc.rest)
			ptWantRested(t, gw, 1, until)
			ptWantRested(t, gw, 2, time.Time{})
			gw.Clock.Advance(tc.rest - time.Millisecond)
			for range 4 {
				do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/chat/completions", nil))
			}
			if n := seen.count(keys[0]); n != 1 {
				t.Fatalf("key 1 got %d requests during its rest, want 1", n)
			}
			ptWantRested(t, gw, 1, until)
			gw.Clock.Advance(2 * time.Millisecond)
			if k := ptKeys(t, gw)[1]; k.State != "half-open" || k.CooldownUntil != nil {
				t.Errorf("key 1 after its rest: %s until %v, want half-open, null", k.State, k.CooldownUntil)
			}
		})
	}
}

// TestKeyServerErrorsNotRetried checks that 5xx, and a 403 (on OpenRouter
// about the request: moderation, guardrails), is returned as is, on one
// key, which stays in rotation; the failure is counted as not the key's.
func TestKeyServerErrorsNotRetried(t *testing.T) {
	for _, code := range []int{500, 502, 503, 504, 403} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			keys := testKeys(2)
			up, seen := ptUpstream(t, func(w http.ResponseWriter, _ *http.Request, s ptSeen) {
				w.Header().Set("X-Upstream", "yes")
				w.WriteHeader(code)
				_, _ = fmt.Fprintf(w, "down on key %d", slicesIndex(keys, s.Key)+1)
			})
			gw := startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin")
			resp, body := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{}`)))
			if resp.StatusCode != code || string(body) != "down on key 1" || resp.Header.Get("X-Upstream") != "yes" {
				t.Errorf("client got %d %q, want upstream's %d as is", resp.StatusCode, body, code)
			}
			if got := resp.Header.Get("X-Keygate-Key"); got != "1" {
				t.Errorf("X-Keygate-Key %q, want 1", got)
			}
			if n := seen.len(); n != 1 {
				t.Errorf("upstream got %d requests, want 1 (no retry)", n)
			}
			ptWantRested(t, gw, 1, time.Time{})
			if k := ptKeys(t, gw)[1]; k.OtherErrors[strconv.Itoa(code)] != 1 || len(k.Failures) != 0 {
				t.Errorf("key 1 failures %v, other errors %v, want %d counted as not the key's", k.Failures, k.OtherErrors, code)
			}
			do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/chat/completions", nil))
			do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/chat/completions", nil))
			if n := seen.count(keys[0]); n != 2 {
				t.Errorf("key 1 got %d of 3 round-robin requests, want 2 (still in rotation)", n)
			}
		})
	}
}
