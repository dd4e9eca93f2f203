package metrics

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestKeyAddedLater: a key the pool gains after New gets its series on
// first use, the pre-resolved ones included, and only once the KeySource
// lists it.
func TestKeyAddedLater(t *testing.T) {
	src := newFakeSource(1)
	m, reg := newTestMetrics(t, src, Options{})
	m.Upstream(7, "m", 200, time.Second) // not in the pool yet
	m.Spend(7, "m", 1)
	if got := recorded(t, reg); len(got) != 0 {
		t.Fatalf("before the reload: %v, want nothing", got)
	}
	src.setIDs(1, 7)
	m.Upstream(7, "m", 200, time.Second)
	m.Spend(7, "m", 0.5)
	m.Tokens(7, "m", 3, 4)
	m.KeySelected(7, "random")
	m.Cooldown(7, ReasonCredits)
	m.SetKeyBudget(7, 2)
	want := map[string]float64{
		`keygate_upstream_requests_total{code="200",key="7",model="m"}`: 1,
		`keygate_upstream_request_duration_seconds_count{key="7"}`:      1,
		`keygate_key_spend_usd_total{key="7",model="m"}`:                0.5,
		`keygate_tokens_total{key="7",model="m",type="prompt"}`:         3,
		`keygate_tokens_total{key="7",model="m",type="completion"}`:     4,
		`keygate_key_selected_total{key="7",strategy="random"}`:         1,
		`keygate_key_cooldowns_total{key="7",reason="credits"}`:         1,
		`keygate_key_budget_remaining_usd{key="7"}`:                     2,
	}
	if got := recorded(t, reg); !maps.Equal(got, want) {
		t.Errorf("after the reload\n got %v\nwant %v", got, want)
	}
	if got := testutil.CollectAndCount(m.cooldowns); got != 2*int(numReasons) {
		t.Errorf("cooldown series = %d, want every reason of both keys", got)
	}
}

// TestDeleteKey: a removed key's series all go, the others stay, a call
// still in flight on it brings nothing back, and a key re-added under the
// same id starts from zero.
func TestDeleteKey(t *testing.T) {
	src := newFakeSource(1, 2)
	m, reg := newTestMetrics(t, src, Options{})
	for _, id := range []int{1, 2} {
		m.Upstream(id, "m", 429, time.Second)
		m.Spend(id, "m", 1)
		m.Tokens(id, "m", 1, 1)
		m.KeySelected(id, "least-busy")
		m.Cooldown(id, ReasonRateLimit)
		m.SetKeyBudget(id, 3)
	}
	src.setIDs(1)
	m.DeleteKey(2)
	m.DeleteKey(2)  // twice is harmless
	m.DeleteKey(99) // never known

	// A late call on the removed key, warm and cold caches alike.
	m.Upstream(2, "m", 429, time.Second)
	m.Upstream(2, "other-model", 200, time.Second)
	m.Spend(2, "m", 1)
	m.SetKeyBudget(2, 1)
	m.Cooldown(2, ReasonAuth)

	for _, name := range []string{
		"keygate_upstream_requests_total", "keygate_upstream_request_duration_seconds",
		"keygate_key_spend_usd_total", "keygate_tokens_total", "keygate_key_selected_total",
		"keygate_key_cooldowns_total", "keygate_key_budget_remaining_usd",
		"keygate_key_state", "keygate_key_in_flight", "keygate_key_rest_seconds",
	} {
		t.Run(name, func(t *testing.T) {
			if got := labelValues(t, reg, name, "key"); strings.Join(got, ",") != "1" {
				t.Errorf("key values %q, want only 1", got)
			}
		})
	}
	for _, c := range []interface{ len() int }{&m.upCache, &m.tokCache, &m.spendCache} {
		if n := c.len(); n > 2 {
			t.Errorf("a cache holds %d children, want those of key 1 only", n)
		}
	}

	src.setIDs(1, 2)
	m.Upstream(2, "m", 429, time.Second)
	want := `
# HELP keygate_upstream_requests_total Upstream calls by key id, model and HTTP status ("error" for transport errors).
# TYPE keygate_upstream_requests_total counter
keygate_upstream_requests_total{code="429",key="1",model="m"} 1
keygate_upstream_requests_total{code="429",key="2",model="m"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "keygate_upstream_requests_total"); err != nil {
		t.Errorf("re-added key: %v", err)
	}
	if got := testutil.ToFloat64(m.cooldowns.WithLabelValues("2", "auth")); got != 0 {
		t.Errorf("re-added key's auth cooldowns = %v, want 0", got)
	}
}
