package e2e

import (
	"os"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/configs"
)

// notExported are series a query may name that Prometheus makes itself
// for every scrape target, not the gateway.
var notExported = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
}

// TestDashboardNamesExportedMetrics runs traffic that creates every series
// keygate has (mtTraffic), then fails for each metric named by a Grafana
// dashboard query (panels, nested rows, templating) or a Prometheus alert
// that the live /metrics does not export.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	gw, up, _ := mtStartGateway(t)
	mtTraffic(t, gw, up, nil)
	_, mfs := mtScrape(t, gw)
	exported := mtExportedNames(mfs)
	// The budget series come from a gateway that reads budgets: over the
	// simulator, with a capped key and free-model calls.
	sim := econUpstream(t, 1, 0, time.Now)
	bgw := econGateway(t, sim, time.Now())
	for _, model := range []string{"openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct:free"} {
		if resp, body := econCall(t, bgw, model, 16); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", model, resp.StatusCode, body)
		}
	}
	_, bmfs := mtScrape(t, bgw)
	for name := range mtExportedNames(bmfs) {
		exported[name] = true
	}
	// keygate_redis_up comes from a gateway sharing a real Redis.
	rgw, _, _ := mtStartGateway(t, "REDIS_URL="+redistest.Start(t).URL())
	t.Cleanup(func() { _ = rgw.Close() })
	_, rmfs := mtScrape(t, rgw)
	for name := range mtExportedNames(rmfs) {
		exported[name] = true
	}

	b, err := os.ReadFile("../configs/grafana/dashboards/keygate.json")
	if err != nil {
		t.Fatal(err)
	}
	dash, err := configs.DashboardQueries(b)
	if err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile("../configs/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts := configs.AlertQueries(b)

	files := []struct {
		name    string
		queries []configs.Query
	}{
		{"keygate.json", dash},
		{"alerts.yml", alerts},
	}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			if len(f.queries) == 0 {
				t.Fatal("no queries found")
			}
			named := 0
			for _, q := range f.queries {
				for _, name := range configs.MetricNames(q.Expr) {
					named++
					if !exported[name] && !notExported[name] {
						t.Errorf("%s: %s is not a metric the gateway exports\n\texpr: %s", q.Where, name, q.Expr)
					}
				}
			}
			if named == 0 {
				t.Error("the queries name no metric")
			}
		})
	}
	if !slices.Contains(dash, configs.Query{Where: "variable key", Expr: "keygate_key_state"}) {
		t.Error("keygate.json: the key variable's label_values(keygate_key_state, key) was not checked")
	}
}

// mtExportedNames are the names a query can select from the families of a
// scrape: a histogram's _bucket, _sum and _count, a summary's own name with
// _sum and _count.
func mtExportedNames(mfs map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, mf := range mfs {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name], out[name+"_sum"], out[name+"_count"] = true, true, true
		default:
			out[name] = true
		}
	}
	return out
}
