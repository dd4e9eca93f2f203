package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// There is no PowerShell here, so the README's PowerShell example is
// checked through what it does: the hashtable literal it pipes to
// ConvertTo-Json is read by psValue, and psJSON writes it as ConvertTo-Json
// does, in both PowerShell 7's layout and Windows PowerShell 5.1's.

// psEntry is one key = value of a hashtable, in source order (PowerShell's
// own order differs; JSON objects have none).
type psEntry struct {
	key   string
	value any
}

// psTable is a hashtable literal.
type psTable []psEntry

// psParser reads a PowerShell expression: a hashtable @{...}, an array
// @(...), a string "..." or '...', a number, $true, $false or $null.
type psParser struct {
	s string
	i int
}

var errPSSyntax = errors.New("not a PowerShell literal this test reads")

// psLiteral reads the literal at the start of s and returns it with the
// rest of s.
func psLiteral(s string) (any, string, error) {
	p := &psParser{s: s}
	v, err := p.value()
	if err != nil {
		return nil, "", fmt.Errorf("at %d: %w", p.i, err)
	}
	return v, s[p.i:], nil
}

// space skips blanks, and newlines too when lines is set.
func (p *psParser) space(lines bool) {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t' || c == '\r':
		case c == '\n' && lines:
		default:
			return
		}
		p.i++
	}
}

