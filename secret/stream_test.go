package secret

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// jsonEscaped writes every '-' of s as \u002d and every other byte of the
// key's tail as \u00XX, the way a JSON encoder that escapes may.
func jsonEscaped(s string, every bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' || (every && i%3 == 0) {
			b.WriteString(`\u00`)
			b.WriteString("0123456789abcdef"[c>>4 : c>>4+1])
			b.WriteString("0123456789ABCDEF"[c&15 : c&15+1])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func TestRedactEscaped(t *testing.T) {
	r := NewRedactor([]Key{New(orKey), New(plain)})
	for _, tc := range []struct{ name, in string }{
		{"dash escaped", `{"msg":"bad key ` + jsonEscaped(orKey, false) + `"}`},
		{"many escaped", `{"msg":"` + jsonEscaped(orKey, true) + `"}`},
		{"slash escaped", `{"u":"https:\/\/x\/` + orKey + `"}`},
		{"after an escaped backslash", `{"m":"\\` + jsonEscaped(plain, true) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := r.Redact(tc.in)
			if out == tc.in {
				t.Fatalf("nothing masked in %q", tc.in)
			}
			for _, raw := range []string{orKey, plain} {
				assertNoLeak(t, unescape(out), raw)
			}
			b := []byte(tc.in)
			if n := r.MaskInPlace(b, true); n != len(b) {
				t.Fatalf("final MaskInPlace kept %d of %d", n, len(b))
			}
			for _, raw := range []string{orKey, plain} {
				assertNoLeak(t, unescape(string(b)), raw)
			}
		})
	}
	// An escaped backslash before "u" is no escape of the key's letters.
	in := `\\u002d`
	if out := r.Redact(in); out != in {
		t.Fatalf("Redact(%q) = %q", in, out)
	}
}

// unescape decodes \uXXXX and \/ as a JSON decoder would, for leak checks.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			if s[i+1] == '\\' {
				// An escaped backslash: what follows it is not an escape.
				b.WriteString(`\\`)
				i++
				continue
			}
			if s[i+1] == '/' {
				b.WriteByte('/')
				i++
				continue
			}
			if s[i+1] == 'u' && i+6 <= len(s) {
				if h, ok := hex4(s[i+2 : i+6]); ok && h < 0x80 {
					b.WriteByte(byte(h))
					i += 5
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestMaskInPlaceKeepsLength(t *testing.T) {
	r := NewRedactor([]Key{New(orKey)})
	b := []byte("a " + orKey + " b")
	r.MaskInPlace(b, true)
	want := "a sk-or-v1-" + strings.Repeat("*", len(orKey)-len("sk-or-v1-")-4) + "c0de b"
	if string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
}

// TestWriterSplits writes a text with keys in every possible two-piece
// split and checks the stream comes out as the whole text masked at once.
func TestWriterSplits(t *testing.T) {
	r := NewRedactor([]Key{New(orKey), New(projKey)})
	text := "x " + orKey + " y " + jsonEscaped(projKey, true) + " z " + orKey[:20]
	whole := []byte(text)
	r.MaskInPlace(whole, true)
	for cut := 0; cut <= len(text); cut++ {
		var out bytes.Buffer
		w := NewWriter(r, &out)
		for _, p := range []string{text[:cut], text[cut:]} {
			if n, err := w.Write([]byte(p)); err != nil || n != len(p) {
				t.Fatalf("cut %d: Write = %d, %v", cut, n, err)
			}
			if w.Held() > r.MaxHold() {
				t.Fatalf("cut %d: holds %d > MaxHold %d", cut, w.Held(), r.MaxHold())
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != string(whole) {
			t.Fatalf("cut %d:\n got %q\nwant %q", cut, out.String(), whole)
		}
	}
}

func TestWriterError(t *testing.T) {
	w := NewWriter(NewRedactor([]Key{New(orKey)}), failing{})
	if _, err := w.Write([]byte("hello")); err == nil {
		t.Fatal("write error lost")
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("gone") }

// FuzzWriter: however a body is cut into writes, no key gets out, in clear
// or JSON-escaped, and the length stays.
func FuzzWriter(f *testing.F) {
	f.Add("before "+orKey+" after", uint8(7), uint8(30))
	f.Add(jsonEscaped(orKey, true)+`\/`+plain, uint8(1), uint8(2))
	f.Add(`\`+"u002d"+orKey[:9], uint8(0), uint8(1))
	f.Add(strings.Repeat(orKey[:15], 5)+orKey, uint8(14), uint8(15))
	// An escaped backslash, then what would be the key's escaped form:
	// JSON reads no escape there, so no key.
	f.Add(`\`+jsonEscaped(orKey, true), uint8(3), uint8(40))
	r := NewRedactor([]Key{New(orKey), New(plain)})
	f.Fuzz(func(t *testing.T, text string, a, b uint8) {
		var out bytes.Buffer
		w := NewWriter(r, &out)
		i, j := min(int(a), len(text)), min(int(a)+int(b), len(text))
		for _, p := range []string{text[:i], text[i:j], text[j:]} {
			if _, err := w.Write([]byte(p)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if out.Len() != len(text) {
			t.Fatalf("length %d, want %d", out.Len(), len(text))
		}
		for _, raw := range []string{orKey, plain} {
			if strings.Contains(unescape(out.String()), raw) {
				t.Fatalf("key got out of %q: %q", text, out.String())
			}
		}
	})
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	r := NewRedactor([]Key{New(orKey)})
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil), r)).With("pre", "with "+orKey)
	n := 7
	log.WithGroup("g").Warn("upstream said "+orKey, "err", errors.New(`malformed HTTP response "`+orKey+`"`),
		"text", orKey, "key", New(orKey), "n", &n, slog.Group("inner", "deep", orKey))
	out := buf.String()
	assertNoLeak(t, out, orKey)
	if !strings.Contains(out, "sk-or-v1-…c0de") || !strings.Contains(out, `"n":7`) {
		t.Fatalf("log line lost its masked key or its number: %s", out)
	}
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("Enabled not passed through")
	}
}

func BenchmarkWriter(b *testing.B) {
	r := NewRedactor([]Key{New(orKey), New(projKey), New(plain), New("sk-or-v1-" + strings.Repeat("9", 64))})
	chunk := bytes.Repeat([]byte(`data: {"choices":[{"delta":{"content":"some text, with \n escapes"}}]}`+"\n\n"), 32<<10/80)
	w := NewWriter(r, discard{})
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = w.Write(chunk)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
