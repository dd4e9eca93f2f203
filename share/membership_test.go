package share

import (
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// memberReplica is one replica without a budget poller (BUDGET_POLL_INTERVAL
// =0) on the Redis at url, with three keys, ids 1 to 3.
func memberReplica(t *testing.T, url string) (*breaker.Set, []*keyring.Key) {
	t.Helper()
	return redisReplica(t, cluster.Options{URL: url}, numbered(3, 70))
}

// TestAccountRestReachesSiblingsWithoutPolls: with budget polls off, a
// replica learns which keys share an account from the user_id of error
// bodies only, and the budget figures that tell the others are never
// polled. Replica a learned that keys 1 and 2 are account A's; key 2's
// credit 402 rests the account (10 minutes). The fact reaches replica b,
// which knew no key of account A: none of its keys rested, and b went on
// sending key 1's calls (each a 402 of its own). Replica b must rest key
// 1 and 2, not 3.
func TestAccountRestReachesSiblingsWithoutPolls(t *testing.T) {
	rs := redistest.Start(t)
	a, ka := memberReplica(t, rs.URL())
	b, kb := memberReplica(t, rs.URL())
	a.SetAccount(ka[0], "user_A") // a 429's body named its account
	a.SetAccount(ka[1], "user_A")
	until := time.Now().Add(10 * time.Minute)
	a.RestAccount(ka[1], fault.Credits, http.StatusPaymentRequired, until)
	time.Sleep(500 * time.Millisecond) // the push and a few re-reads
	for i, want := range []bool{true, true, false} {
		r, _, _ := b.Rest(kb[i])
		if got := r == fault.Credits; got != want {
			t.Errorf("replica b: key %d resting for the account's credits = %v, want %v", i+1, got, want)
		}
	}
	// A replica started now learns it too.
	c, kc := memberReplica(t, rs.URL())
	time.Sleep(300 * time.Millisecond)
	if r, _, _ := c.Rest(kc[0]); r != fault.Credits {
		t.Errorf("a replica started later: key 1 not resting for its account's credits (%v)", r)
	}
}
