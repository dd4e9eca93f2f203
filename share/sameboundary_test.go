package share

import (
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/fault"
)

// TestSameBoundaryRestAfterLiftStands: a key's cap rest (until its
// reset, a fixed boundary) is lifted early on replica a (a poll showed
// credit) and right after, the cap is spent again: a rests the key until
// the same boundary. The new rest has the lifted one's deadline to the
// millisecond, and the lift's fact stays in Redis a minute: when the
// re-read delivers it after the rest (Redis' SMEMBERS order: the rest's
// index entry was still there from the lifted rest), it ends the new rest
// again on every replica, each second, for up to a minute: the spent key
// back in rotation, a 402 per call. Racy (about half the rounds fail), so
// four rounds.
func TestSameBoundaryRestAfterLiftStands(t *testing.T) {
	for round := 0; round < 4 && !t.Failed(); round++ {
		sameBoundaryRound(t)
	}
}

func sameBoundaryRound(t *testing.T) {
	rs := redistest.Start(t)
	a, ka := lonePairReplica(t, rs.URL())
	b, kb := lonePairReplica(t, rs.URL())
	reset := time.Now().Add(time.Hour).Truncate(time.Hour)
	a.RestKey(ka[0], fault.KeyLimit, http.StatusPaymentRequired, reset)
	waitBack(t, "the cap rest reaches b", func() bool { r, _, _ := b.Rest(kb[0]); return r == fault.KeyLimit })
	a.Lift(ka[0], fault.KeyLimit)
	a.RestKey(ka[0], fault.KeyLimit, http.StatusPaymentRequired, reset) // spent again at once
	time.Sleep(300 * time.Millisecond)
	gone := map[string]int{}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		if r, _, _ := a.Rest(ka[0]); r == fault.NoReason {
			gone["a (learned it)"]++
		}
		if r, _, _ := b.Rest(kb[0]); r == fault.NoReason {
			gone["b"]++
		}
	}
	for name, n := range gone {
		t.Errorf("replica %s: the cap rest learned after the lift was ended by the lift's old fact in %d samples over 1s", name, n)
	}
}
