package app

import (
	"net/http"
	"testing"
)

// TestKeptKeyLearnsAcrossAReload: a call begun before a reload that kept
// its key, and answered 401 after it, rests the key in the pool in force.
// It used to rest it only in the pool the call began on, which no call
// picks from any more: the revoked key stayed in rotation.
func TestKeptKeyLearnsAcrossAReload(t *testing.T) {
	for _, tt := range []struct {
		name   string
		reload func(a *App)
	}{
		{"a key added", func(a *App) { a.Live.Apply(entries(1, 2, 3), nil, "admin") }},
		{"nothing changed", func(a *App) { a.Live.Apply(entries(1, 2), nil, "sighup") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t)
			a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{}, "KEY_ROTATION=round-robin")
			release := up.holdKey(1)
			up.revoke(1)
			done := make(chan int, 1)
			go func() { done <- chat(t, a.Handler) }()
			<-up.started
			tt.reload(a)
			close(release)
			if code := <-done; code != http.StatusOK {
				t.Fatalf("the call across the reload: %d, want 200 from key 2", code)
			}
			if k := getKeys(t, a.Handler).Keys[0]; k.ID != 1 || k.State != "open" {
				t.Fatalf("key 1 answered 401 across the reload and is %q, want open", k.State)
			}
			for range 4 {
				if code := chat(t, a.Handler); code != http.StatusOK {
					t.Fatalf("a call after: %d, want 200 (key 1 out of rotation)", code)
				}
			}
		})
	}
}
