package metrics

import (
	"strconv"
	"testing"
	"time"
)

// benchModels are fewer than the bound, so every one is kept.
var benchModels = []string{"openai/gpt-4o", "anthropic/claude-3.5-sonnet", "meta/llama-3-70b", "google/gemini-pro"}

var benchCodes = []int{200, 200, 200, 429, 401, 500, 0}

var benchAccounts = []string{"a1b2c3d4", "e5f60718", "293a4b5c", "6d7e8f90"}

func warm(m *Metrics) {
	for k := 1; k <= 4; k++ {
		for _, model := range benchModels {
			for _, c := range benchCodes {
				m.Upstream(k, model, c, time.Millisecond)
			}
			m.Tokens(k, model, 1, 1)
			m.Spend(k, model, 0.01)
		}
		m.SetKeyBudget(k, 1)
		m.SetAccountFreeRequests(benchAccounts[k-1], 50)
	}
	for r := range numRoutes {
		for _, c := range benchCodes {
			m.Request(r, c, time.Millisecond)
		}
	}
}

// TestHotPathAllocs pins the benchmarks' claim in the test suite: a warm
// call allocates nothing.
func TestHotPathAllocs(t *testing.T) {
	m, _ := newTestMetrics(t, newFakeSource(1, 2, 3, 4), Options{MaxModels: 6})
	warm(m)
	m.Upstream(1, "overflow-0", 200, 0) // fills the bound
	m.Upstream(1, "overflow-1", 200, 0)
	m.Upstream(1, "overflow-2", 200, 0) // -> other
	tests := []struct {
		name string
		f    func()
	}{
		{"Request", func() { m.Request(RoutePassthrough, 429, time.Millisecond) }},
		{"Upstream", func() { m.Upstream(2, benchModels[1], 200, time.Millisecond) }},
		{"Upstream error", func() { m.Upstream(3, benchModels[2], 0, time.Millisecond) }},
		{"Upstream over bound", func() { m.Upstream(1, "overflow-9", 200, time.Millisecond) }},
		{"Tokens", func() { m.Tokens(4, benchModels[3], 10, 20) }},
		{"KeySelected", func() { m.KeySelected(1, "least-busy") }},
		{"Cooldown", func() { m.Cooldown(1, ReasonRateLimit) }},
		{"Retry", func() { m.Retry(ReasonAuth) }},
		{"Cooldown free_quota", func() { m.Cooldown(2, ReasonFreeQuota) }},
		{"Retry in_flight_budget", func() { m.Retry(ReasonInFlightBudget) }},
		{"Spend", func() { m.Spend(3, benchModels[0], 0.0042) }},
		{"Spend over bound", func() { m.Spend(1, "overflow-9", 0.001) }},
		{"SetKeyBudget", func() { m.SetKeyBudget(2, 4.2) }},
		{"SetAccountFreeRequests", func() { m.SetAccountFreeRequests(benchAccounts[1], 49) }},
		{"StreamFailover", func() { m.StreamFailover(FailoverErrorEvent) }},
		{"PoolReload", func() { m.PoolReload(true) }},
		{"SetRedisUp", func() { m.SetRedisUp(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(100, tt.f); a != 0 {
				t.Errorf("%v allocs per call, want 0", a)
			}
		})
	}
}

func benchMetrics(b *testing.B) *Metrics {
	m, _ := newTestMetrics(b, newFakeSource(1, 2, 3, 4), Options{})
	warm(m)
	b.ReportAllocs()
	b.ResetTimer()
	return m
}

func BenchmarkRequest(b *testing.B) {
	m := benchMetrics(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Request(Route(i&1), benchCodes[i%len(benchCodes)], time.Millisecond)
			i++
		}
	})
}

func BenchmarkUpstream(b *testing.B) {
	m := benchMetrics(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Upstream(1+i&3, benchModels[i%len(benchModels)], benchCodes[i%len(benchCodes)], time.Millisecond)
			i++
		}
	})
}

// BenchmarkUpstreamOverBound records models past the bound, the path a
// client inventing model names takes.
func BenchmarkUpstreamOverBound(b *testing.B) {
	m := benchMetrics(b)
	for i := range DefaultMaxModels {
		m.Upstream(1, "fill-"+strconv.Itoa(i), 200, 0)
	}
	names := make([]string, 1024)
	for i := range names {
		names[i] = "invented-" + strconv.Itoa(i)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Upstream(1+i&3, names[i&1023], 200, time.Millisecond)
			i++
		}
	})
}

func BenchmarkTokens(b *testing.B) {
	m := benchMetrics(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Tokens(1+i&3, benchModels[i%len(benchModels)], 100, 200)
			i++
		}
	})
}

func BenchmarkSpend(b *testing.B) {
	m := benchMetrics(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Spend(1+i&3, benchModels[i%len(benchModels)], 0.0042)
			i++
		}
	})
}

// BenchmarkSetKeyBudget is the cost of taking an answer's cost off a key's
// remaining budget, which the budget tracker does after every answer.
func BenchmarkSetKeyBudget(b *testing.B) {
	m := benchMetrics(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.SetKeyBudget(1+i&3, float64(i))
			i++
		}
	})
}

func BenchmarkSetAccountFreeRequests(b *testing.B) {
	m := benchMetrics(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.SetAccountFreeRequests(benchAccounts[i&3], i)
			i++
		}
	})
}

func BenchmarkKeySelected(b *testing.B) {
	m := benchMetrics(b)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.KeySelected(1+i&3, strategies[i%len(strategies)])
			i++
		}
	})
}

// BenchmarkScrape is the cost of one Gather of keygate's series, gauges
// included, for a warm pool of four keys.
func BenchmarkScrape(b *testing.B) {
	m, reg := newTestMetrics(b, newFakeSource(1, 2, 3, 4), Options{})
	warm(m)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
