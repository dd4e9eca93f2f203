package budget

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

// accountRests records the account rests a Poller tells.
type accountRests struct {
	relay.Observer
	mu    sync.Mutex
	rests []fault.Verdict
	until []time.Time
}

func (a *accountRests) AccountCooldown(_ *keyring.Key, v fault.Verdict, until time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rests = append(a.rests, v)
	a.until = append(a.until, until)
}

func (a *accountRests) want(t *testing.T, n int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.rests) != n {
		t.Fatalf("told %d account rests (%+v), want %d", len(a.rests), a.rests, n)
	}
	midnight := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for i, v := range a.rests {
		if v.Reason != fault.FreeQuota || !v.FreeOnly || !a.until[i].Equal(midnight) {
			t.Fatalf("told %+v until %v, want a free_quota block until %v", v, a.until[i], midnight)
		}
	}
}

// TestFreeBlockIsTold: an account whose free-model requests are used up,
// as its figures show (a poll, or the free calls counted since), has its
// free calls blocked and the block told once as a free_quota cooldown of
// the account, as a 429 free-models-per-day is. It was told only after a
// 429: keygate_key_cooldowns_total{reason="free_quota"} and the 🧊 line
// missed the blocks keygate learns without one, which is what it is for.
func TestFreeBlockIsTold(t *testing.T) {
	t.Run("poll", func(t *testing.T) {
		p, set, pool, u, _ := newPoller(t, 2)
		obs := &accountRests{}
		p.o.Cooldowns = obs
		body := `{"data":{"limit":null,"creator_user_id":"acct","free_model_daily_requests":{"used":50,"limit":50,"remaining":0}}}`
		u.set(1, 0, body)
		u.set(2, 0, body)
		for range 2 {
			for _, k := range pool.Keys() {
				if _, err := p.Check(t.Context(), k); err != nil {
					t.Fatal(err)
				}
			}
		}
		if set.FreeBlockedUntil(pool.Keys()[0]).IsZero() {
			t.Fatal("not blocked")
		}
		obs.want(t, 1)
	})
	t.Run("free calls", func(t *testing.T) {
		p, _, pool, u, _ := newPoller(t, 2)
		obs := &accountRests{}
		p.o.Cooldowns = obs
		body := `{"data":{"limit":null,"creator_user_id":"acct","free_model_daily_requests":{"used":48,"limit":50,"remaining":2}}}`
		u.set(1, 0, body)
		u.set(2, 0, body)
		for _, k := range pool.Keys() {
			if _, err := p.Check(t.Context(), k); err != nil {
				t.Fatal(err)
			}
		}
		k1, k2 := pool.Keys()[0], pool.Keys()[1]
		p.UseFree(k1)
		obs.want(t, 0)
		p.UseFree(k2)
		p.UseFree(k1)
		obs.want(t, 1)
	})
}

// TestAnotherReplicasFindingIsNotTold: a cap or a free quota used up by
// another replica's answers (ApplySpend, ApplyFreeUse) rests or blocks
// here too, but is told (counted) by that replica only, as each replica
// exports its own counters and Prometheus adds them up.
func TestAnotherReplicasFindingIsNotTold(t *testing.T) {
	p, set, pool, u, clock := newPoller(t, 2)
	rests, accts := &cooldowns{}, &accountRests{}
	p.o.Cooldowns = &both{cooldowns: rests, accts: accts}
	k := pool.Keys()[0]
	u.set(1, 0, `{"data":{"limit":1,"limit_remaining":0.05,"limit_reset":"daily","creator_user_id":"acct","free_model_daily_requests":{"used":49,"limit":50,"remaining":1}}}`)
	if _, err := p.Check(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	p.ApplySpend(k, 0.06)
	p.ApplyFreeUse(k, 1)
	if pool.Available(k, clock().UnixNano()) || set.FreeBlockedUntil(k).IsZero() {
		t.Fatal("another replica's spend and free use rested and blocked nothing")
	}
	if n := rests.told(); n != 0 {
		t.Fatalf("told %d key rests, want none", n)
	}
	accts.want(t, 0)
}

// both records key and account rests.
type both struct {
	*cooldowns
	accts *accountRests
}

func (b *both) AccountCooldown(k *keyring.Key, v fault.Verdict, until time.Time) {
	b.accts.AccountCooldown(k, v, until)
}
