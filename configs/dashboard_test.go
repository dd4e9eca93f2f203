package configs

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	dashboardPath = "grafana/dashboards/keygate.json"
	datasourceYML = "grafana/provisioning/datasources/prometheus.yml"
	alertsPath    = "prometheus/alerts.yml"
)

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
	ex := exportedMetrics(t)

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

	var rows, titles []string
	used := map[string]bool{}
	for _, p := range d.Panels {
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		titles = append(titles, p.Title)
		if len(rows) == 0 {
			t.Errorf("panel %q comes before the first row", p.Title)
			continue
		}
		if p.Type != "timeseries" && p.Type != "state-timeline" {
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
			rules := panelRules
			if rows[len(rows)-1] != "Overview" {
				rules.keyFilter = true
			}
			checkExpr(t, "panel "+p.Title, tg.Expr, ex, rules, used)
		}
	}
	wantRows := []string{"Overview", "Keys", "Budgets", "Upstream latency", "Tokens", "Retries/cooldowns", "Streams, pool and Redis"}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("rows %q, want %q", rows, wantRows)
	}
	// The panels the dashboard had before it was generated, and those of
	// Wave 2: renaming or dropping one is a change users see.
	for _, want := range []string{
		"Gateway requests by route and code", "Gateway latency p50 / p95 / p99 by route",
		"Keys available", "Upstream error and 429 share", "Upstream requests per key",
		"Key selections per key and strategy", "Key states", "401 / 402 / 403 and 429 per key",
		"In flight per key", "Upstream latency p50 per key", "Upstream latency p95 per key",
		"Upstream latency p99 per key", "Tokens per key", "Tokens per model", "Retries by reason",
		"Cooldowns started per key",
		"Budget remaining per key", "Spend per key", "Spend per model", "Free requests left per account",
		"Rest left per key", "Cooldowns by reason", "Stream failovers by reason", "Pool reloads",
		"Redis up per replica",
	} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q", want)
		}
	}
	for name := range ex {
		if strings.HasPrefix(name, "keygate_") && !used[name] &&
			!strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") {
			t.Errorf("no panel shows %s", name)
		}
	}
}

// TestRules parses every alerting and recording rule with Prometheus'
// parser and holds its selectors against what keygate exports.
func TestRules(t *testing.T) {
	ex := exportedMetrics(t)
	b, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := RuleQueries(b)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "expr:"); len(qs) != n {
		t.Errorf("%d rules read, want one per expr: (%d)", len(qs), n)
	}
	used := map[string]bool{}
	for _, q := range qs {
		checkExpr(t, q.Where, q.Expr, ex, exprRules{}, used)
	}
	for _, want := range []string{"keygate_key_budget_remaining_usd", "keygate_key_spend_usd_total",
		"keygate_account_free_requests_remaining"} {
		if !used[want] {
			t.Errorf("no alert reads %s: a key or an account about to run dry must page", want)
		}
	}
}

// exprRules are what checkExpr insists on beyond known names and labels.
type exprRules struct {
	// counters: a counter or histogram bucket only through rate() or
	// increase(), a bucket only inside histogram_quantile (a dashboard has
	// no use for a raw counter; an alert may compare one with 0).
	counters bool
	// keyFilter: a metric with a key label is filtered by $key.
	keyFilter bool
	// replicas: every selector is aggregated, so that several keygate
	// replicas behind one Prometheus draw one line, not one per replica:
	// counters and in-flight counts added up with sum, facts the replicas
	// share (sharedFacts) taken once with max or min.
	replicas bool
}

var panelRules = exprRules{counters: true, replicas: true}

// sharedFacts are gauges every replica reports alike (with Redis), which a
// sum would count once per replica.
var sharedFacts = map[string]bool{
	"keygate_key_state": true, "keygate_key_rest_seconds": true, "keygate_keys_available": true,
	"keygate_key_budget_remaining_usd": true, "keygate_account_free_requests_remaining": true,
	"keygate_redis_up": true,
}

// checkExpr parses expr with Prometheus' parser and checks it: every
// selector names a series keygate exports (or Prometheus adds to a
// scrape), every matcher and every `by` label is one those series carry,
// plus what rules demands. Names it selects are added to used.
func checkExpr(t reporter, where, expr string, ex exported, rules exprRules, used map[string]bool) {
	t.Helper()
	e, err := ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			checkSelector(t, where, n, path, ex, rules, used)
		case *parser.AggregateExpr:
			if n.Without {
				break
			}
			have := labelsUnder(n.Expr, ex)
			for _, g := range n.Grouping {
				if !have[g] && !scrapeLabels[g] {
					t.Errorf("%s: by (%s): no series under %s has that label", where, g, n.Op)
				}
			}
		}
		return nil
	})
}

