package breaker

import (
	"testing"
	"time"

	"github.com/keygate/keygate/keyring"
)

// TestCarryFromKeepsAffordNotes: an account noted by a 402 "can only
// afford M" keeps its note across a reload that keeps its keys (one that
// changes nothing, here one that reorders them), as it keeps its rest: a
// large request made right after the reload still goes to other accounts
// first, rather than to the account that just said it cannot pay.
func TestCarryFromKeepsAffordNotes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		onKey  bool
		large  bool
		tokens int
	}{
		{"account note", false, false, 5000},
		{"key cap note", true, false, 5000},
		{"large-prompt note", false, true, 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			set, p, c := newSet(t, 3, Settings{})
			k := p.Keys()
			set.SetAccount(k[0], "user_A")
			set.SetAccount(k[1], "user_A")
			set.NoteAfford(k[0], 1000, tt.onKey, tt.large, c.Now().Add(5*time.Minute))
			var before keyring.Exclude
			set.SkipUnaffordable(&before, tt.tokens, tt.large, c.Now().UnixNano())

			ns, np := reloaded(t, set, p)
			var after keyring.Exclude
			ns.SkipUnaffordable(&after, tt.tokens, tt.large, c.Now().UnixNano())
			if !ns.AffordNoted() {
				t.Error("the reloaded set has no afford note")
			}
			for _, key := range k {
				if want, got := before.Has(key.Slot()), after.Has(np.ByID(key.ID).Slot()); got != want {
					t.Errorf("key %d skipped for a %d-token request: %v after the reload, %v before", key.ID, tt.tokens, got, want)
				}
			}
		})
	}
}
