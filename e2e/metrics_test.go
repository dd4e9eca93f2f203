package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestMetricsAfterTraffic scrapes /metrics after scripted traffic through a
// round-robin gateway (mtTraffic) and checks every keygate series and its
// value, the key gauges while keys rest and once they are half-open, the
// `key` label set, that no key text leaks, and the Go and process series.
func TestMetricsAfterTraffic(t *testing.T) {
	gw, up, keys := mtStartGateway(t)
	states := map[string]map[string]float64{
		"resting":   {"1": 0, "2": 2, "3": 2, "4": 0},
		"half-open": {"1": 0, "2": 1, "3": 1, "4": 0},
	}
	available := map[string]float64{"resting": 2, "half-open": 4}
	mtTraffic(t, gw, up, func(phase string) {
		_, mfs := mtScrape(t, gw)
		got := mtSeries(t, mfs)
		for key, want := range states[phase] {
			if s := `keygate_key_state{key="` + key + `"}`; got[s] != want {
				t.Errorf("%s: %s = %v, want %v", phase, s, got[s], want)
			}
		}
		if got["keygate_keys_available{}"] != available[phase] {
			t.Errorf("%s: keygate_keys_available = %v, want %v", phase, got["keygate_keys_available{}"], available[phase])
		}
	})

	text, mfs := mtScrape(t, gw)
	want := mtWantAfterTraffic()
	got := mtSeries(t, mfs)
	for _, s := range mtSortedKeys(want) {
		if v, ok := got[s]; !ok {
			t.Errorf("missing %s (want %v)", s, want[s])
		} else if v != want[s] {
			t.Errorf("%s = %v, want %v", s, v, want[s])
		}
	}
	for _, s := range mtSortedKeys(got) {
		if _, ok := want[s]; !ok {
			t.Errorf("unexpected series %s = %v", s, got[s])
		}
	}

	if ids := mtLabelValues(mfs, "key"); !slices.Equal(ids, []string{"1", "2", "3", "4"}) {
		t.Errorf("key label values %q, want exactly the ids 1..4", ids)
	}
	mtCheckNoKeyText(t, text, keys)
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_start_time_seconds"} {
		if mfs[name] == nil {
			t.Errorf("no %s: the Go and process collectors are not registered", name)
		}
	}
}

// mtReasons are the reasons of cooldowns and retries, each exported from
// the start.
var mtReasons = []string{"auth", "rate_limit", "key_limit", "credits", "free_quota", "in_flight_budget"}

