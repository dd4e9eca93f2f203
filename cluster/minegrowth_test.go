package cluster

import (
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestEndedRestsDoNotPileUpInMine (helper-78): each trial result and
// account back now has a Redis key of its own (per ended rest's
// deadline), so mine gets one entry per ended rest; reconcile drops the
// expired ones only when it writes (dirty), which a healthy replica never
// is. A key resting and coming back all day grows mine (and held) without
// bound.
func TestEndedRestsDoNotPileUpInMine(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 50 * time.Millisecond}
	a, _, _ := running(t, srv.URL(), o)
	old := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 200 {
		u := old.Add(time.Duration(i) * time.Second)
		a.Publish(Event{Kind: TrialResult, Key: "1:ab", Until: u, OK: true})
		a.Publish(Event{Kind: AccountBack, Account: "acct", Reason: "key_limit", Until: u})
	}
	time.Sleep(500 * time.Millisecond)
	a.mu.Lock()
	n, h := len(a.mine), len(a.held)
	a.mu.Unlock()
	if n > 10 || h > 10 {
		t.Errorf("mine holds %d facts, held %d, all of rests ended over half an hour ago", n, h)
	}
}
