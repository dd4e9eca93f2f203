package breaker

import (
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// A free-model block learned while a key's account is unknown (a 429
// free-models-per-day with no user_id, before any poll answered) stays the
// key's through its other events, and goes with it into the account once
// that is known; a key that moves from one known account to another does
// not carry its old account's block.
func TestFreeBlockOfUnknownAccount(t *testing.T) {
	cases := []struct {
		name string
		// then runs after k[0]'s block (until block); it returns the
		// key whose block is read and the end wanted.
		then  func(set *Set, k []*keyring.Key, now, block time.Time) (read int, want time.Time)
		facts []FactKind
	}{
		{"a rest of the key", func(set *Set, k []*keyring.Key, now, block time.Time) (int, time.Time) {
			set.RestAccount(k[0], fault.RateLimit, 429, now.Add(time.Minute))
			return 0, block
		}, []FactKind{KeyRested}},
		{"a disable and enable", func(set *Set, k []*keyring.Key, now, block time.Time) (int, time.Time) {
			set.SetDisabled(k[0], true)
			set.SetDisabled(k[0], false)
			return 0, block
		}, nil},
		{"the account learned", func(set *Set, k []*keyring.Key, now, block time.Time) (int, time.Time) {
			set.SetAccount(k[0], "user_A")
			return 0, block
		}, []FactKind{AccountKnown, FreeBlocked}},
		{"the account's other key blocked as long", func(set *Set, k []*keyring.Key, now, block time.Time) (int, time.Time) {
			set.SetAccount(k[1], "user_A")
			set.SetAccount(k[0], "user_A")
			return 1, block
		}, []FactKind{AccountKnown, AccountKnown, FreeBlocked}},
		{"an account's longer block kept", func(set *Set, k []*keyring.Key, now, block time.Time) (int, time.Time) {
			set.SetAccount(k[1], "user_A")
			set.BlockFree(k[1], block.Add(time.Hour))
			set.SetAccount(k[0], "user_A")
			return 0, block.Add(time.Hour)
		}, []FactKind{AccountKnown, FreeBlocked, AccountKnown}},
		{"a move between known accounts carries nothing", func(set *Set, k []*keyring.Key, now, block time.Time) (int, time.Time) {
			set.SetAccount(k[0], "user_A")
			set.SetAccount(k[0], "user_B")
			return 0, time.Time{}
		}, []FactKind{AccountKnown, FreeBlocked, AccountKnown}},
		{"the account learned from another replica", func(set *Set, k []*keyring.Key, now, block time.Time) (int, time.Time) {
			set.ApplyAccount(k[0], AccountLabel("user_A"))
			set.SetAccount(k[1], "user_A")
			return 1, block
		}, []FactKind{AccountKnown}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := &facts{}
			set, p, c := newSet(t, 2, Settings{Sink: sink})
			now := c.Now()
			block := now.Add(5 * time.Hour)
			ks := p.Keys()
			set.BlockFree(ks[0], block)
			read, want := tc.then(set, ks, now, block)
			if got := set.FreeBlockedUntil(ks[read]); !got.Equal(want) {
				t.Errorf("key %d's free block ends %v, want %v", read, got, want)
			}
			var kinds []FactKind
			for _, f := range sink.take() {
				kinds = append(kinds, f.Kind)
			}
			if len(kinds) != len(tc.facts) {
				t.Fatalf("told %v, want %v", kinds, tc.facts)
			}
			for i := range kinds {
				if kinds[i] != tc.facts[i] {
					t.Errorf("told %v, want %v", kinds, tc.facts)
				}
			}
		})
	}
}
