package secret

import (
	"context"
	"encoding"
	"encoding/json"
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

// Unwrap is the handler records go on to, for callers that ask what it
// does with them (console.EventFields).
func (h *LogHandler) Unwrap() slog.Handler { return h.inner }

// Enabled implements slog.Handler.
func (h *LogHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *LogHandler) Handle(ctx context.Context, rec slog.Record) error {
	if h.r.Empty() {
		return h.inner.Handle(ctx, rec)
	}
	msg := h.r.Redact(rec.Message)
	if msg == rec.Message && h.clean(rec) {
		// The rule (an access line): nothing to mask, so no copy.
		return h.inner.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, msg, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// clean reports whether no attribute of rec would change in attr: its
// keys, texts and errors hold no key, and no value resolves late (a
// LogValuer, checked in the copy instead).
func (h *LogHandler) clean(rec slog.Record) bool {
	clean := true
	rec.Attrs(func(a slog.Attr) bool {
		clean = h.cleanAttr(a)
		return clean
	})
	return clean
}

func (h *LogHandler) cleanAttr(a slog.Attr) bool {
	if h.r.Redact(a.Key) != a.Key {
		return false
	}
	switch a.Value.Kind() {
	case slog.KindString:
		s := a.Value.String()
		return h.r.Redact(s) == s
	case slog.KindGroup:
		for _, x := range a.Value.Group() {
			if !h.cleanAttr(x) {
				return false
			}
		}
		return true
	case slog.KindLogValuer:
		// A Key resolves to its masked form; any other is resolved and
		// checked in the copy.
		_, ok := a.Value.Any().(Key)
		return ok
	case slog.KindAny:
		switch x := a.Value.Any().(type) {
		case nil, Key:
			return true
		case error:
			text := x.Error()
			return h.r.Redact(text) == text
		}
		// Printed and checked in the copy.
		return false
	}
	return true
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
		// Kept as it is (a pointer, a number in JSON) unless a text a
		// handler may print of it holds a key: the text handler prints
		// MarshalText or fmt's form, the JSON handler json.Marshal's,
		// which follows pointers fmt prints as addresses.
		a.Value = v
		switch v.Any().(type) {
		case nil, Key:
			return a
		}
		for _, text := range printedForms(v.Any()) {
			if red := h.r.Redact(text); red != text {
				a.Value = slog.StringValue(red)
				break
			}
		}
	default:
		a.Value = v
	}
	return a
}

// printedForms are the texts a log handler may print of x: an error's
// Error, which both handlers print; otherwise fmt's form, MarshalText's
// and json.Marshal's.
func printedForms(x any) []string {
	if err, ok := x.(error); ok {
		return []string{err.Error()}
	}
	forms := []string{fmt.Sprint(x)}
	if tm, ok := x.(encoding.TextMarshaler); ok {
		if b, err := tm.MarshalText(); err == nil {
			forms = append(forms, string(b))
		}
	}
	if b, err := json.Marshal(x); err == nil {
		forms = append(forms, string(b))
	}
	return forms
}
