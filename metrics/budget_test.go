package metrics

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRecordingWave2(t *testing.T) {
	tests := []struct {
		name string
		do   func(m *Metrics)
		want map[string]float64
	}{
		{
			name: "spend adds up per key and model",
			do: func(m *Metrics) {
				m.Spend(1, "openai/gpt-4o", 0.25)
				m.Spend(1, "openai/gpt-4o", 0.5)
				m.Spend(2, "", 0.125)
			},
			want: map[string]float64{
				`keygate_key_spend_usd_total{key="1",model="openai/gpt-4o"}`: 0.75,
				`keygate_key_spend_usd_total{key="2",model="unknown"}`:       0.125,
			},
		},
		{
			name: "spend of nothing, a refund, NaN, Inf or an unknown key",
			do: func(m *Metrics) {
				m.Spend(1, "m", 0)
				m.Spend(1, "m", -1)
				m.Spend(1, "m", math.NaN())
				m.Spend(1, "m", math.Inf(1))
				m.Spend(42, "m", 1)
			},
			want: map[string]float64{},
		},
		{
			name: "budget set, set again, another key cleared",
			do: func(m *Metrics) {
				m.SetKeyBudget(1, 5)
				m.SetKeyBudget(1, 4.58)
				m.SetKeyBudget(2, 1)
				m.ClearKeyBudget(2)
				m.ClearKeyBudget(3) // never set
				m.SetKeyBudget(42, 1)
			},
			want: map[string]float64{`keygate_key_budget_remaining_usd{key="1"}`: 4.58},
		},
		{
			name: "budget of an unlimited key is absent",
			do: func(m *Metrics) {
				m.SetKeyBudget(1, 5)
				m.SetKeyBudget(1, math.Inf(1))
				m.SetKeyBudget(2, math.NaN())
			},
			want: map[string]float64{},
		},
		{
			name: "budget below zero is kept",
			do:   func(m *Metrics) { m.SetKeyBudget(3, -0.01) },
			want: map[string]float64{`keygate_key_budget_remaining_usd{key="3"}`: -0.01},
		},
		{
			name: "free requests per account",
			do: func(m *Metrics) {
				m.SetAccountFreeRequests("a1b2c3d4", 50)
				m.SetAccountFreeRequests("a1b2c3d4", 49)
				m.SetAccountFreeRequests("e5f6", 1000)
				m.SetAccountFreeRequests("dead", 3)
				m.DeleteAccount("dead")
				m.DeleteAccount("never-set")
				m.SetAccountFreeRequests("", 1)
				m.SetAccountFreeRequests(strings.Repeat("x", 65), 1)
				m.SetAccountFreeRequests("\xff", 1)
			},
			want: map[string]float64{
				`keygate_account_free_requests_remaining{account="a1b2c3d4"}`: 49,
				`keygate_account_free_requests_remaining{account="e5f6"}`:     1000,
			},
		},
		{
			name: "cooldowns and retries by every reason",
			do: func(m *Metrics) {
				for r := range numReasons {
					m.Cooldown(1, r)
					m.Retry(r)
				}
				m.Cooldown(2, ReasonFreeQuota)
			},
			want: map[string]float64{
				`keygate_key_cooldowns_total{key="1",reason="auth"}`:             1,
				`keygate_key_cooldowns_total{key="1",reason="rate_limit"}`:       1,
				`keygate_key_cooldowns_total{key="1",reason="key_limit"}`:        1,
				`keygate_key_cooldowns_total{key="1",reason="credits"}`:          1,
				`keygate_key_cooldowns_total{key="1",reason="free_quota"}`:       1,
				`keygate_key_cooldowns_total{key="1",reason="in_flight_budget"}`: 1,
				`keygate_key_cooldowns_total{key="2",reason="free_quota"}`:       1,
				`keygate_retries_total{reason="auth"}`:                           1,
				`keygate_retries_total{reason="rate_limit"}`:                     1,
				`keygate_retries_total{reason="key_limit"}`:                      1,
				`keygate_retries_total{reason="credits"}`:                        1,
				`keygate_retries_total{reason="free_quota"}`:                     1,
				`keygate_retries_total{reason="in_flight_budget"}`:               1,
			},
		},
		{
			name: "stream failovers",
			do: func(m *Metrics) {
				m.StreamFailover(FailoverErrorEvent)
				m.StreamFailover(FailoverErrorEvent)
				m.StreamFailover(FailoverClosedBeforeData)
				m.StreamFailover(FailoverReadError)
				m.StreamFailover(FailoverReason(9))
			},
			want: map[string]float64{
				`keygate_stream_failovers_total{reason="error_event"}`:        2,
				`keygate_stream_failovers_total{reason="closed_before_data"}`: 1,
				`keygate_stream_failovers_total{reason="read_error"}`:         1,
			},
		},
		{
			name: "pool reloads",
			do: func(m *Metrics) {
				m.PoolReload(true)
				m.PoolReload(false)
				m.PoolReload(true)
			},
			want: map[string]float64{
				`keygate_pool_reloads_total{result="ok"}`:      2,
				`keygate_pool_reloads_total{result="refused"}`: 1,
			},
		},
		{
			name: "redis up without Redis records nothing",
			do:   func(m *Metrics) { m.SetRedisUp(true) },
			want: map[string]float64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, newFakeSource(1, 2, 3), Options{})
			tt.do(m)
			if got := recorded(t, reg); !maps.Equal(got, tt.want) {
				t.Errorf("series\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestSpendModelBound(t *testing.T) {
	m, reg := newTestMetrics(t, newFakeSource(1), Options{MaxModels: 2})
	m.Spend(1, "a", 1)
	m.Tokens(1, "b", 1, 0) // the bound is shared with the other series
	m.Spend(1, "c", 2)
	m.Spend(1, "d", 3)
	const want = `
# HELP keygate_key_spend_usd_total US dollars spent, as the upstream's usage.cost reports, by key id and model.
# TYPE keygate_key_spend_usd_total counter
keygate_key_spend_usd_total{key="1",model="a"} 1
keygate_key_spend_usd_total{key="1",model="other"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "keygate_key_spend_usd_total"); err != nil {
		t.Error(err)
	}
}

func TestAccountBound(t *testing.T) {
	m, _ := newTestMetrics(t, newFakeSource(1), Options{})
	for i := range maxAccounts + 5 {
		m.SetAccountFreeRequests(fmt.Sprintf("a%04d", i), i)
	}
	if got := testutil.CollectAndCount(m.freeReqs); got != maxAccounts {
		t.Fatalf("accounts = %d, want the bound %d", got, maxAccounts)
	}
	m.DeleteAccount("a0000")
	m.SetAccountFreeRequests("fresh", 7)
	if got := testutil.ToFloat64(m.freeReqs.WithLabelValues("fresh")); got != 7 {
		t.Errorf("fresh account after a delete = %v, want 7 (a deleted account frees its slot)", got)
	}
}

func TestRedisUp(t *testing.T) {
	const want = `
# HELP keygate_redis_up 1 while the shared Redis (REDIS_URL) answers, 0 while this replica goes on alone.
# TYPE keygate_redis_up gauge
`
	tests := []struct {
		name  string
		redis bool
		set   []bool
		want  string
	}{
		{"without Redis the series is absent", false, []bool{true}, ""},
		{"with Redis, before any report", true, nil, want + "keygate_redis_up 0\n"},
		{"with Redis, up", true, []bool{false, true}, want + "keygate_redis_up 1\n"},
		{"with Redis, down again", true, []bool{true, false}, want + "keygate_redis_up 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, newFakeSource(1), Options{Redis: tt.redis})
			for _, up := range tt.set {
				m.SetRedisUp(up)
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tt.want), "keygate_redis_up"); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestNewFamilies pins the full set of keygate families a fresh New
// exports before any traffic, with and without Redis: the pre-resolved
// children and the scrape-time gauges.
func TestNewFamilies(t *testing.T) {
	for _, redis := range []bool{false, true} {
		_, reg := newTestMetrics(t, newFakeSource(1), Options{Redis: redis})
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, mf := range mfs {
			got = append(got, mf.GetName())
		}
		want := []string{
			"keygate_key_cooldowns_total", "keygate_key_in_flight", "keygate_key_rest_seconds",
			"keygate_key_selected_total", "keygate_key_state", "keygate_keys_available",
			"keygate_pool_reloads_total", "keygate_redis_up", "keygate_request_duration_seconds",
			"keygate_retries_total", "keygate_stream_failovers_total",
			"keygate_upstream_request_duration_seconds",
		}
		if !redis {
			want = slices.DeleteFunc(want, func(n string) bool { return n == "keygate_redis_up" })
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("redis=%v: families\n got %q\nwant %q", redis, got, want)
		}
	}
}
