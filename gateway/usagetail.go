package gateway

import "bytes"

// usageTail is how much of the end of a JSON answer larger than
// maxUsageScan the tap reads its usage from: OpenRouter puts usage last,
// and the object (with its details) is well under 1 KiB. The tap holds
// at most twice this of such an answer.
const usageTail = 16 << 10

// keepTail adds p to the window kept of a large answer: its last
// usageTail bytes at least, at most twice that, so that the window moves
// by one copy per usageTail bytes read.
func (t *usageTap) keepTail(p []byte) {
	if len(p) >= usageTail {
		t.buf.Reset()
		t.buf.Write(p[len(p)-usageTail:])
		return
	}
	if t.buf.Len()+len(p) > 2*usageTail {
		old := t.buf.Bytes()
		keep := usageTail - len(p)
		copy(old, old[len(old)-keep:])
		t.buf.Truncate(keep)
	}
	t.buf.Write(p)
}

// lastUsage returns the raw usage object of a JSON object of which tail
// is the end (its top-level "usage" member, the last one when repeated),
// or nil when tail does not reach back to it or it is not an object. It
// reads backwards from the closing brace, member by member, stepping over
// strings whole, so that text in a string (a model's answer quoting
// `"usage":{`) is never taken for a key, and it gives up rather than
// guess where tail begins inside a value.
func lastUsage(tail []byte) []byte {
	i := spaceBack(tail, len(tail))
	if i == 0 || tail[i-1] != '}' {
		return nil
	}
	i--
	for {
		end := spaceBack(tail, i)
		start := valueBack(tail, end)
		if start <= 0 {
			return nil
		}
		j := spaceBack(tail, start)
		if j == 0 || tail[j-1] != ':' {
			return nil
		}
		j = spaceBack(tail, j-1)
		if j == 0 || tail[j-1] != '"' {
			return nil
		}
		k := stringBack(tail, j)
		if k < 0 {
			return nil
		}
		if string(tail[k+1:j-1]) == "usage" {
			if tail[start] != '{' {
				return nil
			}
			return tail[start:end]
		}
		j = spaceBack(tail, k)
		if j == 0 || tail[j-1] != ',' {
			// The object's opening brace (no usage), or not JSON.
			return nil
		}
		i = j - 1
	}
}

// spaceBack is the index just past the last non-space byte of b[:i].
func spaceBack(b []byte, i int) int {
	for i > 0 && (b[i-1] == ' ' || b[i-1] == '\t' || b[i-1] == '\n' || b[i-1] == '\r') {
		i--
	}
	return i
}

// stringBack returns the index of the opening quote of the string whose
// closing quote is b[end-1], or -1 when b does not reach back to it
// surely. A quote opens it when an even number of backslashes stands
// before it, counted back to a byte that is no backslash: a quote (or a
// run of backslashes) at the very start of b cannot tell.
func stringBack(b []byte, end int) int {
	for j := end - 1; ; {
		q := bytes.LastIndexByte(b[:j], '"')
		if q < 0 {
			return -1
		}
		k := q
		for k > 0 && b[k-1] == '\\' {
			k--
		}
		if k == 0 {
			return -1
		}
		if (q-k)%2 == 0 {
			return q
		}
		j = q
	}
}

// valueBack returns where the JSON value that ends at b[end-1] starts, or
// -1 when b does not reach back to its start.
func valueBack(b []byte, end int) int {
	if end == 0 {
		return -1
	}
	switch b[end-1] {
	case '"':
		return stringBack(b, end)
	case '}', ']':
		depth := 0
		for i := end - 1; i >= 0; i-- {
			switch b[i] {
			case '"':
				if i = stringBack(b, i+1); i < 0 {
					return -1
				}
			case '}', ']':
				depth++
			case '{', '[':
				if depth--; depth == 0 {
					return i
				}
			}
		}
		return -1
	}
	i := end
	for i > 0 && !endsScalar(b[i-1]) {
		i--
	}
	if i == 0 || i == end {
		return -1
	}
	return i
}

// endsScalar reports whether c cannot be part of a number, true, false or
// null: the byte before one.
func endsScalar(c byte) bool {
	switch c {
	case ',', ':', '[', '{', '"', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// usageName is the name of a usage member.
var usageName = []byte(`"usage"`)

// tailUsage is the last usage object that tail, the end of a stream's
// event too long to keep whole, holds whole, or nil. A string cannot hold
// the name's bytes (its quotes would be escaped), so a match followed by
// a colon (blanks around it, as some servers write JSON) is a member;
// the last one whose value is an object is read to its closing brace,
// stepping over strings.
func tailUsage(tail []byte) []byte {
	var obj []byte
	for end := len(tail); obj == nil; {
		i := bytes.LastIndex(tail[:end], usageName)
		if i < 0 {
			return nil
		}
		end = i
		j := skipSpace(tail, i+len(usageName))
		if j == len(tail) || tail[j] != ':' {
			continue
		}
		if j = skipSpace(tail, j+1); j < len(tail) && tail[j] == '{' {
			obj = tail[j:]
		}
	}
	depth := 0
	for j := 0; j < len(obj); j++ {
		switch obj[j] {
		case '"':
			for j++; j < len(obj) && obj[j] != '"'; j++ {
				if obj[j] == '\\' {
					j++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return obj[:j+1]
			}
		}
	}
	return nil
}
