package secret

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// valuer resolves late to a text that holds a key.
type valuer struct{ s string }

func (v valuer) LogValue() slog.Value { return slog.StringValue(v.s) }

// textKey marshals itself to a text that holds a key, which the text
// handler prints (fmt would print its empty struct).
type textKey struct{}

func (textKey) MarshalText() ([]byte, error) { return []byte("see " + orKey), nil }

// TestLogHandlerMasksEachPlace puts a key in one place of a record at a
// time: a record with nothing to mask goes on uncopied, so every place
// must be checked on its own.
func TestLogHandlerMasksEachPlace(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		args []any
	}{
		{"message", "said " + orKey, nil},
		{"attribute key", "m", []any{orKey, 1}},
		{"text value", "m", []any{"text", "see " + orKey}},
		{"group", "m", []any{slog.Group("g", slog.Group("h", "deep", orKey))}},
		{"error", "m", []any{"err", errors.New("bad " + orKey)}},
		{"printed value", "m", []any{"v", struct{ S string }{orKey}}},
		{"late value", "m", []any{"lv", valuer{orKey}}},
		{"late value in a group", "m", []any{slog.Group("g", "lv", valuer{orKey})}},
		// JSON prints what a pointer points to, where fmt prints the address.
		{"string pointer", "m", []any{"p", new(orKey)}},
		{"struct pointer", "m", []any{"p", &struct{ S *string }{new(orKey)}}},
		{"text marshaler", "m", []any{"tm", textKey{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := NewRedactor([]Key{New(orKey)})
			log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil), r))
			log.Info(tc.msg, append([]any{"n", 1, "key", New(orKey), "none", nil}, tc.args...)...)
			out := buf.String()
			assertNoLeak(t, out, orKey)
			if !strings.Contains(out, "sk-or-v1-…c0de") {
				t.Fatalf("no masked key in %s", out)
			}
		})
	}
}

func TestLogHandlerCleanRecordUnchanged(t *testing.T) {
	var masked, plain bytes.Buffer
	r := NewRedactor([]Key{New(orKey)})
	args := []any{"event", "access", "n", 7, "none", nil, "key", New(orKey), "err", errors.New("no key here"),
		slog.Group("g", "s", "text")}
	slog.New(NewLogHandler(slog.NewTextHandler(&masked, nil), r)).Info("↪️ POST /v1/chat/completions", args...)
	slog.New(slog.NewTextHandler(&plain, nil)).Info("↪️ POST /v1/chat/completions", args...)
	// The times differ; the rest must not.
	_, m, _ := strings.Cut(masked.String(), " ")
	_, p, _ := strings.Cut(plain.String(), " ")
	if m != p {
		t.Fatalf("a record with nothing to mask changed:\n%s\n%s", m, p)
	}
}
