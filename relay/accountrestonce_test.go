package relay_test

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestAccountRestAfterKeyRestIsTold: two calls in flight on key 1 of an
// account of two keys. The first gets a plain 429 (key 1 rests); the
// second, moments later, OpenRouter's account limit (X-RateLimit-Remaining:
// 0), which rests the whole account, key 2 too. That is a new rest of key
// 2, and its 🧊 "Account … cooling down" must be told: the cooldown-once
// check takes key 1's own rest for it and says nothing, and key 2 leaves
// rotation silently.
func TestAccountRestAfterKeyRestIsTold(t *testing.T) {
	var n atomic.Int32
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	arrived := make(chan struct{}, 2)
	e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if i > 2 {
			_, _ = io.WriteString(w, `{"choices":[]}`)
			return
		}
		arrived <- struct{}{}
		select {
		case <-release[i-1]:
		case <-r.Context().Done():
			return
		}
		if i == 2 {
			w.Header().Set("X-RateLimit-Limit", "20")
			w.Header().Set("X-RateLimit-Remaining", "0")
		}
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"code":429,"message":"Rate limit exceeded"}}`)
	})
	e.set.SetAccount(e.key(1), "user_A")
	e.set.SetAccount(e.key(2), "user_A")
	var wg sync.WaitGroup
	done := make([]chan struct{}, 2)
	for i := range 2 {
		done[i] = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			resp, err := e.do(t, nil, &relay.Call{})
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}()
		<-arrived // both on key 1, in order
	}
	close(release[0])
	<-done[0]
	close(release[1])
	<-done[1]
	wg.Wait()
	if now := e.clock.Now().UnixNano(); e.pool.Available(e.key(2), now) {
		t.Fatal("key 2 in rotation; the account limit should rest it")
	}
	e.obs.mu.Lock()
	defer e.obs.mu.Unlock()
	t.Logf("cooldowns %v accounts %v", e.obs.cooldowns, e.obs.accounts)
	if len(e.obs.accounts) != 1 {
		t.Errorf("AccountCooldown told %d times, want 1: key 2 went out of rotation for the account's limit unannounced", len(e.obs.accounts))
	}
}
