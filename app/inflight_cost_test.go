package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// TestInFlightCostFollowsItsKey: the cost of an answer that ends after a
// reload is taken off its own key's budget: under the key's new id when
// the reload renumbered it, and off nobody's when its id now names another
// secret. Both were charged by id, to whichever key held it then.
func TestInFlightCostFollowsItsKey(t *testing.T) {
	for _, tt := range []struct {
		name   string
		after  []keyring.Entry // the pool the reload puts in force
		charge int             // the id whose budget the answer's cost goes off, 0 for none
	}{
		{"the id given a new secret", []keyring.Entry{{ID: 1, Secret: secret.New(liveKeys[4])}, {ID: 2, Secret: secret.New(liveKeys[2])}}, 0},
		{"the key renumbered", []keyring.Entry{{ID: 2, Secret: secret.New(liveKeys[2])}, {ID: 3, Secret: secret.New(liveKeys[1])}}, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			started := make(chan struct{}, 1)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path == "/key" {
					_, _ = io.WriteString(w, `{"data":{"limit":5,"limit_remaining":4.5,"usage":0.5,"creator_user_id":"user_`+key[len(key)-4:]+`"}}`)
					return
				}
				if key == liveKeys[1] {
					started <- struct{}{}
					<-release
				}
				_, _ = io.WriteString(w, `{"id":"x","choices":[{"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":0.25}}`)
			}))
			t.Cleanup(up.Close)
			a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{}, "KEY_ROTATION=round-robin")
			done := make(chan int, 1)
			go func() { done <- chat(t, a.Handler) }() // on key 1, held
			<-started
			a.Live.Apply(tt.after, nil, "admin")
			for _, e := range tt.after {
				if _, err := a.Live.Check(context.Background(), e.ID); err != nil {
					t.Fatal(err)
				}
			}
			close(release)
			if code := <-done; code != http.StatusOK {
				t.Fatalf("the call across the reload: %d", code)
			}
			for _, k := range getKeys(t, a.Handler).Keys {
				want := 4.5
				if k.ID == tt.charge {
					want = 4.25
				}
				if k.Budget == nil || k.Budget.LimitRemaining == nil {
					t.Fatalf("key %d has no budget", k.ID)
				}
				if got := *k.Budget.LimitRemaining; got != want {
					t.Errorf("key %d's limit_remaining %v, want %v", k.ID, got, want)
				}
			}
		})
	}
}
