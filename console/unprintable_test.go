package console

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// BenchmarkAccessLine is the text console writing the passthrough's access
// line, as gateway.logAccess hands it over .
func BenchmarkAccessLine(b *testing.B) {
	h := New(io.Discard, "text", slog.LevelInfo).Handler()
	msg := "↪️ POST /v1/chat/completions openai/gpt-4o-mini → 200 in 0.41s (key #2, 21 tokens)"
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		rec := slog.NewRecord(now, slog.LevelInfo, msg, 0)
		rec.AddAttrs(slog.String(EventKey, "access"))
		_ = h.Handle(ctx, rec)
	}
}

// TestAppendMessageSame: the fast path escapes exactly as the rune loop
// does, on printable text, controls, invalid UTF-8 and non-ASCII
// format characters.
func TestAppendMessageSame(t *testing.T) {
	for _, s := range []string{"", "plain", "↪️ POST /v1 → 200", "a\nb", "\x1b[31m", "x\x7fy", "bad \xff utf8", "bidi \u202e x", "sep \u2028", "nel \u0085", "tab\there", strings.Repeat("é", 50)} {
		want := slowAppend(nil, s)
		if got := appendMessage(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %q, want %q", s, got, want)
		}
	}
}

func slowAppend(buf []byte, msg string) []byte {
	// The check as strings.ContainsFunc made it, the reference.
	if !strings.ContainsFunc(msg, unprintable) {
		return append(buf, msg...)
	}
	for _, r := range msg {
		if unprintable(r) {
			q := strconv.QuoteRune(r)
			buf = append(buf, q[1:len(q)-1]...)
			continue
		}
		buf = utf8.AppendRune(buf, r)
	}
	return buf
}

func FuzzHasUnprintable(f *testing.F) {
	for _, s := range []string{"", "↪️ x", "a\nb", "\xff", "\u202e", "\u00a0", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := hasUnprintable(s), strings.ContainsFunc(s, unprintable); got != want {
			t.Fatalf("%q: %v, want %v", s, got, want)
		}
	})
}
