package cluster

import (
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestQuickSnapshotRestoreGetsLaterFactsBack (helper-78): as
// TestSnapshotRestoreGetsLaterFactsBack, with a restart quicker than three
// failed calls (a container restarted by its orchestrator, a failover
// to a replica with an older copy): the replica never takes Redis for
// gone, nothing is dirty, reconcile (and its run_id check) never runs, and
// the epoch the snapshot kept hides the loss.
func TestQuickSnapshotRestoreGetsLaterFactsBack(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond}
	a, _, _ := running(t, srv.URL(), o)
	c := direct(t, srv.URL())
	until := time.Now().Add(10 * time.Minute)
	a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "auth", Status: 401})
	eventually(t, "first rest and epoch written", func() bool { return c.Exists(ctx, "keygate:rest:ab", "keygate:epoch").Val() == 2 })
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	a.Publish(Event{Kind: KeyRest, Key: "2:cd", Until: until, Reason: "auth", Status: 401})
	eventually(t, "second rest written", func() bool { return c.Exists(ctx, "keygate:rest:cd").Val() == 1 })
	srv.Restart()
	eventually(t, "the snapshot is loaded", func() bool { return c.Exists(ctx, "keygate:rest:ab").Val() == 1 })
	eventually(t, "A writes the fact the snapshot lacks", func() bool { return c.Exists(ctx, "keygate:rest:cd").Val() == 1 })
}
