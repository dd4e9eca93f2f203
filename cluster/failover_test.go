package cluster

import (
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestEndedRestNotWrittenBackAfterFailover (helper-78): as
// TestEndedRestNotWrittenBackAfterPartition, with the Redis A comes back
// to another server run than the one it left (a failover to an
// up-to-date replica, which holds B's lift). reconcile clears held on the
// new run_id and, run before the first re-read, writes the rest B ended;
// the write deletes B's lift (KEYS[3]) and pushes the rest to every
// replica. Modelled by A's record of the run it left.
func TestEndedRestNotWrittenBackAfterFailover(t *testing.T) {
	srv := redistest.Start(t)
	p := newCutProxy(t, srv.Socket())
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond}
	a, _, _ := running(t, p.url(), o)
	b, recB, _ := running(t, srv.URL(), o)
	c := direct(t, srv.URL())
	until := time.Now().Add(10 * time.Minute).Truncate(time.Millisecond)
	a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "key_limit", Status: 402})
	eventually(t, "the rest is in Redis", func() bool { return c.Exists(ctx, "keygate:rest:ab").Val() == 1 })
	eventually(t, "B has it", func() bool {
		_, ok := recB.find(func(ev Event) bool { return ev.Kind == KeyRest })
		return ok
	})
	eventually(t, "A knows the run", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.run != ""
	})

	p.set(true)
	eventually(t, "A takes Redis for gone", func() bool { return !a.Up() })
	b.Publish(Event{Kind: TrialResult, Key: "1:ab", Until: until, OK: true})
	eventually(t, "B's lift ends the rest in Redis", func() bool { return c.Exists(ctx, "keygate:rest:ab").Val() == 0 })
	a.mu.Lock()
	a.run = "the-old-primary"
	a.mu.Unlock()

	p.set(false)
	eventually(t, "A is back", a.Up)
	time.Sleep(time.Second)
	if c.Exists(ctx, "keygate:rest:ab").Val() != 0 {
		t.Errorf("A wrote back the rest B ended while A was cut off (new run_id): rest:ab in Redis for %v", c.PTTL(ctx, "keygate:rest:ab").Val())
	}
}
