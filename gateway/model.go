package gateway

import (
	"bytes"
	"encoding/json"
	"strings"
)

// maxTokensOf is the most tokens a request body asks for: max_tokens,
// max_completion_tokens or (Responses API) max_output_tokens; 0 when none
// is a plain count.
func maxTokensOf(body []byte) int {
	var v [len(maxTokensKeys)][]byte
	topLevels(body, maxTokensKeys[:], v[:])
	for _, raw := range v {
		if n, ok := countOf(raw); ok && n > 0 {
			return n
		}
	}
	return 0
}

// maxTokensKeys are the fields maxTokensOf reads in one scan, the one
// that counts first.
var maxTokensKeys = [...]string{"max_tokens", "max_completion_tokens", "max_output_tokens"}

// requestKeys are the top-level fields the passthrough reads of every
// request body, in one scan (requestOf).
var requestKeys = [...]string{"model", "stream"}

// requestOf returns the top-level "model" string of a JSON object body
// ("" when the body is not such an object or has none) and whether it asks
// for a stream ("stream": true). It scans once, without decoding the body:
// the passthrough calls it on every request, to label metrics and to size
// the stream's copy buffer.
func requestOf(body []byte) (model string, stream bool) {
	var v [len(requestKeys)][]byte
	topLevels(body, requestKeys[:], v[:])
	if raw := v[0]; len(raw) >= 2 && raw[0] == '"' {
		model = unquote(raw)
	}
	return model, string(v[1]) == "true"
}

// topLevel returns the raw JSON value of a top-level key of a JSON object,
// or nil. It scans the text without decoding it; values are not validated.
func topLevel(body []byte, name string) []byte {
	var v [1][]byte
	topLevels(body, []string{name}, v[:])
	return v[0]
}

// topLevels sets vals[i] to the raw JSON value of the top-level key
// names[i] of a JSON object (its first occurrence; nil when absent),
// scanning the text once and no further than the last of them.
func topLevels(body []byte, names []string, vals [][]byte) {
	left := len(names)
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != '"' {
			return
		}
		keyStart := i
		i = skipString(body, i)
		if i < 0 {
			return
		}
		key := body[keyStart+1 : i-1]
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != ':' {
			return
		}
		i = skipSpace(body, i+1)
		if i >= len(body) {
			return
		}
		end := skipValue(body, i)
		if end < 0 {
			return
		}
		for n, name := range names {
			if vals[n] == nil && string(key) == name {
				vals[n] = body[i:end]
				if left--; left == 0 {
					return
				}
			}
		}
		i = skipSpace(body, end)
		if i >= len(body) || body[i] != ',' {
			return
		}
		i++
	}
}

// repeatsKey reports whether the top-level object of body has more than one
// key that reads as name, an escaped one ("mod\u0065l") included: upstream
// reads the last, keygate's scan the first. It scans the whole object, so
// it is asked only when the difference would cost (a free model named).
// It walks with members; topLevels, which every request runs, keeps a loop
// of its own: through a callback it cost about 15 ns a call
// (BenchmarkRequestOf 104 → 120 ns).
func repeatsKey(body []byte, name string) bool {
	n := 0
	members(body, func(key, _ []byte) bool {
		if keyIs(key, name) {
			n++
		}
		return n < 2
	})
	return n > 1
}

// keyIs reports whether key, a quoted JSON string, reads as name, its
// escapes ("mod\u0065l") read.
func keyIs(key []byte, name string) bool {
	return string(key[1:len(key)-1]) == name || bytes.IndexByte(key, '\\') >= 0 && unquote(key) == name
}

// keyFold reports whether key, a quoted JSON string, reads as name case
// aside, as the decoder matches a struct's field names.
func keyFold(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return len(key)-2 == len(name) && strings.EqualFold(string(key[1:len(key)-1]), name)
	}
	return strings.EqualFold(unquote(key), name)
}

// members calls fn with each member of the JSON object that body starts
// with (after blanks): its key, quoted as written, and its value's bytes,
// in order, until fn returns false. It stops where the text is not JSON
// it can read; values are skipped, not validated or copied.
func members(body []byte, fn func(key, value []byte) bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != '"' {
			return
		}
		keyStart := i
		if i = skipString(body, i); i < 0 {
			return
		}
		key := body[keyStart:i]
		if i = skipSpace(body, i); i >= len(body) || body[i] != ':' {
			return
		}
		if i = skipSpace(body, i+1); i >= len(body) {
			return
		}
		end := skipValue(body, i)
		if end < 0 || !fn(key, body[i:end]) {
			return
		}
		if i = skipSpace(body, end); i >= len(body) || body[i] != ',' {
			return
		}
		i++
	}
}

// elements calls fn with each element of the JSON array that raw starts
// with (after blanks), as members does for an object.
func elements(raw []byte, fn func(value []byte) bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '[' {
		return
	}
	if i = skipSpace(raw, i+1); i < len(raw) && raw[i] == ']' {
		return
	}
	for {
		i = skipSpace(raw, i)
		if i >= len(raw) {
			return
		}
		end := skipValue(raw, i)
		if end < 0 || !fn(raw[i:end]) {
			return
		}
		if i = skipSpace(raw, end); i >= len(raw) || raw[i] != ',' {
			return
		}
		i++
	}
}

// jsonLen is the number of elements of a JSON array, or of members of a
// JSON object, counted without decoding them: a count checked before the
// decoding bounds what a body made of many small entries costs.
func jsonLen(raw []byte) int {
	n := 0
	count := func([]byte) bool { n++; return true }
	if i := skipSpace(raw, 0); i < len(raw) && raw[i] == '{' {
		members(raw, func(_, v []byte) bool { return count(v) })
	} else {
		elements(raw, count)
	}
	return n
}

func unquote(q []byte) string {
	for _, c := range q[1 : len(q)-1] {
		if c == '\\' || c < 0x20 || c >= 0x80 {
			var s string
			if json.Unmarshal(q, &s) != nil {
				return ""
			}
			return s
		}
	}
	return string(q[1 : len(q)-1])
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"',
// or -1 if it does not end. It jumps from quote to quote (bytes.IndexByte
// is vectorized): prompts and answers are long strings, and a byte-wise
// walk through them was most of a body scan. A quote ends the string when
// an even number of backslashes stands before it.
func skipString(b []byte, i int) int {
	for i++; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return -1
		}
		j += i
		k := j
		for k > i && b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// skipValue returns the index just past the value starting at b[i], or -1.
// Nested objects and arrays are skipped by depth; scalars up to a delimiter.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				if i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
