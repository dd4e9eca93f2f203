// Package configs holds keygate's deployment files (Prometheus rules, the
// Grafana dashboard, the Docker build) and the small PromQL reader their
// tests share: which metric names the dashboard's and the alerts'
// expressions select, so a test can hold them against what the gateway
// exports.
package configs

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Query is one PromQL expression found in a deployment file.
type Query struct {
	// Where names the expression's place: a panel title, a variable or an
	// alert name.
	Where string
	// Expr is the PromQL text.
	Expr string
}

var (
	promString   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promBraces   = regexp.MustCompile(`\{[^}]*\}`)
	promBrackets = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "inf": true, "nan": true,
	}
)

// MetricNames returns the metric names a PromQL expression selects, in
// order, leaving out functions, aggregations, keywords, label names, string
// literals, durations and Grafana variables. A selector by __name__ alone
// names nothing.
func MetricNames(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promBraces.ReplaceAllString(s, " ")
	s = promBrackets.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		word := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsRune("0123456789.$", rune(s[loc[0]-1])) {
			continue // exponent of a number, or a Grafana variable
		}
		if strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") {
			continue // function or aggregation
		}
		if promKeywords[strings.ToLower(word)] {
			continue
		}
		names = append(names, word)
	}
	return names
}

// variableCall is a Grafana Prometheus variable query: a function and its
// argument text.
var variableCall = regexp.MustCompile(`(?s)^\s*(label_values|query_result|metrics|label_names)\s*\((.*)\)\s*$`)

// VariableExpr returns the PromQL inside a Grafana templating query:
// label_values(m, l) selects m, query_result(e) evaluates e; label_values(l),
// label_names() and metrics(re) select no metric and give "".
func VariableExpr(query string) string {
	m := variableCall.FindStringSubmatch(query)
	if m == nil {
		return query
	}
	switch arg := strings.TrimSpace(m[2]); m[1] {
	case "query_result":
		return arg
	case "label_values":
		// The label is the last argument; a metric or selector precedes it.
		if i := strings.LastIndexByte(arg, ','); i >= 0 {
			return strings.TrimSpace(arg[:i])
		}
	}
	return ""
}

// DashboardQueries returns every PromQL expression of a Grafana dashboard:
// each "expr" at any depth (panels, panels nested in rows, annotations) and
// the query of each templating variable of type "query".
func DashboardQueries(data []byte) ([]Query, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	var out []Query
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = "panel " + strconv.Quote(title)
			}
			if e, ok := v["expr"].(string); ok {
				out = append(out, Query{Where: where, Expr: e})
			}
			for k, c := range v {
				if k != "templating" {
					walk(c, where)
				}
			}
		case []any:
			for _, c := range v {
				walk(c, where)
			}
		}
	}
	walk(doc, "dashboard")
	tpl, _ := doc["templating"].(map[string]any)
	vars, _ := tpl["list"].([]any)
	for _, v := range vars {
		v, _ := v.(map[string]any)
		if v["type"] != "query" {
			continue
		}
		q, _ := v["query"].(string)
		if obj, ok := v["query"].(map[string]any); ok {
			q, _ = obj["query"].(string)
		}
		if q == "" {
			q, _ = v["definition"].(string)
		}
		name, _ := v["name"].(string)
		if e := VariableExpr(q); e != "" {
			out = append(out, Query{Where: "variable " + name, Expr: e})
		}
	}
	return out, nil
}

// AlertQueries returns the expr of every rule in a Prometheus rules file.
// It reads lines, not YAML: an `expr:` with its value on the line (plain or
// quoted) or as a block scalar (| or >) in the more indented lines below.
func AlertQueries(data []byte) []Query {
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	var out []Query
	where := "rules"
	for i := 0; i < len(lines); i++ {
		line := strings.TrimPrefix(strings.TrimSpace(lines[i]), "- ")
		for _, key := range [...]string{"alert", "record"} {
			if name, ok := strings.CutPrefix(line, key+":"); ok {
				where = key + " " + strings.TrimSpace(name)
			}
		}
		value, ok := strings.CutPrefix(line, "expr:")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if value == "" || value[0] == '|' || value[0] == '>' {
			indent := indentOf(lines[i])
			var block []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || indentOf(lines[i+1]) > indent) {
				i++
				block = append(block, strings.TrimSpace(lines[i]))
			}
			value = strings.TrimSpace(strings.Join(block, "\n"))
		} else {
			value = yamlScalar(value)
		}
		out = append(out, Query{Where: where, Expr: value})
	}
	return out
}

func indentOf(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

// yamlScalar unquotes a one-line YAML scalar and drops a trailing comment.
func yamlScalar(v string) string {
	switch v[0] {
	case '"':
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
	case '\'':
		if len(v) >= 2 && v[len(v)-1] == '\'' {
			return strings.ReplaceAll(v[1:len(v)-1], "''", "'")
		}
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}
