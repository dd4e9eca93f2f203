package simulator

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// appendEscaped appends s as the inside of a JSON string (no quotes).
// Invalid UTF-8 becomes U+FFFD, and U+2028/U+2029 are escaped so that the
// text stays valid JavaScript too, as encoding/json does.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(dst, s[start:]...)
}

// appendQuoted appends s as a JSON string.
func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// wordCounter counts whitespace-separated words across several pieces of
// text, as if they were one; the simulator's stand-in for tokens.
type wordCounter struct {
	n      int
	inWord bool
}

func (c *wordCounter) add(s string) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			c.inWord = false
		default:
			if !c.inWord {
				c.n++
				c.inWord = true
			}
		}
	}
}

// wordLimit passes on pieces of text to fn up to the end of their left-th
// word, as one text, and nothing after it.
type wordLimit struct {
	left   int
	inWord bool
	fn     func(string)
}

func (w *wordLimit) add(s string) {
	if w.left < 0 {
		return
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			if w.inWord && w.left == 0 {
				w.left = -1
				w.fn(s[:i])
				return
			}
			w.inWord = false
		default:
			if !w.inWord {
				w.left--
				w.inWord = true
			}
		}
	}
	w.fn(s)
}

// filler is what big= pads the content with: ASCII that JSON keeps as is,
// so that n bytes of filler add exactly n bytes to the body.
const filler = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"

// appendFiller appends n bytes of filler.
func appendFiller(dst []byte, n int) []byte {
	for n > 0 {
		k := min(n, len(filler))
		dst = append(dst, filler[:k]...)
		n -= k
	}
	return dst
}

// fillerWords is the number of words in n bytes of filler.
func fillerWords(n int) int {
	var c wordCounter
	per := strings.Count(strings.TrimSpace(filler), " ") + 1
	whole := n / len(filler)
	c.add(filler[:n%len(filler)])
	return whole*per + c.n
}

// fillerBytes is the length of the filler that holds its first n words,
// up to the end of the n-th: fillerWords(fillerBytes(n)) == n.
func fillerBytes(n int) int {
	if n <= 0 {
		return 0
	}
	per := strings.Count(strings.TrimSpace(filler), " ") + 1
	whole := (n - 1) / per
	var c wordCounter
	for i := 0; i < len(filler); i++ {
		c.add(filler[i : i+1])
		if c.n == n-whole*per && (i+1 == len(filler) || filler[i+1] == ' ') {
			return whole*len(filler) + i + 1
		}
	}
	return (whole + 1) * len(filler)
}

// excerpt is the start of s, at most limit bytes cut at a rune boundary,
// with "..." when something was cut.
func excerpt(s string, limit int) string {
	s = strings.TrimSpace(s)
	if len(s) <= limit {
		return s
	}
	end := limit
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return strings.TrimRightFunc(s[:end], unicode.IsSpace) + "..."
}

// split cuts s into n pieces of about equal size, at rune boundaries; some
// pieces are empty when s has fewer runes than n.
func split(s string, n int) []string {
	parts := make([]string, n)
	start := 0
	for i := range n {
		end := len(s) * (i + 1) / n
		for end < len(s) && !utf8.RuneStart(s[end]) {
			end++
		}
		end = max(end, start)
		parts[i] = s[start:end]
		start = end
	}
	return parts
}