func (p *psParser) value() (any, error) {
	p.space(true)
	rest := p.s[p.i:]
	switch {
	case strings.HasPrefix(rest, "@{"):
		p.i += 2
		return p.table()
	case strings.HasPrefix(rest, "@("):
		p.i += 2
		return p.array()
	case strings.HasPrefix(rest, `"`), strings.HasPrefix(rest, "'"):
		return p.str()
	}
	for _, lit := range []struct {
		text string
		v    any
	}{{"$true", true}, {"$false", false}, {"$null", nil}} {
		if strings.HasPrefix(strings.ToLower(rest), lit.text) && !psWordChar(rest, len(lit.text)) {
			p.i += len(lit.text)
			return lit.v, nil
		}
	}
	n := 0
	for n < len(rest) && strings.IndexByte("+-.0123456789eE", rest[n]) >= 0 {
		n++
	}
	if n == 0 || psWordChar(rest, n) {
		return nil, errPSSyntax
	}
	f, err := strconv.ParseFloat(rest[:n], 64)
	if err != nil {
		return nil, errPSSyntax
	}
	p.i += n
	return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

// psWordChar reports whether s[i] continues a word ($trueish, 12abc).
func psWordChar(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// table reads the entries of a hashtable after its "@{": key = value,
// separated by ";" or new lines.
func (p *psParser) table() (psTable, error) {
	t := psTable{}
	for {
		p.space(true)
		if p.i < len(p.s) && p.s[p.i] == ';' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return t, nil
		}
		var key string
		if p.i < len(p.s) && (p.s[p.i] == '"' || p.s[p.i] == '\'') {
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			key = k
		} else {
			n := 0
			for psWordChar(p.s, p.i+n) || (n > 0 && p.i+n < len(p.s) && p.s[p.i+n] == '-') {
				n++
			}
			if n == 0 {
				return nil, errPSSyntax
			}
			key, p.i = p.s[p.i:p.i+n], p.i+n
		}
		p.space(false)
		if p.i >= len(p.s) || p.s[p.i] != '=' {
			return nil, errPSSyntax
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		for _, e := range t {
			if strings.EqualFold(e.key, key) {
				return nil, errors.New("duplicate key " + key) // PowerShell refuses it too
			}
		}
		t = append(t, psEntry{key, v})
		p.space(false)
		if p.i < len(p.s) && p.s[p.i] != ';' && p.s[p.i] != '\n' && p.s[p.i] != '}' {
			return nil, errPSSyntax
		}
	}
}

// array reads the items of an array after its "@(", separated by commas.
func (p *psParser) array() ([]any, error) {
	items := []any{}
	for {
		p.space(true)
		if p.i < len(p.s) && p.s[p.i] == ')' {
			p.i++
			return items, nil
		}
		if len(items) > 0 {
			if p.i >= len(p.s) || p.s[p.i] != ',' {
				return nil, errPSSyntax
			}
			p.i++
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		items = append(items, v)
	}
}

// str reads a string literal. Double-quoted strings expand $variables and
// backtick escapes, which this test refuses rather than guesses.
func (p *psParser) str() (string, error) {
	q := p.s[p.i]
	var b strings.Builder
	for i := p.i + 1; i < len(p.s); i++ {
		c := p.s[i]
		switch {
		case c == q && i+1 < len(p.s) && p.s[i+1] == q: // "" or '' is one quote
			b.WriteByte(q)
			i++
		case c == q:
			p.i = i + 1
			return b.String(), nil
		case q == '"' && (c == '$' || c == '`'):
			return "", errPSSyntax
		default:
			b.WriteByte(c)
		}
	}
	return "", errPSSyntax
}

// psJSON writes v as ConvertTo-Json does: PowerShell 7's layout (two-space
// indent, `"key": value`), or with legacy Windows PowerShell 5.1's (four
// spaces, `"key":  value`, arrays aligned under their key, and <, >, &
// and ' escaped).
func psJSON(v any, legacy bool) string {
	var b bytes.Buffer
	psWrite(&b, v, 0, legacy)
	return b.String()
}

func psWrite(b *bytes.Buffer, v any, col int, legacy bool) {
	indent, colon := "  ", ": "
	if legacy {
		indent, colon = "    ", ":  "
	}
	switch v := v.(type) {
	case psTable:
		if len(v) == 0 {
			b.WriteString("{\n\n}")
			return
		}
		b.WriteString("{\n")
		for i, e := range v {
			pad := strings.Repeat(" ", col) + indent
			b.WriteString(pad)
			start := b.Len()
			psString(b, e.key, legacy)
			b.WriteString(colon)
			inner := col + len(indent)
			if legacy {
				inner = len(pad) + (b.Len() - start) // aligned after "key":
			}
			psWrite(b, e.value, inner, legacy)
			if i < len(v)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(strings.Repeat(" ", col) + "}")
	case []any:
		if len(v) == 0 {
			b.WriteString("[\n\n]")
			return
		}
		b.WriteString("[\n")
		for i, item := range v {
			b.WriteString(strings.Repeat(" ", col) + indent)
			psWrite(b, item, col+len(indent), legacy)
			if i < len(v)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(strings.Repeat(" ", col) + "]")
	case string:
		psString(b, v, legacy)
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		b.WriteString(v.String())
	case nil:
		b.WriteString("null")
	default:
		panic(fmt.Sprintf("psWrite: %T", v))
	}
}

func psString(b *bytes.Buffer, s string, legacy bool) {
	var q bytes.Buffer
	enc := json.NewEncoder(&q)
	enc.SetEscapeHTML(legacy) // 5.1 escapes <, > and & as \u003c…
	_ = enc.Encode(s)
	out := bytes.TrimSuffix(q.Bytes(), []byte("\n"))
	if legacy {
		out = bytes.ReplaceAll(out, []byte("'"), []byte(`\u0027`))
	}
	b.Write(out)
}

// FuzzPSLiteral: psLiteral never panics, and whatever it reads, psJSON
// writes as valid JSON in both layouts.
func FuzzPSLiteral(f *testing.F) {
	for _, s := range []string{
		`@{ prompt = "Write a haiku."; models = @("a/b", "c/d"); random_key = $true }`,
		"@{\n  prompt = 'it''s'\n  n = 1.5\n  p = @{ t = 0.2; max = 50 }\n}",
		`@{ "quoted key" = $null; e = @() ; f = @{} }`,
		`@{ a = "$x" }`, "@{ a = \"`n\" }", `@{ a = 1; a = 2 }`, `@(1, -2e3, $false)`, `@{`, `@(`, `"`, `$truer`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, _, err := psLiteral(s)
		if err != nil {
			return
		}
		for _, legacy := range []bool{false, true} {
			if out := psJSON(v, legacy); !json.Valid([]byte(out)) {
				t.Fatalf("psJSON(%q, legacy %v) = %q: not JSON", s, legacy, out)
			}
		}
	})
}

func TestPSJSONLayouts(t *testing.T) {
	v, rest, err := psLiteral("@{ prompt = \"a<b\"; models = @(\"x\", \"y\")\n random_key = $true } | ConvertTo-Json")
	if err != nil || rest != " | ConvertTo-Json" {
		t.Fatalf("psLiteral: %v, rest %q", err, rest)
	}
	want7 := "{\n  \"prompt\": \"a<b\",\n  \"models\": [\n    \"x\",\n    \"y\"\n  ],\n  \"random_key\": true\n}"
	want51 := "{\n    \"prompt\":  \"a\\u003cb\",\n    \"models\":  [\n                   \"x\",\n                   \"y\"\n               ],\n    \"random_key\":  true\n}"
	if got := psJSON(v, false); got != want7 {
		t.Errorf("PowerShell 7:\n%s\nwant\n%s", got, want7)
	}
	if got := psJSON(v, true); got != want51 {
		t.Errorf("Windows PowerShell 5.1:\n%s\nwant\n%s", got, want51)
	}
}
