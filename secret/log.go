package secret

import (
	"context"
	"fmt"
	"log/slog"
)

// LogHandler passes every record to its inner handler with keys masked in
// its message and in every attribute, however deep in groups: text from
// upstream (an error body, Go's own error quoting a malformed answer) can
// reach a log line, and no key may.
type LogHandler struct {
	inner slog.Handler
	r     *Redactor
}

// NewLogHandler wraps inner so that r's keys never reach it.
func NewLogHandler(inner slog.Handler, r *Redactor) *LogHandler {
	return &LogHandler{inner: inner, r: r}
}

// Enabled implements slog.Handler.
func (h *LogHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *LogHandler) Handle(ctx context.Context, rec slog.Record) error {
	if h.r.Empty() {
		return h.inner.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *LogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = h.attr(a)
	}
	return &LogHandler{inner: h.inner.WithAttrs(red), r: h.r}
}

// WithGroup implements slog.Handler.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{inner: h.inner.WithGroup(h.r.Redact(name)), r: h.r}
}

// attr masks keys in a's key and value. Values that are not text are
// checked in their printed form (an error, a struct), unless they print
// themselves masked already (a Key).
func (h *LogHandler) attr(a slog.Attr) slog.Attr {
	a.Key = h.r.Redact(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(h.r.Redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]slog.Attr, len(g))
		for i, x := range g {
			red[i] = h.attr(x)
		}
		a.Value = slog.GroupValue(red...)
	case slog.KindAny:
		// Kept as it is (a pointer, a number in JSON) unless its text
		// holds a key.
		a.Value = v
		var text string
		switch x := v.Any().(type) {
		case Key:
			return a
		case error:
			text = x.Error()
		default:
			text = fmt.Sprint(x)
		}
		if red := h.r.Redact(text); red != text {
			a.Value = slog.StringValue(red)
		}
	default:
		a.Value = v
	}
	return a
}
