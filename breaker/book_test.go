package breaker

import (
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

func TestAccountRestsAndLifts(t *testing.T) {
	set, p, c := newSet(t, 4, Settings{})
	k := p.Keys()
	if set.SetAccount(k[0], "user_A") != AccountLabel("user_A") || set.SetAccount(k[1], "user_A") == "" {
		t.Fatal("SetAccount label")
	}
	set.SetAccount(k[2], "user_B")
	if set.Account(k[3]) != "" || set.Account(k[0]) != set.Account(k[1]) || set.Account(k[0]) == set.Account(k[2]) {
		t.Fatalf("accounts %q %q %q %q", set.Account(k[0]), set.Account(k[1]), set.Account(k[2]), set.Account(k[3]))
	}
	var sib keyring.Exclude
	set.Siblings(k[1], &sib)
	if !sib.Has(0) || !sib.Has(1) || sib.Len() != 2 {
		t.Fatalf("siblings of key 2: %d keys", sib.Len())
	}
	now := c.Now()
	rested := set.RestAccount(k[0], fault.Credits, 402, now.Add(time.Hour))
	if len(rested) != 2 {
		t.Fatalf("account rest reached %d keys, want 2", len(rested))
	}
	ns := now.UnixNano()
	for i, want := range []bool{false, false, true, true} {
		if p.Available(k[i], ns) != want {
			t.Errorf("key %d available %v, want %v", i+1, !want, want)
		}
	}
	// A key's own rest and its account's are kept apart: lifting the
	// account's credits leaves key 1's own rate limit.
	set.RestKey(k[0], fault.RateLimit, 429, now.Add(time.Minute))
	if r, st, until := set.Rest(k[0]); r != fault.Credits || st != 402 || !until.Equal(now.Add(time.Hour)) {
		t.Fatalf("key 1 rests for %v %d until %v, want the account's credits", r, st, until)
	}
	set.Lift(k[1], fault.Credits)
	if !p.Available(k[1], ns) {
		t.Fatal("key 2 still rests after its account's credits were lifted")
	}
	if r, _, until := set.Rest(k[0]); r != fault.RateLimit || !until.Equal(now.Add(time.Minute)) {
		t.Fatalf("key 1 rests for %v until %v, want its own 429", r, until)
	}
	// A later deadline wins, an earlier one does not shorten.
	set.RestKey(k[0], fault.RateLimit, 429, now.Add(time.Second))
	if _, _, until := set.Rest(k[0]); !until.Equal(now.Add(time.Minute)) {
		t.Fatalf("an earlier deadline shortened the rest to %v", until)
	}
}

func TestFreeBlock(t *testing.T) {
	set, p, c := newSet(t, 3, Settings{})
	k := p.Keys()
	set.SetAccount(k[0], "A")
	set.SetAccount(k[1], "A")
	now := c.Now()
	set.BlockFree(k[0], now.Add(time.Hour))
	var ex keyring.Exclude
	set.FreeBlocked(&ex, now.UnixNano())
	if !ex.Has(0) || !ex.Has(1) || ex.Has(2) {
		t.Fatalf("free-blocked %d keys, want keys 1 and 2", ex.Len())
	}
	if !p.Available(k[0], now.UnixNano()) {
		t.Fatal("a free-model block rested the key for paid calls")
	}
	// A key that joins the account later is blocked with it.
	set.SetAccount(k[2], "A")
	ex.Reset()
	set.FreeBlocked(&ex, now.UnixNano())
	if ex.Len() != 3 {
		t.Fatalf("after key 3 joined: %d blocked", ex.Len())
	}
	// A block that ends before from (a per-minute one, against a day's
	// figures) stays; one that ends at or after it is lifted.
	set.UnblockFree(k[1], now.Add(2*time.Hour))
	ex.Reset()
	set.FreeBlocked(&ex, now.UnixNano())
	if ex.Len() != 3 {
		t.Fatalf("an unblock from after the block's end lifted it: %d blocked", ex.Len())
	}
	set.UnblockFree(k[1], now.Add(time.Hour))
	ex.Reset()
	set.FreeBlocked(&ex, now.UnixNano())
	if ex.Len() != 0 || !set.FreeBlockedUntil(k[0]).IsZero() {
		t.Fatal("unblock left a block")
	}
}

func TestConfirmedDoublesOnFailedTrials(t *testing.T) {
	set, p, c := newSet(t, 1, Settings{AuthCooldown: time.Minute})
	k := p.Keys()[0]
	b := set.For(k)
	v := fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth}
	tr := allow(t, b)
	tr.Hold(fault.Auth, 401, c.Now().Add(5*time.Second))
	if got := set.Confirmed(k, v); got != time.Minute {
		t.Fatalf("first confirmed rest %v", got)
	}
	c.Add(time.Minute)
	if b.State() != HalfOpen {
		t.Fatalf("state %v after the rest, want half-open", b.State())
	}
	tr = allow(t, b)
	tr.Hold(fault.Auth, 401, c.Now().Add(5*time.Second))
	if got := set.Confirmed(k, v); got != 2*time.Minute {
		t.Fatalf("rest after a failed trial %v, want doubled", got)
	}
}
