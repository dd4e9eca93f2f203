package share

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// twoKeyReplica is one replica on the Redis at url with two keys of
// account user_A, ids 1 and 2.
func twoKeyReplica(t *testing.T, url string) (*breaker.Set, []*keyring.Key) {
	t.Helper()
	set, keys := redisReplica(t, cluster.Options{URL: url, TrialTTL: time.Minute}, numbered(2, 40))
	for _, k := range keys {
		set.SetAccount(k, "user_A")
	}
	return set, keys
}

// TestTrialAfterAccountRestReachesOthers: key 1 rests for its own 429
// (a few hundred ms); before that ends, its account rests longer (a
// sibling's 429, learned on replica a). When the account's rest ends, key 1
// is half-open on both replicas (both tripped its breaker). Replica a wins
// the trial token of that rest and its trial succeeds: the fleet's one
// trial of the key. Replica b must take the key back when the result comes,
// as after a key's own rest; it kept it out instead (the result names the
// account rest's deadline, which is not the key's own), asking for the
// token every 250 ms and refused until the token expires (UPSTREAM_TIMEOUT,
// 2 minutes by default).
func TestTrialAfterAccountRestReachesOthers(t *testing.T) {
	rs := redistest.Start(t)
	a, ka := twoKeyReplica(t, rs.URL())
	b, kb := twoKeyReplica(t, rs.URL())

	tr, err := a.For(ka[0]).Allow()
	if err != nil {
		t.Fatal(err)
	}
	tr.Fail(fault.Verdict{Status: http.StatusTooManyRequests, Scope: fault.Key, Reason: fault.RateLimit, Until: time.Now().Add(300 * time.Millisecond)})
	waitBack(t, "the key's rest reaches b", func() bool { r, _, _ := b.Rest(kb[0]); return r == fault.RateLimit })
	accountUntil := time.Now().Add(time.Second)
	a.RestAccount(ka[1], fault.RateLimit, http.StatusTooManyRequests, accountUntil)
	waitBack(t, "the account's rest reaches b", func() bool { _, u := b.AccountRest(kb[1]); return !u.IsZero() })

	time.Sleep(time.Until(accountUntil) + 20*time.Millisecond)
	trial, err := a.For(ka[0]).Allow()
	if err != nil {
		t.Fatalf("replica a: trial of key 1 after the account's rest: %v", err)
	}
	trial.Success()
	time.Sleep(500 * time.Millisecond) // the push, and a few re-reads

	for i := 0; i < 10; i++ {
		got, err := b.For(kb[0]).Allow()
		if err == nil {
			got.Success()
			return
		}
		if !errors.Is(err, breaker.ErrTrialBusy) {
			t.Fatalf("replica b: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("replica b: key 1 still kept out (%v, state %v) 1.5s after replica a's trial of it succeeded", breaker.ErrTrialBusy, b.For(kb[0]).State())
}
