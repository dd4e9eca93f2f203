package configs

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	dashboardPath = "grafana/dashboards/keygate.json"
	datasourceYML = "grafana/provisioning/datasources/prometheus.yml"
)

// keygateMetrics are the series the gateway exports (CONTRACT.md, Metrics),
// with the label names each carries. Histograms are listed by their series.
var keygateMetrics = map[string][]string{
	"keygate_requests_total":                           {"route", "code"},
	"keygate_request_duration_seconds_bucket":          {"route", "le"},
	"keygate_request_duration_seconds_sum":             {"route"},
	"keygate_request_duration_seconds_count":           {"route"},
	"keygate_upstream_requests_total":                  {"key", "model", "code"},
	"keygate_upstream_request_duration_seconds_bucket": {"key", "le"},
	"keygate_upstream_request_duration_seconds_sum":    {"key"},
	"keygate_upstream_request_duration_seconds_count":  {"key"},
	"keygate_key_selected_total":                       {"key", "strategy"},
	"keygate_key_state":                                {"key"},
	"keygate_key_in_flight":                            {"key"},
	"keygate_key_cooldowns_total":                      {"key", "reason"},
	"keygate_retries_total":                            {"reason"},
	"keygate_tokens_total":                             {"key", "model", "type"},
	"keygate_keys_available":                           {},
}

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string               `json:"name"`
	Definition string               `json:"definition"`
	Query      json.RawMessage      `json:"query"` // a string, or an object in Grafana 10+
	Multi      bool                 `json:"multi"`
	IncludeAll bool                 `json:"includeAll"`
	Datasource struct{ UID string } `json:"datasource"`
}

type panel struct {
	Type       string               `json:"type"`
	Title      string               `json:"title"`
	Datasource struct{ UID string } `json:"datasource"`
	Targets    []struct {
		Expr       string               `json:"expr"`
		Datasource struct{ UID string } `json:"datasource"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// provisionedUID reads the data source uid from the Grafana provisioning
// file (one data source, so the first uid is it).
func provisionedUID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(datasourceYML)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*uid:\s*"?([^"\s]+)"?\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no uid", datasourceYML)
	}
	return string(m[1])
}

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	uid := provisionedUID(t)

	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later (Grafana 9+)", d.SchemaVersion)
	}

	t.Run("key variable", func(t *testing.T) {
		const want = "label_values(keygate_key_state, key)"
		i := slices.IndexFunc(d.Templating.List, func(v variable) bool { return v.Name == "key" })
		if i < 0 {
			t.Fatal("no templating variable named key")
		}
		v := d.Templating.List[i]
		if !strings.Contains(string(v.Query), want) && v.Definition != want {
			t.Errorf("key variable query %s: want %s", v.Query, want)
		}
		if !v.Multi || !v.IncludeAll {
			t.Errorf("key variable: multi=%v includeAll=%v, want both", v.Multi, v.IncludeAll)
		}
		if v.Datasource.UID != uid {
			t.Errorf("key variable data source %q, want the provisioned %q", v.Datasource.UID, uid)
		}
	})

	var rows []string
	used := map[string]bool{}
	stateTimelines := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if len(rows) == 0 {
			t.Errorf("panel %q comes before the first row", p.Title)
			continue
		}
		overview := rows[len(rows)-1] == "Overview"
		switch p.Type {
		case "timeseries":
		case "state-timeline":
			stateTimelines++
		default:
			t.Errorf("panel %q: type %s, want timeseries or state-timeline", p.Title, p.Type)
		}
		if p.Datasource.UID != uid {
			t.Errorf("panel %q: data source %q, want the provisioned %q", p.Title, p.Datasource.UID, uid)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != uid {
				t.Errorf("panel %q: query data source %q, want %q", p.Title, tg.Datasource.UID, uid)
			}
			checkExpr(t, p.Title, tg.Expr, overview, used)
		}
	}
	if want := []string{"Overview", "Keys", "Upstream latency", "Tokens", "Retries/cooldowns"}; !slices.Equal(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
	if stateTimelines != 1 {
		t.Errorf("%d state-timeline panels, want 1 (key states)", stateTimelines)
	}
	for name := range keygateMetrics {
		if !used[name] && !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") {
			t.Errorf("no panel shows %s", name)
		}
	}
}

// checkExpr checks one panel query: known metric names only, counters and
// buckets through rate or increase, and the key variable applied outside the
// pool-wide Overview row.
func checkExpr(t *testing.T, title, expr string, overview bool, used map[string]bool) {
	t.Helper()
	if strings.TrimSpace(expr) == "" {
		t.Errorf("panel %q: empty expr", title)
		return
	}
	for _, name := range MetricNames(expr) {
		labels, ok := keygateMetrics[name]
		if !ok {
			t.Errorf("panel %q: %s is not a metric keygate exports", title, name)
			continue
		}
		used[name] = true
		if strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_bucket") {
			inRate := regexp.MustCompile(`\b(rate|increase)\(\s*` + name + `\b(\{[^}]*\})?\[`)
			if n, m := strings.Count(expr, name), len(inRate.FindAllString(expr, -1)); n != m {
				t.Errorf("panel %q: %s must be read through rate() or increase()", title, name)
			}
		}
		if strings.HasSuffix(name, "_bucket") && !strings.HasPrefix(expr, "histogram_quantile(") {
			t.Errorf("panel %q: %s outside histogram_quantile", title, name)
		}
		if !overview && slices.Contains(labels, "key") && !strings.Contains(expr, `key=~"$key"`) {
			t.Errorf("panel %q: %s not filtered by the key variable", title, name)
		}
	}
}
