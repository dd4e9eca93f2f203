package keysfile

import (
	"bytes"
	"slices"
)

// RepeatedNames are the variables of a .env file's bytes set on more than
// one line, in the order of their second setting. godotenv keeps the last
// value silently, so a key line pasted under a name already used (a new
// OPENROUTER_API_KEY_2 beside the old one) would drop a key without a word.
// Only names ParseEnv reads count; a line inside a quoted value that spans
// lines is no setting.
func RepeatedNames(data []byte, vars map[string]string) []string {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	seen := make(map[string]bool)
	var repeated []string
	var open byte // the quote of a value that spans lines, 0 when none
	for line := range bytes.Lines(data) {
		if open != 0 {
			if closes(line, open) {
				open = 0
			}
			continue
		}
		name, value, ok := setting(line)
		if !ok {
			continue
		}
		if q := value[0:min(1, len(value))]; len(q) == 1 && (q[0] == '"' || q[0] == '\'') && !closes(value[1:], q[0]) {
			open = q[0]
		}
		if _, read := vars[name]; !read {
			continue
		}
		if seen[name] && !slices.Contains(repeated, name) {
			repeated = append(repeated, name)
		}
		seen[name] = true
	}
	return repeated
}

// setting splits a line NAME=value (or export NAME=value, NAME: value)
// into its name and the value's text; ok is false for a comment, a blank
// or anything else.
func setting(line []byte) (name string, value []byte, ok bool) {
	line = bytes.TrimLeft(line, blanks)
	// godotenv strips "export" when any blank follows it, a tab too.
	if rest, found := bytes.CutPrefix(line, []byte("export")); found && len(rest) > 0 && bytes.IndexByte([]byte(blanks), rest[0]) >= 0 {
		line = bytes.TrimLeft(rest, blanks)
	}
	i := 0
	for i < len(line) && (line[i] == '_' || line[i] == '.' || line[i] >= 'A' && line[i] <= 'Z' || line[i] >= 'a' && line[i] <= 'z' || i > 0 && line[i] >= '0' && line[i] <= '9') {
		i++
	}
	if i == 0 {
		return "", nil, false
	}
	rest := bytes.TrimLeft(line[i:], blanks)
	if len(rest) == 0 || rest[0] != '=' && rest[0] != ':' {
		return "", nil, false
	}
	return string(line[:i]), bytes.TrimLeft(rest[1:], blanks), true
}

// blanks are the bytes godotenv (v1.5) skips around a name and before a
// value: its isSpace, but for the runes beyond ASCII.
const blanks = " \t\v\f\r"

// closes reports whether s holds quote unescaped, as godotenv (v1.5)
// reads a quoted value's end: a quote right after a backslash is escaped,
// in a single-quoted value too, whatever stands before the backslash.
func closes(s []byte, quote byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == quote && (i == 0 || s[i-1] != '\\') {
			return true
		}
	}
	return false
}
