package relay_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/keygate/keygate/relay"
)

// cancelOnHeaders is a transport that cancels the client's call as soon as
// an answer's headers are in, before its body is read: a client that goes
// away between the two.
type cancelOnHeaders struct {
	inner  http.RoundTripper
	cancel context.CancelFunc
}

func (c cancelOnHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(r)
	c.cancel()
	return resp, err
}

// TestClientGoneDuringErrorBodyRestsNothing: a client that leaves while an
// error answer's body is read leaves the key as it was. The body (a
// provider's 429, a moderation 403) is what tells whose fault the status
// is; judged by the status alone the key rested, and the call went on.
func TestClientGoneDuringErrorBodyRestsNothing(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusUnauthorized, http.StatusPaymentRequired} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(status)
				w.(http.Flusher).Flush()
				<-r.Context().Done() // the body never comes before the client leaves
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			rl := relay.New(e.pool, e.set, relay.Options{Transport: cancelOnHeaders{e.tr, cancel}, Observer: e.obs})
			c := relay.Call{Strategy: first, Client: "c1"}
			resp, err := rl.Do(e.request(t, ctx), nil, &c)
			if resp != nil {
				resp.Body.Close()
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Do: %v, want a cancelled call", err)
			}
			now := e.clock.ns.Load()
			for _, k := range e.pool.Keys() {
				if !e.pool.Available(k, now) {
					t.Errorf("key %d out of rotation after its client left", k.ID)
				}
			}
			equalEvents(t, "cooldowns", e.obs.cooldownList(), nil)
			equalEvents(t, "hits", e.hitsByKey(), []int{1, 0})
			if n := e.inFlight(1); n != 0 {
				t.Errorf("key 1 in flight %d, want 0", n)
			}
			if _, err := e.set.For(e.key(1)).Allow(); err != nil {
				t.Errorf("key 1's breaker refuses the next call: %v", err)
			}
		})
	}
}
