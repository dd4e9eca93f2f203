package cluster

import (
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestEndedRestNotWrittenBackWithoutInfo (helper-78): as
// TestEndedRestNotWrittenBackAfterPartition, on a Redis whose ACL denies
// INFO (a user with -@dangerous, a common least-privilege setting, or a
// managed Redis that renames INFO). runID answers "", reconcile clears
// held every time, and A writes the ended rest back; the rest's write now
// also deletes B's lift (KEYS[3]), so nothing ends it again.
func TestEndedRestNotWrittenBackWithoutInfo(t *testing.T) {
	srv := redistest.Start(t)
	if r, err := srv.Do("ACL", "SETUSER", "default", "-@dangerous"); err != nil || r != "+OK" {
		t.Fatalf("ACL SETUSER: %q %v", r, err)
	}
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

	p.set(true)
	eventually(t, "A takes Redis for gone", func() bool { return !a.Up() })
	b.Publish(Event{Kind: TrialResult, Key: "1:ab", Until: until, OK: true})
	eventually(t, "B's lift ends the rest in Redis", func() bool { return c.Exists(ctx, "keygate:rest:ab").Val() == 0 })

	p.set(false)
	eventually(t, "A is back", a.Up)
	time.Sleep(time.Second)
	if c.Exists(ctx, "keygate:rest:ab").Val() != 0 {
		t.Errorf("A wrote back the rest B ended while A was cut off (INFO denied): rest:ab in Redis for %v", c.PTTL(ctx, "keygate:rest:ab").Val())
	}
}
