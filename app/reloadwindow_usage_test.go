package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/keygate/keygate/keyring"
)

// TestUsageInTheReloadWindow: the tokens and the cost of a call that ends
// while a reload builds its snapshot (after the observer follows the new
// pool, before the relay does) count for its key as the new pool names it,
// as its upstream count does: a call on a key the reload removed counts
// nowhere, one on a renumbered key under its new id. They were counted
// under the key's old id, which may name another key by then (here the
// removed key's id 1 is the renumbered key's).
func TestUsageInTheReloadWindow(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","choices":[{"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":5,"cost":0.25}}`)
	}))
	t.Cleanup(up.Close)
	for _, tt := range []struct {
		name string
		// calls in the window, round-robin from key 1 of the old pool.
		calls  int
		tokens []string
		spend  []string
	}{
		{"on the removed key", 1, nil, nil},
		{"on the removed and the renumbered key", 2,
			[]string{`keygate_tokens_total{key="1",model="a/b",type="completion"} 5`, `keygate_tokens_total{key="1",model="a/b",type="prompt"} 3`},
			[]string{`keygate_key_spend_usd_total{key="1",model="a/b"} 0.25`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newLiveApp(t, up.URL, []int{1, 2, 3}, Options{}, "KEY_ROTATION=round-robin")
			a.Live.stopRun = func() {
				// The old snapshot is still in force: keys 1, 2, 3 in turn.
				for range tt.calls {
					if code := chat(t, a.Handler); code != 200 {
						t.Errorf("a call in the window: %d", code)
					}
				}
			}
			// Key 1 removed: key 2's secret becomes #1, key 3's #2.
			a.Live.Apply([]keyring.Entry{{ID: 1, Secret: entries(2)[0].Secret}, {ID: 2, Secret: entries(3)[0].Secret}}, nil, "test")
			if got := scrape(t, a, "keygate_tokens_total"); !slices.Equal(got, tt.tokens) {
				t.Errorf("tokens %q, want %q", got, tt.tokens)
			}
			if got := scrape(t, a, "keygate_key_spend_usd_total"); !slices.Equal(got, tt.spend) {
				t.Errorf("spend %q, want %q", got, tt.spend)
			}
		})
	}
}
