package cluster

import (
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestMemberOutlivesItsTTL (helper-78): the breaker tells AccountKnown
// once, when it learns a key's account, so a Member fact is published
// once per replica's life. Its Redis key expires MemberTTL (24 h) after
// the write and mine drops it then too: a replica started a day after the
// one that learned it (polls off) no longer rests the key with its
// account, which is what the Member fact was for (helper-76, finding 6).
func TestMemberOutlivesItsTTL(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 50 * time.Millisecond, MemberTTL: time.Second}
	a, _, _ := running(t, srv.URL(), o)
	c := direct(t, srv.URL())
	a.Publish(Event{Kind: Member, Key: "1:ab", Account: "user_A"})
	eventually(t, "the member fact is in Redis", func() bool { return c.Exists(ctx, "keygate:member:ab").Val() == 1 })
	time.Sleep(2500 * time.Millisecond)
	if c.Exists(ctx, "keygate:member:ab").Val() != 1 {
		t.Error("the member fact expired though the replica that learned it still runs: a replica started now does not learn the key's account")
	}
}
