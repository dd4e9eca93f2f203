package metrics

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentRecording runs every recording method from many goroutines
// while scrapes read the gauges of a changing source and reloads add and
// remove key 5; run it with -race.
func TestConcurrentRecording(t *testing.T) {
	src := newFakeSource(1, 2, 3, 4)
	m, reg := newTestMetrics(t, src, Options{MaxModels: 8, Redis: true})
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

	// Key 5 comes and goes while the workers record on it.
	var reloads sync.WaitGroup
	reloads.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				src.setIDs(1, 2, 3, 4)
				m.DeleteKey(5)
				return
			default:
			}
			if i%2 == 0 {
				src.setIDs(1, 2, 3, 4, 5)
			} else {
				src.setIDs(1, 2, 3, 4)
				m.DeleteKey(5)
			}
			m.PoolReload(i%3 != 0)
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
				m.Spend(key, model, 0.5)
				m.SetKeyBudget(key, float64(i))
				m.SetAccountFreeRequests("acct"+strconv.Itoa(key), i)
				m.StreamFailover(FailoverReason(i % int(numFailoverReasons)))
				m.SetRedisUp(i%2 == 0)
				m.Upstream(5, model, 200, time.Millisecond)
				m.Spend(5, model, 1)
				m.Tokens(5, model, 1, 1)
				m.SetKeyBudget(5, 1)
				m.Cooldown(5, ReasonFreeQuota)
				if i%50 == 0 {
					m.ClearKeyBudget(key)
					m.DeleteAccount("acct" + strconv.Itoa(key))
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	scrapes.Wait()
	reloads.Wait()

	sums := map[string]float64{}
	for k, v := range recorded(t, reg) {
		if strings.Contains(k, `key="5"`) {
			t.Errorf("%s = %v outlived the deletion of key 5", k, v)
		}
		if strings.HasPrefix(k, "keygate_key_budget_remaining_usd") ||
			strings.HasPrefix(k, "keygate_account_free_requests_remaining") ||
			strings.HasPrefix(k, "keygate_redis_up") || strings.HasPrefix(k, "keygate_pool_reloads_total") {
			continue
		}
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
		"keygate_key_spend_usd_total":                     0.5 * n,
		"keygate_stream_failovers_total":                  n,
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
