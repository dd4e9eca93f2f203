package console_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/keygate/keygate/console"
)

// TestEventFields: whether a handler writes an event record's attributes,
// through the handlers that wrap it.
func TestEventFields(t *testing.T) {
	text, js := console.New(io.Discard, "text", nil).Handler(), console.New(io.Discard, "json", nil).Handler()
	flushing := console.New(console.NewLineBuffer(io.Discard, 0), "json", nil).Handler()
	for _, tc := range []struct {
		name string
		h    slog.Handler
		want bool
	}{
		{"text", text, false},
		{"text with an event attribute", text.WithAttrs([]slog.Attr{slog.String(console.EventKey, "x")}), false},
		{"json", js, true},
		{"json flushed urgently", flushing, true},
		{"text under a wrapper", unwrapper{text}, false},
		{"json under a wrapper", unwrapper{js}, true},
		{"another handler", slog.DiscardHandler, true},
	} {
		if got := console.EventFields(tc.h); got != tc.want {
			t.Errorf("%s: EventFields = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// unwrapper wraps a handler as secret.LogHandler does.
type unwrapper struct{ slog.Handler }

func (u unwrapper) Unwrap() slog.Handler { return u.Handler }
