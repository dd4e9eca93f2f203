package configs

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keygate/keygate/metrics"
)

// fakeKeys is a pool of two keys for metrics.New.
type fakeKeys struct{}

func (fakeKeys) KeyIDs() []int              { return []int{1, 2} }
func (fakeKeys) KeyState(int) int           { return 0 }
func (fakeKeys) KeyInFlight(int) int64      { return 0 }
func (fakeKeys) KeyRestSeconds(int) float64 { return 0 }
func (fakeKeys) KeysAvailable() int         { return 2 }

// recordingRegisterer remembers what metrics.New registers, so the test
// can count the metrics it describes.
type recordingRegisterer struct {
	prometheus.Registerer
	cs []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return r.Registerer.Register(c)
}

// scrapeLabels are the labels Prometheus adds to every series it scrapes.
var scrapeLabels = map[string]bool{"instance": true, "job": true}

// prometheusSeries are the series Prometheus makes itself for every scrape
// target, beside what the target exports.
var prometheusSeries = []string{"up", "scrape_duration_seconds", "scrape_samples_scraped",
	"scrape_samples_post_metric_relabeling", "scrape_series_added"}

// exported maps every series name a query can select from a keygate scrape
// to the label names it carries (scrape labels aside), as the real
// registry of metrics.New and metrics.NewRegistry exports them: a
// histogram gives _bucket (with le), _sum and _count.
type exported map[string]map[string]bool

// exportedMetrics builds keygate's registry with Redis configured, records
// through every method so that each vector has a child, and reads the
// families back. It fails when metrics.New describes a metric that the
// recording here does not bring out, so that a new metric cannot be missed:
// add a call for it below.
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	reg := metrics.NewRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	m, err := metrics.New(rec, fakeKeys{}, metrics.Options{Redis: true})
	if err != nil {
		t.Fatal(err)
	}
	m.Request(metrics.RouteRun, 200, time.Second)
	m.Upstream(1, "m", 200, time.Second)
	m.KeySelected(1, "random")
	m.Cooldown(1, metrics.ReasonAuth)
	m.Retry(metrics.ReasonAuth)
	m.Tokens(1, "m", 1, 1)
	m.Spend(1, "m", 0.01)
	m.SetKeyBudget(1, 1)
	m.SetAccountFreeRequests("a1b2", 10)
	m.StreamFailover(metrics.FailoverErrorEvent)
	m.PoolReload(true)
	m.SetRedisUp(true)

	described := 0
	for _, c := range rec.cs {
		ch := make(chan *prometheus.Desc, 64)
		c.Describe(ch)
		close(ch)
		for range ch {
			described++
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := exported{}
	var keygate []string
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "keygate_") {
			keygate = append(keygate, name)
		}
		ls := map[string]bool{}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				ls[lp.GetName()] = true
			}
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"] = with(ls, "le")
			out[name+"_sum"], out[name+"_count"] = ls, ls
		case dto.MetricType_SUMMARY:
			out[name] = with(ls, "quantile")
			out[name+"_sum"], out[name+"_count"] = ls, ls
		default:
			out[name] = ls
		}
	}
	if len(keygate) != described {
		t.Fatalf("metrics.New describes %d metrics, the recording here brings out %d (%q): record through the new method in exportedMetrics",
			described, len(keygate), keygate)
	}
	for _, name := range prometheusSeries {
		out[name] = map[string]bool{}
	}
	return out
}

func with(ls map[string]bool, extra string) map[string]bool {
	out := map[string]bool{extra: true}
	for l := range ls {
		out[l] = true
	}
	return out
}

func TestExportedMetrics(t *testing.T) {
	ex := exportedMetrics(t)
	tests := []struct {
		name   string
		labels []string
	}{
		{"keygate_key_budget_remaining_usd", []string{"key"}},
		{"keygate_key_spend_usd_total", []string{"key", "model"}},
		{"keygate_account_free_requests_remaining", []string{"account"}},
		{"keygate_key_rest_seconds", []string{"key"}},
		{"keygate_key_cooldowns_total", []string{"key", "reason"}},
		{"keygate_stream_failovers_total", []string{"reason"}},
		{"keygate_redis_up", nil},
		{"keygate_pool_reloads_total", []string{"result"}},
		{"keygate_request_duration_seconds_bucket", []string{"route", "le"}},
		{"keygate_request_duration_seconds_count", []string{"route"}},
		{"process_start_time_seconds", nil},
		{"up", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls, ok := ex[tt.name]
			if !ok {
				t.Fatal("not exported")
			}
			if len(ls) != len(tt.labels) {
				t.Errorf("labels %v, want %q", ls, tt.labels)
			}
			for _, l := range tt.labels {
				if !ls[l] {
					t.Errorf("labels %v lack %s", ls, l)
				}
			}
		})
	}
}
