package console

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// FlushInterval is the longest a log line waits in a LineBuffer: short
// enough that a person watching the log sees a request's line as it ends.
const FlushInterval = 50 * time.Millisecond

// lineBufferSize is how much a LineBuffer gathers before it writes.
const lineBufferSize = 32 << 10

// LineBuffer gathers whole log lines and writes them on in batches. The
// passthrough writes one access line per request, and unbuffered that is
// one write system call per request, a cost the proxy's own work is
// measured against. Lines go out in order and whole: each Write is one
// record, and a batch ends only between them. A line waits at most
// FlushInterval; a record at warn or above goes out at once, with all the
// lines before it, so that what precedes a failure is on the screen when
// it happens. Close writes what is left; after it, lines pass straight
// through.
type LineBuffer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	every  time.Duration
	timer  *time.Timer
	armed  bool // the timer will flush
	closed bool
	err    error // of a batch written in the background
}

// NewLineBuffer returns a LineBuffer writing to w; a line waits at most
// every (FlushInterval when zero).
func NewLineBuffer(w io.Writer, every time.Duration) *LineBuffer {
	if every <= 0 {
		every = FlushInterval
	}
	b := &LineBuffer{w: w, every: every, buf: make([]byte, 0, lineBufferSize)}
	b.timer = time.AfterFunc(time.Hour, b.tick)
	b.timer.Stop()
	return b
}

// Write takes one whole line (or record). It returns the error of an
// earlier batch written in the background, if any, the line kept all the
// same.
func (b *LineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.write(p)
	if b.err != nil && err == nil {
		n, err = len(p), b.err
	}
	b.err = nil
	return n, err
}

func (b *LineBuffer) write(p []byte) (int, error) {
	if b.closed {
		return b.w.Write(p)
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(b.buf) {
			return b.w.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.every)
	}
	return len(p), nil
}

// Flush writes the lines gathered so far.
func (b *LineBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

// Close writes what is left and stops the timer; later lines are written
// as they come.
func (b *LineBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.timer.Stop()
	b.armed = false
	return b.flushLocked()
}

// tick is the timer's flush; its error goes to the next Write.
func (b *LineBuffer) tick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.armed = false
	if err := b.flushLocked(); err != nil {
		b.err = err
	}
}

func (b *LineBuffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Before returns a writer that flushes b before each write to w: a
// program's error on stderr then follows the log lines written before it.
func (b *LineBuffer) Before(w io.Writer) io.Writer { return beforeWriter{b, w} }

type beforeWriter struct {
	b *LineBuffer
	w io.Writer
}

func (f beforeWriter) Write(p []byte) (int, error) {
	_ = f.b.Flush()
	return f.w.Write(p)
}

// flusher is a writer that holds lines back (a LineBuffer).
type flusher interface{ Flush() error }

// flushUrgent writes out what w holds back when a record at level is
// urgent (warn and above).
func flushUrgent(w io.Writer, urgent bool) {
	if f, ok := w.(flusher); ok && urgent {
		_ = f.Flush()
	}
}

// urgentHandler flushes its writer after each urgent record of its inner
// handler (the JSON one; the text Handler does it itself).
type urgentHandler struct {
	slog.Handler
	w io.Writer
}

// Handle implements slog.Handler.
func (h urgentHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	flushUrgent(h.w, r.Level >= slog.LevelWarn)
	return err
}

// WithAttrs implements slog.Handler.
func (h urgentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return urgentHandler{h.Handler.WithAttrs(as), h.w}
}

// WithGroup implements slog.Handler.
func (h urgentHandler) WithGroup(name string) slog.Handler {
	return urgentHandler{h.Handler.WithGroup(name), h.w}
}
