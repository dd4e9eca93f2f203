package app

import (
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// TestReloadInFlightOutcome: the outcome of a call in flight across a
// reload lands on the key as the new pool names it: nowhere for a secret
// the reload replaced (the new secret under its id is another key, and
// stays fresh in the metrics and the console), under the new id for a key
// the reload renumbered.
func TestReloadInFlightOutcome(t *testing.T) {
	k1 := secret.New(liveKeys[1])
	tests := []struct {
		name    string
		next    []keyring.Entry
		want    string // a cooldown series of …b28b's 401, "" for none
		console string // its console line, "" for none
	}{
		{"rotated", []keyring.Entry{{ID: 1, Secret: secret.New(liveKeys[4])}, entries(2)[0]}, "", ""},
		{"renumbered", []keyring.Entry{entries(2)[0], {ID: 3, Secret: k1}},
			`keygate_key_cooldowns_total{key="3",reason="auth"} 1`, "🧊 API Key #3 cooling down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t)
			a, logs := newLiveApp(t, up.URL, []int{1, 2}, Options{}, "KEY_ROTATION=round-robin")
			release := up.holdKey(1)
			up.revoke(1)
			done := make(chan int, 1)
			go func() { done <- chat(t, a.Handler) }()
			<-up.started
			if res := a.Live.Apply(tt.next, nil, "admin"); res.Refused != "" {
				t.Fatalf("reload refused: %s", res.Refused)
			}
			close(release)
			if code := <-done; code != 200 {
				t.Fatalf("call across the reload: %d, want 200 (from key 2)", code)
			}
			for _, l := range append(scrape(t, a, "keygate_upstream_requests_total"), scrape(t, a, "keygate_key_cooldowns_total")...) {
				if strings.Contains(l, `key="1"`) && (strings.Contains(l, `code="401"`) || strings.Contains(l, `reason="auth"`)) && !strings.HasSuffix(l, " 0") {
					t.Errorf("key #1's series has …b28b's 401: %s", l)
				}
			}
			if tt.want != "" && !slices.Contains(scrape(t, a, "keygate_key_cooldowns_total"), tt.want) {
				t.Errorf("no %s in %v", tt.want, scrape(t, a, "keygate_key_cooldowns_total"))
			}
			if strings.Contains(logs.String(), "🧊 API Key #1 cooling down") {
				t.Errorf("the console rests key #1 for …b28b's 401:\n%s", logs)
			}
			if tt.console != "" && !strings.Contains(logs.String(), tt.console) {
				t.Errorf("no %q in:\n%s", tt.console, logs)
			}
			if k := getKeys(t, a.Handler).Keys[0]; k.State != "closed" {
				t.Errorf("key #1 after the reload: %+v, want closed", k)
			}
		})
	}
}
