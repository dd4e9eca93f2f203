package configs

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestPromQLMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (key) (rate(keygate_upstream_requests_total{key=~"$key", code="429"}[$__rate_interval]))`,
			[]string{"keygate_upstream_requests_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1e3`, []string{"a_bucket"}},
		{`sum(x) without (instance) / on (job) group_left (key) y offset 5m`, []string{"x", "y"}},
		{`keygate_key_state == 2 and on (instance, key) increase(c_total{reason="auth"}[15m]) > 0`,
			[]string{"keygate_key_state", "c_total"}},
		{`label_replace(up, "a", "$1", "b", "(.*)")`, []string{"up"}},
		{`(time() - process_start_time_seconds < 3600)`, []string{"process_start_time_seconds"}},
		{`{__name__="x"}`, []string{"x"}},
		{`{__name__=~"x.*"}`, nil},
		{`rate(x[$__rate_interval]) / rate(y[${__interval}]) and z offset $__range`, []string{"x", "y", "z"}},
		{`max by (key) (keygate_key_state{key=~"$key"})`, []string{"keygate_key_state"}},
		{`count_over_time(x[5m:1m])`, []string{"x"}},
		{`sum(rate(x[5m])`, nil}, // does not parse
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := MetricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("MetricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

func TestVariableExpr(t *testing.T) {
	tests := []struct{ query, want string }{
		{"label_values(keygate_key_state, key)", "keygate_key_state"},
		{`label_values(keygate_tokens_total{key=~"$key"}, model)`, `keygate_tokens_total{key=~"$key"}`},
		{"label_values(key)", ""},
		{"label_names()", ""},
		{"metrics(keygate_.*)", ""},
		{"query_result(topk(3, keygate_key_in_flight))", "topk(3, keygate_key_in_flight)"},
		{"keygate_keys_available", "keygate_keys_available"},
	}
	for _, tt := range tests {
		if got := VariableExpr(tt.query); got != tt.want {
			t.Errorf("VariableExpr(%q) = %q, want %q", tt.query, got, tt.want)
		}
	}
}

func TestDashboardQueries(t *testing.T) {
	doc := []byte(`{
	  "annotations": {"list": [{"expr": "changes(a_total[1m])"}]},
	  "panels": [
	    {"type": "row", "title": "R", "collapsed": true,
	     "panels": [{"title": "inner", "targets": [{"expr": "rate(b_total[5m])"}]}]},
	    {"title": "outer", "targets": [{"expr": "c"}, {"refId": "B"}]}
	  ],
	  "templating": {"list": [
	    {"name": "key", "type": "query", "query": {"query": "label_values(d, key)", "refId": "x"}},
	    {"name": "old", "type": "query", "query": "label_values(e, key)"},
	    {"name": "def", "type": "query", "query": "", "definition": "label_values(f, key)"},
	    {"name": "n", "type": "custom", "query": "1,2,3"}
	  ]}
	}`)
	qs, err := DashboardQueries(doc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range qs {
		got = append(got, q.Where+": "+q.Expr)
	}
	slices.Sort(got)
	want := []string{
		`dashboard: changes(a_total[1m])`,
		`panel "inner": rate(b_total[5m])`,
		`panel "outer": c`,
		`variable def: f`,
		`variable key: d`,
		`variable old: e`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("DashboardQueries:\n got %q\nwant %q", got, want)
	}
	if _, err := DashboardQueries([]byte("{")); err == nil {
		t.Error("DashboardQueries of broken JSON: no error")
	}
}

func TestAlertQueries(t *testing.T) {
	rules := []byte(`groups:
  - name: g
    rules:
      - alert: Plain
        expr: up{job="keygate"} == 0 # comment
        for: 2m
      - alert: Quoted
        expr: "a > 1"
      - record: job:b:rate5m
        expr: 'sum(rate(b[5m]))'
      - alert: Block
        expr: |
          c == 2
          and on (key)

            d > 0
        labels:
          severity: warning
`)
	got := AlertQueries(rules)
	want := []Query{
		{"alert Plain", `up{job="keygate"} == 0`},
		{"alert Quoted", "a > 1"},
		{"record job:b:rate5m", "sum(rate(b[5m]))"},
		{"alert Block", "c == 2\nand on (key)\n\n  d > 0"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("AlertQueries:\n got %q\nwant %q", got, want)
	}
	if _, err := RuleQueries([]byte("groups: [")); err == nil {
		t.Error("RuleQueries of broken YAML: no error")
	}
	if got := AlertQueries([]byte("groups: [")); got != nil {
		t.Errorf("AlertQueries of broken YAML = %q, want nil", got)
	}
}

func TestParseExpr(t *testing.T) {
	tests := []struct {
		expr string
		ok   bool
	}{
		{`sum(rate(keygate_requests_total[$__rate_interval]))`, true},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket[${__rate_interval}])))`, true},
		{`x{key=~"$key"}`, true},
		{`sum(rate(x[$__rate_interval])`, false},
		{`rate(x[$key])`, false}, // only interval variables stand for durations
		{`no_such_function(x)`, false},
		{`label_values(keygate_key_state, key)`, false}, // Grafana's, not PromQL
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := ParseExpr(tt.expr)
			if (err == nil) != tt.ok {
				t.Errorf("ParseExpr(%q) error = %v, want ok=%v", tt.expr, err, tt.ok)
			}
		})
	}
}

// FuzzMetricNames: any input, PromQL or not, gives names without a panic,
// and every name is one the parser read from a selector.
func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{
		`sum by (key) (rate(keygate_upstream_requests_total{key=~"$key"}[$__rate_interval]))`,
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m]))) > 1e3`,
		`{__name__="x"}`, `label_values(keygate_key_state, key)`, `(`, ``, `a or b unless c`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, name := range MetricNames(expr) {
			if name == "" {
				t.Errorf("MetricNames(%q) holds an empty name", expr)
			}
		}
	})
}

// FuzzVariableExpr: any templating query gives a result without a panic,
// and a label_values result is a prefix of its argument list.
func FuzzVariableExpr(f *testing.F) {
	for _, s := range []string{
		"label_values(keygate_key_state, key)", "label_values(key)", "query_result(up)",
		"metrics(keygate_.*)", "label_names()", "keygate_keys_available", "label_values(", ")(",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got := VariableExpr(q)
		if strings.HasPrefix(strings.TrimSpace(q), "label_values(") && !strings.Contains(q, got) {
			t.Errorf("VariableExpr(%q) = %q, not taken from the query", q, got)
		}
	})
}

// TestDeploymentQueriesFound guards the readers against a change of layout
// in the real files that would leave them finding nothing.
func TestDeploymentQueriesFound(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := DashboardQueries(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(qs, Query{Where: "variable key", Expr: "keygate_key_state"}) {
		t.Errorf("dashboard: key variable query not found in %q", qs)
	}
	if len(qs) < 20 {
		t.Errorf("dashboard: %d queries, want every panel target", len(qs))
	}
	b, err = os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	alerts := AlertQueries(b)
	if len(alerts) != strings.Count(string(b), "expr:") {
		t.Errorf("alerts: %d queries, want one per expr:", len(alerts))
	}
	for _, q := range alerts {
		if strings.TrimSpace(q.Expr) == "" || strings.HasPrefix(q.Expr, "|") {
			t.Errorf("%s: expr %q", q.Where, q.Expr)
		}
	}
}
