package metrics

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentRecording runs every recording method from many goroutines
// while scrapes read the gauges of a changing source; run it with -race.
func TestConcurrentRecording(t *testing.T) {
	src := newFakeSource(1, 2, 3, 4)
	m, reg := newTestMetrics(t, src, Options{MaxModels: 8})
	const workers, iters = 16, 500
	codes := []int{200, 401, 429, 500, 0}

	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			src.set(1+i%4, i%3, int64(i%7), i%5)
			if _, err := reg.Gather(); err != nil {
				t.Errorf("Gather: %v", err)
				return
			}
		}
	})

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range iters {
				key := 1 + (w+i)%4
				model := "m" + strconv.Itoa((w*iters+i)%20) // 20 names, 8 kept
				m.Request(Route(i%2), codes[i%len(codes)], time.Millisecond)
				m.Upstream(key, model, codes[i%len(codes)], time.Millisecond)
				m.KeySelected(key, strategies[i%len(strategies)])
				m.Cooldown(key, Reason(i%2))
				m.Retry(Reason(i % 2))
				m.Tokens(key, model, 2, 3)
			}
		})
	}
	wg.Wait()
	close(stop)
	scrapes.Wait()

	sums := map[string]float64{}
	for k, v := range recorded(t, reg) {
		sums[k[:strings.IndexByte(k, '{')]] += v
	}
	const n = workers * iters
	want := map[string]float64{
		"keygate_requests_total":                          n,
		"keygate_request_duration_seconds_count":          n,
		"keygate_upstream_requests_total":                 n,
		"keygate_upstream_request_duration_seconds_count": n,
		"keygate_key_selected_total":                      n,
		"keygate_key_cooldowns_total":                     n,
		"keygate_retries_total":                           n,
		"keygate_tokens_total":                            5 * n,
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			if sums[name] != w {
				t.Errorf("total = %v, want %v", sums[name], w)
			}
		})
	}
	if got := labelValues(t, reg, "keygate_upstream_requests_total", "model"); len(got) != 9 {
		t.Errorf("model values = %q, want 8 plus other", got)
	}
}
