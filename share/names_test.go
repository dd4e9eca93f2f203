package share

import (
	"fmt"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// TestNamesBoundedAcrossReloads: every reload attaches a new pool (new
// *keyring.Key values for the same secrets). The adapter's names map, read
// on the hot path, should hold the keys in force (and those a call may
// still be on), not every key of every reload since start.
func TestNamesBoundedAcrossReloads(t *testing.T) {
	b := &bus{reply: true}
	ad := New(b, nil)
	entries := make([]keyring.Entry, 5)
	for i := range entries {
		entries[i] = keyring.Entry{ID: i + 1, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", i))}
	}
	for range 1000 { // 1000 reloads of the same five keys
		pool, err := keyring.New(entries, nil)
		if err != nil {
			t.Fatal(err)
		}
		set := breaker.NewSet(pool, breaker.Settings{Sink: ad, Trials: ad})
		ad.Attach(set, budget.New(pool, set, budget.Options{Share: ad}), pool.Keys())
	}
	if n := len(*ad.names.Load()); n > 10 {
		t.Errorf("after 1000 reloads of 5 keys the adapter holds %d names (each reload copies them all)", n)
	}
}
