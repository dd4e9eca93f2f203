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
	"github.com/keygate/keygate/secret"
)

// lonePairReplica is one replica on the Redis at url with one key (id 1).
func lonePairReplica(t *testing.T, url string) (*breaker.Set, []*keyring.Key) {
	t.Helper()
	return redisReplica(t, cluster.Options{URL: url, TrialTTL: time.Minute},
		[]keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-" + "c1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a")}})
}

// TestTrialAfterEarlyLiftReachesOthers: a key's long rest (its cap, until
// an hour from now) is lifted early on replica a (a poll or a check showed
// credit): the "back" fact names that hour's deadline and stays in Redis a
// minute. Within that minute the key gets a 429 (a short rest, shared) and,
// when it ends, replica a wins the trial token and its trial succeeds. The
// trial's result names the 429 rest's deadline, earlier than the lift's:
// Redis' script kept the lift's and neither stored nor pushed the trial's,
// so replica b kept the key out (half-open, refused the token every 250 ms)
// until the token expired (UPSTREAM_TIMEOUT, 2 minutes by default).
func TestTrialAfterEarlyLiftReachesOthers(t *testing.T) {
	rs := redistest.Start(t)
	a, ka := lonePairReplica(t, rs.URL())
	b, kb := lonePairReplica(t, rs.URL())

	a.RestKey(ka[0], fault.KeyLimit, http.StatusPaymentRequired, time.Now().Add(time.Hour))
	waitBack(t, "the cap rest reaches b", func() bool { r, _, _ := b.Rest(kb[0]); return r == fault.KeyLimit })
	a.Lift(ka[0], fault.KeyLimit)
	waitBack(t, "the lift reaches b", func() bool { r, _, _ := b.Rest(kb[0]); return r == fault.NoReason })
	if tr, err := b.For(kb[0]).Allow(); err != nil {
		t.Fatalf("replica b after the lift: %v", err)
	} else {
		tr.Success()
	}

	tr, err := a.For(ka[0]).Allow()
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(300 * time.Millisecond)
	tr.Fail(fault.Verdict{Status: http.StatusTooManyRequests, Scope: fault.Key, Reason: fault.RateLimit, Until: until})
	waitBack(t, "the 429 rest reaches b", func() bool { r, _, _ := b.Rest(kb[0]); return r == fault.RateLimit })
	time.Sleep(time.Until(until) + 20*time.Millisecond)
	trial, err := a.For(ka[0]).Allow()
	if err != nil {
		t.Fatalf("replica a: trial: %v", err)
	}
	trial.Success()
	time.Sleep(500 * time.Millisecond)
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
	t.Fatalf("replica b: key 1 still kept out (%v) 1.5s after replica a's trial of it succeeded", breaker.ErrTrialBusy)
}
