package app

import (
	"slices"
	"testing"
)

// TestReloadNewKeySeriesAtZero: a key a reload adds (or renumbers) has its
// per-key counters at 0 from the reload on, as the keys of start-up have,
// so that rate() and increase() see its first selection or rest; a series
// born at 1 shows no increase.
func TestReloadNewKeySeriesAtZero(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{})
	// Key 3 is new; key 2's secret moves to id 1 (renumbered); key 1 goes.
	next := entries(2, 3)
	next[0].ID = 1
	next[1].ID = 2
	if res := a.Live.Apply(next, nil, "file"); res.Refused != "" {
		t.Fatalf("reload refused: %s", res.Refused)
	}
	for _, tt := range []struct{ metric, series string }{
		{"keygate_key_cooldowns_total", `keygate_key_cooldowns_total{key="2",reason="auth"} 0`},
		{"keygate_key_cooldowns_total", `keygate_key_cooldowns_total{key="1",reason="rate_limit"} 0`},
		{"keygate_key_selected_total", `keygate_key_selected_total{key="2",strategy="random"} 0`},
		{"keygate_upstream_request_duration_seconds_count", `keygate_upstream_request_duration_seconds_count{key="2"} 0`},
	} {
		if got := scrape(t, a, tt.metric); !slices.Contains(got, tt.series) {
			t.Errorf("no %s after the reload; have %v", tt.series, got)
		}
	}
}

// TestReloadAddedIDSeriesAtZero: an id the old pool did not have starts at
// 0 too; AddKey ran while the gauges' source still listed the old ids only,
// so the new id's series were born at its first event.
func TestReloadAddedIDSeriesAtZero(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{})
	if res := a.Live.Apply(entries(1, 2, 3), nil, "file"); res.Refused != "" {
		t.Fatalf("reload refused: %s", res.Refused)
	}
	for _, tt := range []struct{ metric, series string }{
		{"keygate_key_selected_total", `keygate_key_selected_total{key="3",strategy="random"} 0`},
		{"keygate_key_cooldowns_total", `keygate_key_cooldowns_total{key="3",reason="auth"} 0`},
		{"keygate_upstream_request_duration_seconds_count", `keygate_upstream_request_duration_seconds_count{key="3"} 0`},
	} {
		if got := scrape(t, a, tt.metric); !slices.Contains(got, tt.series) {
			t.Errorf("no %s after the reload; have %v", tt.series, got)
		}
	}
}
