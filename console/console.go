// Package console renders keygate's log records for people: with the text
// format a record's message is the console line itself ("✅ model completed
// in 3.45s"), and its attributes, which JSON logs carry as fields, are left
// out of event lines. Each record is written whole, in one Write.
package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// EventKey is the attribute that marks a record as a console event; its
// value names the event in JSON logs ("run_start", "model_done", …).
const EventKey = "event"

// New returns a logger writing to w in format "text" or "json" at level
// (nil: info).
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	if level == nil {
		level = slog.LevelInfo
	}
	if format == "json" {
		var h slog.Handler = slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
		if _, ok := w.(flusher); ok {
			h = urgentHandler{h, w}
		}
		return slog.New(h)
	}
	return slog.New(&Handler{w: w, mu: &sync.Mutex{}, level: level})
}

// EventFields reports whether h writes the attributes of event records:
// JSON does, the text console prints their message alone. It looks through
// handlers that wrap another (an Unwrap method), so that a caller on the
// hot path can leave out attributes that would only be dropped.
func EventFields(h slog.Handler) bool {
	for {
		switch x := h.(type) {
		case *Handler:
			return false
		case interface{ Unwrap() slog.Handler }:
			h = x.Unwrap()
		default:
			return true
		}
	}
}

// Handler is the text handler. Event records print their message alone;
// other records print the message followed by key=value attributes, and a
// level tag when above info.
type Handler struct {
	w     io.Writer
	mu    *sync.Mutex
	level slog.Leveler
	// pre holds the attributes added by WithAttrs, rendered under the
	// groups in force when they were added.
	pre []byte
	// event: WithAttrs added the EventKey attribute.
	event bool
	group string
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

// lineBuffers recycles the buffers lines are built in: the passthrough
// writes one line per request.
var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// maxPooledLine is the largest buffer put back in lineBuffers.
const maxPooledLine = 4 << 10

// Handle implements slog.Handler.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	bp := lineBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	if r.Level >= slog.LevelWarn {
		buf = append(buf, r.Level.String()...)
		buf = append(buf, ' ')
	}
	buf = appendMessage(buf, r.Message)
	event := h.event
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == EventKey {
			event = true
			return false
		}
		return true
	})
	if !event {
		buf = append(buf, h.pre...)
		r.Attrs(func(a slog.Attr) bool {
			buf = appendAttr(buf, h.group, a)
			return true
		})
	}
	buf = append(buf, '\n')
	err := h.write(buf)
	flushUrgent(h.w, r.Level >= slog.LevelWarn)
	if cap(buf) <= maxPooledLine {
		*bp = buf
		lineBuffers.Put(bp)
	}
	return err
}

// write writes one whole line; lines of concurrent records never mix.
func (h *Handler) write(line []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(line)
	return err
}

func appendAttr(buf []byte, group string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		// A group with an empty key is inlined.
		g := group
		if a.Key != "" {
			if g != "" {
				g += "."
			}
			g += a.Key
		}
		for _, ga := range a.Value.Group() {
			buf = appendAttr(buf, g, ga)
		}
		return buf
	}
	buf = append(buf, ' ')
	if group != "" {
		buf = append(buf, group...)
		buf = append(buf, '.')
	}
	buf = append(buf, a.Key...)
	buf = append(buf, '=')
	var s string
	switch a.Value.Kind() {
	case slog.KindString:
		s = a.Value.String()
	case slog.KindDuration:
		s = a.Value.Duration().String()
	case slog.KindTime:
		s = a.Value.Time().Format(time.RFC3339)
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			s = err.Error()
		} else if b, jerr := json.Marshal(a.Value.Any()); jerr == nil {
			s = string(b)
		} else {
			s = a.Value.String()
		}
	default:
		s = a.Value.String()
	}
	if needsQuote(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for _, c := range s {
		if c <= ' ' || c == '"' || c == '=' || unprintable(c) {
			return true
		}
	}
	return false
}

// unprintable reports a rune that does not show as itself on a terminal:
// besides control characters (a newline, ESC, U+0085), line separators
// (U+2028) start a line in some viewers, and format characters such as the
// bidi override U+202E reorder the rest of it, so a client's text could
// forge or disguise a console line. Such runes are escaped; the space stays.
func unprintable(r rune) bool {
	return r != ' ' && !strconv.IsPrint(r)
}

// hasUnprintable reports whether s holds an unprintable rune, as
// strings.ContainsFunc(s, unprintable) does: ASCII bytes are judged
// without decoding them or calling through a func value (every console line
// is checked; the access line's ~85 bytes took about 400 ns in
// ContainsFunc), others as runes.
func hasUnprintable(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c < ' ' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unprintable(r) {
			return true
		}
		i += n
	}
	return false
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	h2 := *h
	h2.pre = slices.Clip(h.pre) // appends copy: siblings never share
	for _, a := range as {
		if a.Key == EventKey {
			h2.event = true
		}
		h2.pre = appendAttr(h2.pre, h.group, a)
	}
	return &h2
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	if h2.group != "" {
		name = h2.group + "." + name
	}
	h2.group = name
	return &h2
}

// appendMessage appends msg with its unprintable runes escaped (\n as
// "\\n"): messages quote client input, such as a model id, and a raw newline
// in one would start a forged line.
func appendMessage(buf []byte, msg string) []byte {
	if !hasUnprintable(msg) {
		return append(buf, msg...)
	}
	for _, r := range msg {
		if unprintable(r) {
			q := strconv.QuoteRune(r) // e.g. '\n' or '\x1b'
			buf = append(buf, q[1:len(q)-1]...)
			continue
		}
		buf = utf8.AppendRune(buf, r)
	}
	return buf
}