func checkSelector(t reporter, where string, vs *parser.VectorSelector, path []parser.Node,
	ex exported, rules exprRules, used map[string]bool) {
	t.Helper()
	name := SelectorName(vs)
	ls, ok := ex[name]
	if !ok {
		t.Errorf("%s: %q is not a metric keygate exports", where, name)
		return
	}
	used[name] = true
	filtered := false
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			continue
		}
		if !ls[m.Name] && !scrapeLabels[m.Name] {
			t.Errorf("%s: %s has no label %q", where, name, m.Name)
		}
		if m.Name == "key" && m.Type == labels.MatchRegexp && m.Value == "$key" {
			filtered = true
		}
	}
	if rules.keyFilter && ls["key"] && !filtered {
		t.Errorf(`%s: %s not filtered by key=~"$key"`, where, name)
	}
	if rules.replicas {
		var agg *parser.AggregateExpr
		for i := len(path) - 1; i >= 0 && agg == nil; i-- {
			agg, _ = path[i].(*parser.AggregateExpr)
		}
		switch {
		case agg == nil:
			t.Errorf("%s: %s is not aggregated: one line per replica", where, name)
		case sharedFacts[name] && agg.Op != parser.MAX && agg.Op != parser.MIN:
			t.Errorf("%s: %s is one figure the replicas share: take it with max or min, not %s", where, name, agg.Op)
		case !sharedFacts[name] && agg.Op != parser.SUM:
			t.Errorf("%s: %s counts per replica: add the replicas up with sum, not %s", where, name, agg.Op)
		}
	}
	if !rules.counters {
		return
	}
	if strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_bucket") {
		ms, _ := ancestor(path, 0).(*parser.MatrixSelector)
		call, _ := ancestor(path, 1).(*parser.Call)
		if ms == nil || call == nil || (call.Func.Name != "rate" && call.Func.Name != "increase") {
			t.Errorf("%s: %s must be read through rate() or increase()", where, name)
		}
	}
	if strings.HasSuffix(name, "_bucket") && !slices.ContainsFunc(path, func(n parser.Node) bool {
		c, ok := n.(*parser.Call)
		return ok && c.Func.Name == "histogram_quantile"
	}) {
		t.Errorf("%s: %s outside histogram_quantile", where, name)
	}
}

// ancestor is the i-th enclosing expression of a node (0 its parent),
// skipping parentheses and argument lists.
func ancestor(path []parser.Node, i int) parser.Node {
	for j := len(path) - 1; j >= 0; j-- {
		switch path[j].(type) {
		case *parser.ParenExpr, parser.Expressions:
			continue
		}
		if i == 0 {
			return path[j]
		}
		i--
	}
	return nil
}

// labelsUnder is the union of the labels of the series selected below n,
// with those label_replace and label_join add.
func labelsUnder(n parser.Node, ex exported) map[string]bool {
	out := map[string]bool{}
	parser.Inspect(n, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			for l := range ex[SelectorName(n)] {
				out[l] = true
			}
		case *parser.Call:
			if (n.Func.Name == "label_replace" || n.Func.Name == "label_join") && len(n.Args) > 1 {
				if s, ok := n.Args[1].(*parser.StringLiteral); ok {
					out[s.Val] = true
				}
			}
		}
		return nil
	})
	return out
}

// TestCheckExpr pins what checkExpr catches, so that the dashboard and
// rules tests cannot pass by checking nothing.
func TestCheckExpr(t *testing.T) {
	ex := exportedMetrics(t)
	tests := []struct {
		name  string
		expr  string
		rules exprRules
		fails bool
	}{
		{"counter through rate", `sum by (key) (rate(keygate_upstream_requests_total{key=~"$key"}[$__rate_interval]))`, exprRules{counters: true, keyFilter: true, replicas: true}, false},
		{"a panel without aggregation", `keygate_key_in_flight`, panelRules, true},
		{"a shared fact added up over replicas", `sum by (key) (keygate_key_budget_remaining_usd)`, panelRules, true},
		{"a shared fact taken once", `count(max by (key) (keygate_key_state))`, panelRules, false},
		{"a counter's max over replicas", `max by (key) (rate(keygate_key_spend_usd_total[5m]))`, panelRules, true},
		{"does not parse", `sum by (key) (rate(keygate_upstream_requests_total[5m])`, exprRules{}, true},
		{"unknown metric", `keygate_no_such_metric`, exprRules{}, true},
		{"unknown label matcher", `keygate_keys_available{key="1"}`, exprRules{}, true},
		{"scrape label matcher", `keygate_keys_available{instance="a:4000"}`, exprRules{}, false},
		{"unknown by label", `sum by (model) (keygate_key_state)`, exprRules{}, true},
		{"by label from label_replace", `sum by (k) (label_replace(keygate_key_state, "k", "$1", "key", "(.*)"))`, exprRules{}, false},
		{"raw counter on a panel", `keygate_retries_total`, panelRules, true},
		{"raw counter in an alert", `keygate_retries_total > 0`, exprRules{}, false},
		{"counter through deriv", `deriv(keygate_retries_total[5m])`, panelRules, true},
		{"bucket outside histogram_quantile", `sum(rate(keygate_request_duration_seconds_bucket[5m]))`, panelRules, true},
		{"histogram quantile", `histogram_quantile(0.9, sum by (le, route) (rate(keygate_request_duration_seconds_bucket[5m])))`, panelRules, false},
		{"key metric without the key variable", `max by (key) (keygate_key_state)`, exprRules{keyFilter: true}, true},
		{"by __name__ selector", `{__name__="keygate_key_state"}`, exprRules{}, false},
		{"Prometheus' own series", `up{job="keygate"} == 0`, exprRules{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got errorList
			checkExpr(&got, tt.name, tt.expr, ex, tt.rules, map[string]bool{})
			if tt.fails && len(got) == 0 {
				t.Error("checkExpr found nothing wrong")
			}
			if !tt.fails && len(got) > 0 {
				t.Errorf("checkExpr: %q", got)
			}
		})
	}
}

// reporter is the part of testing.T that checkExpr reports through.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// errorList is a reporter that keeps what it is told.
type errorList []string

func (*errorList) Helper() {}

func (l *errorList) Errorf(format string, args ...any) {
	*l = append(*l, fmt.Sprintf(format, args...))
}
