package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestKeysAllFail checks a request on which every key fails: each key is
// tried once, the client gets the last answer as is, and then, every key
// resting, 503 keys_unavailable with Retry-After from the injected clock.
func TestKeysAllFail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		code  int
		rests [3]time.Duration // by key
		hint  bool             // send Retry-After with the rest
	}{
		{"429", 429, [3]time.Duration{50 * time.Second, 30 * time.Second, 70 * time.Second}, true},
		{"401", 401, [3]time.Duration{5 * time.Minute, 5 * time.Minute, 5 * time.Minute}, false},
		{"402", 402, [3]time.Duration{5 * time.Minute, 5 * time.Minute, 5 * time.Minute}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := testKeys(3)
			var healthy atomic.Bool
			up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				id := slicesIndex(keys, s.Key) + 1
				if healthy.Load() {
					ptOK(w, r, s)
					return
				}
				if tc.hint {
					w.Header().Set("Retry-After", strconv.Itoa(int(tc.rests[id-1].Seconds())))
				}
				w.Header().Set("X-Upstream-Key", strconv.Itoa(id))
				w.WriteHeader(tc.code)
				_, _ = fmt.Fprintf(w, `{"error":{"message":"no luck on %d","code":%d}}`, id, tc.code)
			})
			gw := startGateway(t, up.URL, keys, "AUTH_FAILURE_COOLDOWN=5m", "KEY_ROTATION=random")

			payload := ptRandom(32 << 10)
			resp, body := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", payload))
			all := seen.all()
			if len(all) != 3 {
				t.Fatalf("upstream got %d requests, want one per key", len(all))
			}
			for i, k := range keys {
				if n := seen.count(k); n != 1 {
					t.Errorf("key %d tried %d times, want once", i+1, n)
				}
			}
			for i, s := range all {
				if !bytes.Equal(s.Body, payload) || s.Length != int64(len(payload)) {
					t.Errorf("attempt %d: upstream got %d bytes (sha256 %s), want the client's %d", i+1, len(s.Body), ptSum(s.Body), len(payload))
				}
			}
			last := resp.Header.Get("X-Upstream-Key")
			want := fmt.Sprintf(`{"error":{"message":"no luck on %s","code":%d}}`, last, tc.code)
			if resp.StatusCode != tc.code || string(body) != want {
				t.Errorf("client got %d %s, want the last answer %d %s", resp.StatusCode, body, tc.code, want)
			}
			if last != strconv.Itoa(slicesIndex(keys, all[2].Key)+1) || resp.Header.Get("X-Keygate-Key") != last {
				t.Errorf("answer from key %s, X-Keygate-Key %s; want both the last key tried", last, resp.Header.Get("X-Keygate-Key"))
			}

			first := min(tc.rests[0], tc.rests[1], tc.rests[2])
			for _, step := range []time.Duration{0, first / 3} {
				gw.Clock.Advance(step)
				resp, body = do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", payload))
				ptAPIError(t, resp, body, http.StatusServiceUnavailable, "keys_unavailable")
				wait := first
				if step > 0 {
					wait = first - first/3
				}
				if got, want := resp.Header.Get("Retry-After"), strconv.Itoa(int((wait+time.Second-1)/time.Second)); got != want {
					t.Errorf("Retry-After %q, want %q", got, want)
				}
				if got := resp.Header.Get("X-Keygate-Key"); got != "none" {
					t.Errorf("X-Keygate-Key %q, want none", got)
				}
				var e map[string]map[string]any
				if err := json.Unmarshal(body, &e); err != nil || len(e) != 1 || len(e["error"]) != 3 {
					t.Errorf("503 body %s, want exactly {error: {message, type, code}}", body)
				}
			}
			if n := seen.len(); n != 3 {
				t.Errorf("upstream got %d requests, want none while every key rests", n-3)
			}

			healthy.Store(true)
			gw.Clock.Advance(first - first/3)
			resp, _ = do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/chat/completions", nil))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d after the first key's rest ended, want 200", resp.StatusCode)
			}
		})
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestKeyRetryResendsBody checks that a body retried across keys reaches
// upstream whole on every attempt, fixed-length or chunked.
func TestKeyRetryResendsBody(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			keys := testKeys(3)
			faults := map[string]int{keys[0]: 401, keys[1]: 429}
			up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				if code := faults[s.Key]; code != 0 {
					w.WriteHeader(code)
					return
				}
				w.Header().Set("X-Got-Sha256", ptSum(s.Body))
				ptOK(w, r, s)
			})
			gw := startGateway(t, up.URL, keys, "KEY_ROTATION=least-busy")
			payload := ptRandom(256 << 10)
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", payload)
			if chunked {
				req.Body = io.NopCloser(bytes.NewReader(payload))
				req.ContentLength = -1
			}
			resp, _ := do(t, req)
			if resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key") != "3" || resp.Header.Get("X-Got-Sha256") != ptSum(payload) {
				t.Fatalf("got %d from key %s, want 200 from key 3 with the body", resp.StatusCode, resp.Header.Get("X-Keygate-Key"))
			}
			all := seen.all()
			if len(all) != 3 {
				t.Fatalf("upstream got %d attempts, want 3", len(all))
			}
			for i, s := range all {
				if s.Key != keys[i] {
					t.Errorf("attempt %d on the wrong key", i+1)
				}
				if ptSum(s.Body) != ptSum(payload) || s.Length != int64(len(payload)) {
					t.Errorf("attempt %d: upstream got %d bytes, Content-Length %d (sha256 %s), want %d (%s)",
						i+1, len(s.Body), s.Length, ptSum(s.Body), len(payload), ptSum(payload))
				}
			}
		})
	}
}
