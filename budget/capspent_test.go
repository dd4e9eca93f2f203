package budget

import (
	"testing"

	"github.com/keygate/keygate/fault"
)

// TestCapSpentRestIsTold: a key rested because its figures show its cap
// spent — by a poll (limit_remaining 0 at start-up: a restart, or the key
// spent elsewhere) or by the spend tally, with no 402 ever sent — is told
// to the Cooldowns observer once, as a key_limit rest, as a confirmed 402
// is: keygate_key_cooldowns_total{reason="key_limit"} and the 🧊 line
// missed exactly the rests keygate learns without a 402. Later polls and
// spend of the same rest tell nothing more.
func TestCapSpentRestIsTold(t *testing.T) {
	t.Run("poll", func(t *testing.T) {
		noLeaks(t)
		p, _, pool, u, _ := newPoller(t, 2)
		obs := &cooldowns{}
		p.o.Cooldowns = obs
		k := pool.Keys()[0]
		u.set(1, 0, `{"data":{"limit":1,"limit_remaining":0,"limit_reset":"daily","usage":1}}`)
		for range 3 {
			if _, err := p.Check(t.Context(), k); err != nil {
				t.Fatal(err)
			}
		}
		wantTold(t, obs, fault.KeyLimit, true)
	})
	t.Run("spend", func(t *testing.T) {
		noLeaks(t)
		p, _, pool, u, clock := newPoller(t, 2)
		obs := &cooldowns{}
		p.o.Cooldowns = obs
		k := pool.Keys()[0]
		u.set(1, 0, `{"data":{"limit":1,"limit_remaining":0.05,"limit_reset":"daily","usage":0.95}}`)
		if _, err := p.Check(t.Context(), k); err != nil {
			t.Fatal(err)
		}
		p.Spend(k, "m", 0.03)
		if obs.told() != 0 {
			t.Fatalf("told %d rests with money left", obs.told())
		}
		p.Spend(k, "m", 0.03)
		p.Spend(k, "m", 0.01)
		if pool.Available(k, clock().UnixNano()) {
			t.Fatal("not rested with its cap spent")
		}
		wantTold(t, obs, fault.KeyLimit, true)
	})
	t.Run("a 402 confirmed by the poll is told once", func(t *testing.T) {
		noLeaks(t)
		p, _, pool, u, clock := newPoller(t, 2)
		obs := &cooldowns{}
		p.o.Cooldowns = obs
		k := pool.Keys()[0]
		u.set(1, 0, `{"data":{"limit":1,"limit_remaining":0,"limit_reset":"daily","usage":1}}`)
		confirmNow(t, p, k, fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit}, clock(), u)
		wantTold(t, obs, fault.KeyLimit, false)
	})
}

// wantTold checks that obs was told one rest for r, standing for a 402,
// and read from the key's figures (polled) or from a 402 a call got.
func wantTold(t *testing.T, obs *cooldowns, r fault.Reason, polled bool) {
	t.Helper()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.rests) != 1 || obs.rests[0].Reason != r || obs.rests[0].Status != 402 || obs.rests[0].Polled != polled {
		t.Fatalf("told %+v, want one %v rest (402, polled %v)", obs.rests, r, polled)
	}
}
