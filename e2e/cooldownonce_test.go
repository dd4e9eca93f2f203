package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentRateLimitIsOneCooldown: calls in flight on one key when
// it hits its rate limit all get a 429, a few milliseconds apart. The key
// goes out of rotation once: one keygate_key_cooldowns_total and one 🧊
// line, as for an account's rate limit, not one per call in flight.
func TestConcurrentRateLimitIsOneCooldown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		account bool
		free    bool
	}{{"key", false, false}, {"account", true, false}, {"free models per minute", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var gw atomic.Pointer[gateway]
			up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				time.Sleep(50 * time.Millisecond)
				if g := gw.Load(); g != nil {
					g.Clock.Advance(10 * time.Millisecond) // answers come in one after another
				}
				w.Header().Set("Content-Type", "application/json")
				if tc.account {
					// OpenRouter's own limit: the account rests.
					w.Header().Set("X-RateLimit-Limit", "20")
					w.Header().Set("X-RateLimit-Remaining", "0")
				}
				w.WriteHeader(http.StatusTooManyRequests)
				if tc.free {
					// The account's free-model calls are blocked until the
					// minute ends, whatever call comes in.
					_, _ = io.WriteString(w, `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min. "}}`)
					return
				}
				_, _ = io.WriteString(w, `{"error":{"code":429,"message":"Rate limit exceeded"}}`)
			})
			g := startGateway(t, up.URL, testKeys(1))
			if tc.account {
				g.Breakers.SetAccount(g.Pool.Keys()[0], "user_A")
			}
			gw.Store(g)
			body := []byte(`{"model":"m","messages":[]}`)
			if tc.free {
				body = []byte(`{"model":"m:free","messages":[]}`)
			}
			var wg sync.WaitGroup
			for range 5 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, _ := do(t, newRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", body))
					if resp.StatusCode != http.StatusTooManyRequests {
						t.Errorf("status %d, want 429", resp.StatusCode)
					}
				}()
				time.Sleep(2 * time.Millisecond)
			}
			wg.Wait()
			_, mfs := mtScrape(t, g)
			if n := sumFamily(mfs["keygate_key_cooldowns_total"]); n != 1 {
				t.Errorf("keygate_key_cooldowns_total = %v, want 1", n)
			}
			if n := strings.Count(g.Logs.String(), "🧊"); n != 1 {
				t.Errorf("%d 🧊 lines, want 1:\n%s", n, g.Logs.String())
			}
		})
	}
}