// mtWantAfterTraffic is every keygate series (histograms by their _count)
// after mtTraffic, with its value. Keys answered, in order: 1, 2→4, 1
// (stream), 3→4, 1 (boom), 4 (drop), 1+4 (/run), 1 (stream), then healed
// 4, 1, 2, 3.
func mtWantAfterTraffic() map[string]float64 {
	want := map[string]float64{
		`keygate_requests_total{code="200",route="passthrough"}`:      9,
		`keygate_requests_total{code="401",route="passthrough"}`:      1, // no gateway token
		`keygate_requests_total{code="500",route="passthrough"}`:      1,
		`keygate_requests_total{code="502",route="passthrough"}`:      1,
		`keygate_requests_total{code="200",route="run"}`:              1,
		`keygate_request_duration_seconds_count{route="passthrough"}`: 12,
		`keygate_request_duration_seconds_count{route="run"}`:         1,

		`keygate_upstream_requests_total{code="200",key="1",model="gpt-a"}`: 2,
		`keygate_upstream_requests_total{code="200",key="1",model="gpt-s"}`: 2,
		// boom and drop never succeeded: a model name is a label value
		// only once upstream answered it with success.
		`keygate_upstream_requests_total{code="500",key="1",model="unknown"}`:   1,
		`keygate_upstream_requests_total{code="200",key="1",model="gpt-r1"}`:    1,
		`keygate_upstream_requests_total{code="401",key="2",model="gpt-a"}`:     1,
		`keygate_upstream_requests_total{code="200",key="2",model="gpt-a"}`:     1,
		`keygate_upstream_requests_total{code="429",key="3",model="gpt-a"}`:     1,
		`keygate_upstream_requests_total{code="200",key="3",model="gpt-a"}`:     1,
		`keygate_upstream_requests_total{code="200",key="4",model="gpt-a"}`:     3,
		`keygate_upstream_requests_total{code="error",key="4",model="unknown"}`: 1,
		`keygate_upstream_requests_total{code="200",key="4",model="gpt-r2"}`:    1,

		`keygate_key_cooldowns_total{key="2",reason="auth"}`:       1,
		`keygate_key_cooldowns_total{key="3",reason="rate_limit"}`: 1,
		`keygate_retries_total{reason="auth"}`:                     1,
		`keygate_retries_total{reason="rate_limit"}`:               1,
		`keygate_keys_available{}`:                                 4,

		// 3+5 per plain answer and /run model, 7+11 per stream.
		`keygate_tokens_total{key="1",model="gpt-a",type="prompt"}`:      6,
		`keygate_tokens_total{key="1",model="gpt-a",type="completion"}`:  10,
		`keygate_tokens_total{key="1",model="gpt-s",type="prompt"}`:      14,
		`keygate_tokens_total{key="1",model="gpt-s",type="completion"}`:  22,
		`keygate_tokens_total{key="1",model="gpt-r1",type="prompt"}`:     3,
		`keygate_tokens_total{key="1",model="gpt-r1",type="completion"}`: 5,
		`keygate_tokens_total{key="2",model="gpt-a",type="prompt"}`:      3,
		`keygate_tokens_total{key="2",model="gpt-a",type="completion"}`:  5,
		`keygate_tokens_total{key="3",model="gpt-a",type="prompt"}`:      3,
		`keygate_tokens_total{key="3",model="gpt-a",type="completion"}`:  5,
		`keygate_tokens_total{key="4",model="gpt-a",type="prompt"}`:      9,
		`keygate_tokens_total{key="4",model="gpt-a",type="completion"}`:  15,
		`keygate_tokens_total{key="4",model="gpt-r2",type="prompt"}`:     3,
		`keygate_tokens_total{key="4",model="gpt-r2",type="completion"}`: 5,
	}
	calls := map[string]float64{"1": 6, "2": 2, "3": 2, "4": 5}
	for key, n := range calls {
		want[`keygate_upstream_request_duration_seconds_count{key="`+key+`"}`] = n
		want[`keygate_key_state{key="`+key+`"}`] = 0
		want[`keygate_key_in_flight{key="`+key+`"}`] = 0
		for _, st := range []string{"random", "round-robin", "least-busy"} {
			s := `keygate_key_selected_total{key="` + key + `",strategy="` + st + `"}`
			if st == "round-robin" {
				want[s] = n
			} else {
				want[s] = 0
			}
		}
		want[`keygate_key_rest_seconds{key="`+key+`"}`] = 0
		for _, reason := range mtReasons {
			s := `keygate_key_cooldowns_total{key="` + key + `",reason="` + reason + `"}`
			if _, ok := want[s]; !ok {
				want[s] = 0
			}
		}
	}
	for _, reason := range append(mtReasons[:len(mtReasons):len(mtReasons)], "afford") {
		s := `keygate_retries_total{reason="` + reason + `"}`
		if _, ok := want[s]; !ok {
			want[s] = 0
		}
	}
	for _, reason := range []string{"error_event", "closed_before_data", "read_error"} {
		want[`keygate_stream_failovers_total{reason="`+reason+`"}`] = 0
	}
	want[`keygate_pool_reloads_total{result="ok"}`] = 0
	want[`keygate_pool_reloads_total{result="refused"}`] = 0
	return want
}

// mtCheckNoKeyText fails when any 12-character piece of a raw key appears
// in text.
func mtCheckNoKeyText(t testing.TB, text string, keys []string) {
	t.Helper()
	if piece, found := hdLeak(text, keys); found {
		t.Errorf("/metrics holds %q, a piece of a key", piece)
	}
}

func mtSortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestMetricsModelBound sends 20 distinct model names through a gateway
// that keeps 5: the first 5 get their own series, the rest count as other,
// in the upstream and the token counters alike.
func TestMetricsModelBound(t *testing.T) {
	gw, up, _ := mtStartGateway(t, "METRICS_MAX_MODELS=5")
	up.healed.Store(true)
	const n = 20
	for i := range n {
		mtChat(t, gw, fmt.Sprintf("bound-%02d", i), 200, strconv.Itoa(1+i%4))
	}
	mtSettle(t, gw, n)
	_, mfs := mtScrape(t, gw)
	want := []string{"bound-00", "bound-01", "bound-02", "bound-03", "bound-04", "other"}
	for _, name := range []string{"keygate_upstream_requests_total", "keygate_tokens_total"} {
		if got := mtLabelValues(mfs, "model", name); !slices.Equal(got, want) {
			t.Errorf("%s model values %q, want %q", name, got, want)
		}
	}
	other := map[string]float64{}
	for _, name := range []string{"keygate_upstream_requests_total", "keygate_tokens_total"} {
		for _, m := range mfs[name].GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["model"] == "other" {
				other[strings.TrimSpace(name+" "+labels["type"])] += m.GetCounter().GetValue()
			}
		}
	}
	wantOther := map[string]float64{
		"keygate_upstream_requests_total": n - 5,
		"keygate_tokens_total prompt":     3 * (n - 5),
		"keygate_tokens_total completion": 5 * (n - 5),
	}
	if !maps.Equal(other, wantOther) {
		t.Errorf("series of model other sum to %v, want %v", other, wantOther)
	}
}
