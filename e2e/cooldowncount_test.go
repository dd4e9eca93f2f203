package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// TestConfirmedFaultCountsOnce: a 401 that the key's own GET /key
// confirms is one cooldown (one keygate_key_cooldowns_total, one 🧊 line),
// and one that GET /key refutes is none. The 5 s hold while GET /key is
// asked counted as a cooldown of its own, so a confirmed 401 counted two
// and a refuted one, which rests nothing, one (and KeygateKeyRevoked could
// fire for a key GET /key had cleared).
func TestConfirmedFaultCountsOnce(t *testing.T) {
	clk := newClock()
	keys := hdKeys(2)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {Status: http.StatusUnauthorized}, keys[1]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk, "BUDGET_POLL_INTERVAL=1h", "KEY_ROTATION=round-robin")
	cooldowns := func(key string) float64 {
		return hdSum(hdScrape(t, g)["keygate_key_cooldowns_total"], map[string]string{"key": key, "reason": "auth"})
	}
	restReason := func(id int) string {
		r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/keys", ""))
		var v struct {
			Keys []struct {
				ID         int     `json:"id"`
				RestReason *string `json:"rest_reason"`
			}
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatal(err)
		}
		for _, k := range v.Keys {
			if k.ID == id && k.RestReason != nil {
				return *k.RestReason
			}
		}
		return ""
	}
	settled := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s", what)
			}
		}
	}
	// Key 1 is revoked: its 401 is confirmed by its GET /key.
	if res := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("openai/gpt-4o-mini", false))); res.Status != http.StatusOK {
		t.Fatalf("first call: %d, want 200 from key 2", res.Status)
	}
	settled("key 1's 401 confirmed", func() bool { return strings.Contains(g.Logs.String(), "API Key #1 cooling down for 10m") })
	if n := cooldowns("1"); n != 1 {
		t.Errorf("a confirmed 401 counted %v auth cooldowns, want 1", n)
	}
	// Key 2 answers one 401 but its GET /key is fine: no cooldown.
	res := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("openai/gpt-4o-mini", false), simulator.HeaderFault, "status=401"))
	if res.Status != http.StatusUnauthorized {
		t.Fatalf("the faulted call: %d, want 401", res.Status)
	}
	settled("key 2 back after its GET /key", func() bool {
		return strings.Contains(g.Logs.String(), "API Key #2 answered 401 but its GET /key shows it fine")
	})
	if r := restReason(2); r != "" {
		t.Errorf("key 2 rests for %s after its GET /key cleared it", r)
	}
	if n := cooldowns("2"); n != 0 {
		t.Errorf("a 401 its GET /key refuted counted %v auth cooldowns, want 0", n)
	}
}
