package app

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
)

// TestCountsInTheReloadWindow: a call that ends while a reload builds its
// snapshot (here while the old poller stops, after the observer follows
// the new pool) counts under its key's new id, and stays counted: the
// series of the ids whose key changed used to be dropped after it, with
// that call's count.
func TestCountsInTheReloadWindow(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2, 3}, Options{}, "KEY_ROTATION=round-robin")
	for range 3 {
		chat(t, a.Handler)
	}
	a.Live.stopRun = func() {
		// The old snapshot is still in force: keys 1, 2 and 3 in turn.
		for range 3 {
			if code := chat(t, a.Handler); code != 200 {
				t.Errorf("a call in the window: %d", code)
			}
		}
	}
	// Key 1 removed: key 2's secret becomes #1, key 3's #2.
	a.Live.Apply([]keyring.Entry{{ID: 1, Secret: entries(2)[0].Secret}, {ID: 2, Secret: entries(3)[0].Secret}}, nil, "test")
	got := scrape(t, a, "keygate_upstream_requests_total")
	for _, id := range []string{`key="1"`, `key="2"`} {
		found := false
		for _, l := range got {
			if strings.Contains(l, id) && !strings.HasSuffix(l, " 0") {
				found = true
			}
		}
		if !found {
			t.Errorf("the call in the window on the key now %s is counted nowhere: %v", id, got)
		}
	}
}
