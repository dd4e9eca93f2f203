package breaker

import (
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// reloaded builds a set over a pool of the same keys as old's, in reverse
// order (so slots differ), with every key carried over.
func reloaded(t *testing.T, old *Set, p *keyring.Pool) (*Set, *keyring.Pool) {
	t.Helper()
	var entries []keyring.Entry
	keys := p.Keys()
	for i := len(keys) - 1; i >= 0; i-- {
		entries = append(entries, keyring.Entry{ID: keys[i].ID, Secret: keys[i].Secret})
	}
	np, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := NewSet(np, old.settings)
	var kept []Pair
	for _, k := range keys {
		kept = append(kept, Pair{New: np.ByID(k.ID), Old: k})
	}
	ns.CarryFrom(old, kept)
	return ns, np
}

func TestCarryFrom(t *testing.T) {
	v401 := fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth}
	tests := []struct {
		name string
		// before acts on key 1 of a 3-key set (keys 2 and 3 share
		// key 1's account when it has one).
		before    func(s *Set, k []*keyring.Key, now time.Time)
		wantState State // of key 1 right after the reload
		wantAfter State // of key 1 once any rest has ended
		wantAvail []bool
		wantFree  bool // key 2's account blocked for free models
	}{
		{"closed stays closed", func(*Set, []*keyring.Key, time.Time) {}, Closed, Closed, []bool{true, true, true}, false},
		{"a tripped key rests, then comes back half-open", func(s *Set, k []*keyring.Key, _ time.Time) {
			s.Confirmed(k[0], v401)
		}, Open, HalfOpen, []bool{false, true, true}, false},
		{"a rest without a trip comes back closed", func(s *Set, k []*keyring.Key, now time.Time) {
			s.RestKey(k[0], fault.KeyLimit, 402, now.Add(time.Hour))
		}, Open, Closed, []bool{false, true, true}, false},
		{"an account's rest and free block reach its keys", func(s *Set, k []*keyring.Key, now time.Time) {
			s.SetAccount(k[0], "user_A")
			s.SetAccount(k[1], "user_A")
			s.RestAccount(k[0], fault.Credits, 402, now.Add(time.Hour))
			s.BlockFree(k[0], now.Add(2*time.Hour))
		}, Open, Closed, []bool{false, false, true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, p, c := newSet(t, 3, Settings{})
			k := p.Keys()
			tt.before(set, k, c.Now())
			ns, np := reloaded(t, set, p)
			nk := func(i int) *keyring.Key { return np.ByID(k[i].ID) }
			if got := ns.For(nk(0)).State(); got != tt.wantState {
				t.Errorf("state after reload %v, want %v", got, tt.wantState)
			}
			now := c.Now().UnixNano()
			for i, want := range tt.wantAvail {
				if got := np.Available(nk(i), now); got != want {
					t.Errorf("key %d available %v, want %v", i+1, got, want)
				}
			}
			if a, b := set.Account(k[1]), ns.Account(nk(1)); a != b {
				t.Errorf("key 2's account %q, was %q", b, a)
			}
			if got := !ns.FreeBlockedUntil(nk(1)).IsZero(); got != tt.wantFree {
				t.Errorf("key 2 free-blocked %v, want %v", got, tt.wantFree)
			}
			c.Add(3 * time.Hour)
			if got := ns.For(nk(0)).State(); got != tt.wantAfter {
				t.Errorf("state after the rest %v, want %v", got, tt.wantAfter)
			}
		})
	}
}

func TestCarryStrikes(t *testing.T) {
	set, p, c := newSet(t, 2, Settings{AuthCooldown: time.Minute, MaxCooldown: time.Hour})
	k := p.Keys()[0]
	v := fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth}
	allow(t, set.For(k)).Fail(v)
	c.Add(2 * time.Minute)
	allow(t, set.For(k)).Fail(v) // the trial fails: one strike
	ns, np := reloaded(t, set, p)
	if got := ns.For(np.ByID(k.ID)).Strikes(); got != 1 {
		t.Fatalf("strikes after reload %d, want 1", got)
	}
	c.Add(3 * time.Minute)
	if got := allow(t, ns.For(np.ByID(k.ID))).Fail(v); got != 4*time.Minute {
		t.Errorf("rest after a second failed trial %v, want 4m (doubled twice)", got)
	}
}

func TestDisabled(t *testing.T) {
	set, p, c := newSet(t, 2, Settings{})
	k := p.Keys()[0]
	now := c.Now()
	set.RestKey(k, fault.RateLimit, 429, now.Add(time.Minute))
	set.SetDisabled(k, true)
	c.Add(time.Hour)
	if p.Available(k, c.Now().UnixNano()) || !set.Disabled(k) {
		t.Fatal("a disabled key came back by itself")
	}
	if r, _, until := set.Rest(k); r != fault.NoReason || !until.IsZero() {
		t.Errorf("Rest of a disabled key whose own rest ended: %v %v", r, until)
	}
	// Enabling leaves a rest still due in force.
	set.RestKey(k, fault.Auth, 401, c.Now().Add(time.Minute))
	set.SetDisabled(k, false)
	if p.Available(k, c.Now().UnixNano()) {
		t.Error("enabled key skipped its own rest")
	}
	c.Add(2 * time.Minute)
	if !p.Available(k, c.Now().UnixNano()) || set.Disabled(k) {
		t.Error("enabled key not back after its rest")
	}
}

// TestDisabledState: a disabled key's State is its automatic one, by the
// rests it earned, not the disable's endless deadline in the ledger.
func TestDisabledState(t *testing.T) {
	tests := []struct {
		name  string
		setup func(set *Set, k *keyring.Key, c *clock)
		want  State
	}{
		{"never rested", func(*Set, *keyring.Key, *clock) {}, Closed},
		{"resting", func(set *Set, k *keyring.Key, c *clock) {
			set.Confirmed(k, fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth})
		}, Open},
		{"its account resting", func(set *Set, k *keyring.Key, c *clock) {
			set.SetAccount(k, "user_1")
			set.RestAccount(k, fault.RateLimit, 429, c.Now().Add(time.Minute))
		}, Open},
		{"rest over, trial due", func(set *Set, k *keyring.Key, c *clock) {
			set.Confirmed(k, fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth})
			c.Add(time.Hour)
		}, HalfOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, p, c := newSet(t, 2, Settings{})
			k := p.Keys()[0]
			tt.setup(set, k, c)
			set.SetDisabled(k, true)
			if got := set.For(k).State(); got != tt.want {
				t.Errorf("disabled key %v, want %v", got, tt.want)
			}
			if p.Available(k, c.Now().UnixNano()) {
				t.Error("a disabled key is in rotation")
			}
			set.SetDisabled(k, false)
			if got := set.For(k).State(); got != tt.want {
				t.Errorf("enabled again %v, want %v", got, tt.want)
			}
		})
	}
}
