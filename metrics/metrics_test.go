package metrics

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRecording(t *testing.T) {
	tests := []struct {
		name string
		do   func(m *Metrics)
		want map[string]float64
	}{
		{
			name: "request run 200",
			do:   func(m *Metrics) { m.Request(RouteRun, 200, time.Second) },
			want: map[string]float64{
				`keygate_requests_total{code="200",route="run"}`:      1,
				`keygate_request_duration_seconds_count{route="run"}`: 1,
			},
		},
		{
			name: "request passthrough twice",
			do: func(m *Metrics) {
				m.Request(RoutePassthrough, 503, time.Millisecond)
				m.Request(RoutePassthrough, 503, time.Millisecond)
			},
			want: map[string]float64{
				`keygate_requests_total{code="503",route="passthrough"}`:      2,
				`keygate_request_duration_seconds_count{route="passthrough"}`: 2,
			},
		},
		{
			name: "request without status is error",
			do: func(m *Metrics) {
				m.Request(RouteRun, 0, 0)
				m.Request(RouteRun, -1, 0)
				m.Request(RouteRun, 1000, 0)
			},
			want: map[string]float64{
				`keygate_requests_total{code="error",route="run"}`:    3,
				`keygate_request_duration_seconds_count{route="run"}`: 3,
			},
		},
		{
			name: "request with unknown route",
			do:   func(m *Metrics) { m.Request(Route(9), 200, 0) },
			want: map[string]float64{},
		},
		{
			name: "upstream 429",
			do:   func(m *Metrics) { m.Upstream(2, "openai/gpt-4o", 429, time.Second) },
			want: map[string]float64{
				`keygate_upstream_requests_total{code="429",key="2",model="openai/gpt-4o"}`: 1,
				`keygate_upstream_request_duration_seconds_count{key="2"}`:                  1,
			},
		},
		{
			name: "upstream transport error",
			do:   func(m *Metrics) { m.Upstream(1, "m", 0, time.Second) },
			want: map[string]float64{
				`keygate_upstream_requests_total{code="error",key="1",model="m"}`: 1,
				`keygate_upstream_request_duration_seconds_count{key="1"}`:        1,
			},
		},
		{
			name: "upstream without model",
			do:   func(m *Metrics) { m.Upstream(3, "", 200, time.Second) },
			want: map[string]float64{
				`keygate_upstream_requests_total{code="200",key="3",model="unknown"}`: 1,
				`keygate_upstream_request_duration_seconds_count{key="3"}`:            1,
			},
		},
		{
			name: "upstream unknown key is dropped",
			do:   func(m *Metrics) { m.Upstream(42, "m", 200, time.Second) },
			want: map[string]float64{},
		},
		{
			name: "key selected per strategy",
			do: func(m *Metrics) {
				m.KeySelected(1, "random")
				m.KeySelected(1, "random")
				m.KeySelected(2, "round-robin")
				m.KeySelected(3, "least-busy")
			},
			want: map[string]float64{
				`keygate_key_selected_total{key="1",strategy="random"}`:      2,
				`keygate_key_selected_total{key="2",strategy="round-robin"}`: 1,
				`keygate_key_selected_total{key="3",strategy="least-busy"}`:  1,
			},
		},
		{
			name: "key selected with unknown strategy or key",
			do: func(m *Metrics) {
				m.KeySelected(1, "fastest")
				m.KeySelected(42, "random")
			},
			want: map[string]float64{},
		},
		{
			name: "cooldowns",
			do: func(m *Metrics) {
				m.Cooldown(1, ReasonAuth)
				m.Cooldown(2, ReasonRateLimit)
				m.Cooldown(2, ReasonRateLimit)
				m.Cooldown(2, Reason(7))
				m.Cooldown(42, ReasonAuth)
			},
			want: map[string]float64{
				`keygate_key_cooldowns_total{key="1",reason="auth"}`:       1,
				`keygate_key_cooldowns_total{key="2",reason="rate_limit"}`: 2,
			},
		},
		{
			name: "retries",
			do: func(m *Metrics) {
				m.Retry(ReasonAuth)
				m.Retry(ReasonRateLimit)
				m.Retry(ReasonRateLimit)
				m.Retry(Reason(7))
			},
			want: map[string]float64{
				`keygate_retries_total{reason="auth"}`:       1,
				`keygate_retries_total{reason="rate_limit"}`: 2,
			},
		},
		{
			name: "tokens",
			do: func(m *Metrics) {
				m.Tokens(1, "m", 9, 12)
				m.Tokens(1, "m", 1, 0)
			},
			want: map[string]float64{
				`keygate_tokens_total{key="1",model="m",type="prompt"}`:     10,
				`keygate_tokens_total{key="1",model="m",type="completion"}`: 12,
			},
		},
		{
			name: "tokens without usage",
			do: func(m *Metrics) {
				m.Tokens(1, "m", 0, 0)
				m.Tokens(1, "m", -5, -1)
				m.Tokens(42, "m", 5, 5)
			},
			want: map[string]float64{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, newFakeSource(1, 2, 3), Options{})
			tt.do(m)
			got := recorded(t, reg)
			if !maps.Equal(got, tt.want) {
				t.Errorf("series\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	m, _ := newTestMetrics(t, newFakeSource(7), Options{})
	m.Upstream(7, "m", 200, 300*time.Millisecond)
	m.Upstream(7, "m", 200, 90*time.Second)
	const want = `
# HELP keygate_upstream_request_duration_seconds Time from sending one upstream call to its response headers, by key id (a stream's body is not included).
# TYPE keygate_upstream_request_duration_seconds histogram
keygate_upstream_request_duration_seconds_bucket{key="7",le="0.01"} 0
keygate_upstream_request_duration_seconds_bucket{key="7",le="0.025"} 0
keygate_upstream_request_duration_seconds_bucket{key="7",le="0.05"} 0
keygate_upstream_request_duration_seconds_bucket{key="7",le="0.1"} 0
keygate_upstream_request_duration_seconds_bucket{key="7",le="0.25"} 0
keygate_upstream_request_duration_seconds_bucket{key="7",le="0.5"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="1"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="2.5"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="5"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="10"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="20"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="30"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="60"} 1
keygate_upstream_request_duration_seconds_bucket{key="7",le="120"} 2
keygate_upstream_request_duration_seconds_bucket{key="7",le="+Inf"} 2
keygate_upstream_request_duration_seconds_sum{key="7"} 90.3
keygate_upstream_request_duration_seconds_count{key="7"} 2
`
	if err := testutil.CollectAndCompare(m.upstreamDur, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestPreResolvedSeriesStartAtZero(t *testing.T) {
	m, _ := newTestMetrics(t, newFakeSource(1, 2), Options{})
	tests := []struct {
		name string
		c    prometheus.Collector
		n    int
	}{
		{"selected: keys x strategies", m.selected, 2 * 3},
		{"cooldowns: keys x reasons", m.cooldowns, 2 * 6},
		{"retries: reasons and afford", m.retries, 7},
		{"stream failovers: reasons", m.failovers, 3},
		{"pool reloads: results", m.reloads, 2},
		{"spend: lazily", m.spend, 0},
		{"budget: lazily", m.budget, 0},
		{"free requests: lazily", m.freeReqs, 0},
		{"upstream duration: keys", m.upstreamDur, 2},
		{"request duration: routes", m.requestDur, 2},
		{"requests: lazily", m.requests, 0},
		{"upstream: lazily", m.upstream, 0},
		{"tokens: lazily", m.tokens, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testutil.CollectAndCount(tt.c); got != tt.n {
				t.Errorf("series = %d, want %d", got, tt.n)
			}
		})
	}
	m.Retry(ReasonRateLimit)
	if got := testutil.ToFloat64(m.retries.WithLabelValues("rate_limit")); got != 1 {
		t.Errorf("retries{rate_limit} = %v, want 1", got)
	}
	m.Retry(ReasonAfford)
	m.Cooldown(1, ReasonAfford) // no cooldown series for it, and no panic
	if got := testutil.ToFloat64(m.retries.WithLabelValues("afford")); got != 1 {
		t.Errorf("retries{afford} = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.cooldowns); got != 2*6 {
		t.Errorf("cooldown series = %d after an afford, want %d", got, 2*6)
	}
}

func TestNew(t *testing.T) {
	src := newFakeSource(1)
	tests := []struct {
		name string
		reg  prometheus.Registerer
		src  KeySource
	}{
		{"nil registerer", nil, src},
		{"nil source", prometheus.NewRegistry(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.reg, tt.src, Options{}); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}

	t.Run("failed registration is rolled back", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		clash := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_retries_total", Help: "Requests sent again on another key, by reason.",
		}, []string{"reason"})
		reg.MustRegister(clash)
		_, err := New(reg, src, Options{})
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			t.Fatalf("New error = %v, want AlreadyRegisteredError", err)
		}
		reg.Unregister(clash)
		if _, err := New(reg, src, Options{}); err != nil {
			t.Fatalf("New after rollback: %v", err)
		}
	})

	t.Run("duplicate key ids", func(t *testing.T) {
		m, _ := newTestMetrics(t, newFakeSource(3, 1, 3), Options{})
		if got := testutil.CollectAndCount(m.upstreamDur); got != 2 {
			t.Errorf("per-key histograms = %d, want 2", got)
		}
	})
}

func TestLabelStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{RouteRun.String(), "run"},
		{RoutePassthrough.String(), "passthrough"},
		{Route(9).String(), ""},
		{ReasonAuth.String(), "auth"},
		{ReasonRateLimit.String(), "rate_limit"},
		{ReasonKeyLimit.String(), "key_limit"},
		{ReasonCredits.String(), "credits"},
		{ReasonFreeQuota.String(), "free_quota"},
		{ReasonInFlightBudget.String(), "in_flight_budget"},
		{Reason(9).String(), ""},
		{FailoverErrorEvent.String(), "error_event"},
		{FailoverClosedBeforeData.String(), "closed_before_data"},
		{FailoverReadError.String(), "read_error"},
		{FailoverReason(9).String(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
