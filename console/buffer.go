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

// maxBacklog is how much a LineBuffer holds while the console is slow to
// take a batch: a full batch is written in the background, and lines
// gather behind it up to this much before a Write waits its turn. A
// console that stops taking lines (a paused terminal, a stuck log
// collector) so stalls requests only after a megabyte of lines, and
// nothing is dropped.
const maxBacklog = 1 << 20

// LineBuffer gathers whole log lines and writes them on in batches. The
// passthrough writes one access line per request, and unbuffered that is
// one write system call per request, a cost the proxy's own work is
// measured against. Lines go out in order and whole: each Write is one
// record, and a batch ends only between them. A line waits at most
// FlushInterval; a record at warn or above goes out at once, with all the
// lines before it, so that what precedes a failure is on the screen when
// it happens. A full batch is handed to the background too, so the
// request whose line fills it does not write it (see maxBacklog). Close
// writes what is left; after it, lines pass straight through.
type LineBuffer struct {
	// mu guards the fields below it and is never held across a write to
	// w: a line's Write appends and returns, so the request that logs
	// it never waits on the console.
	mu     sync.Mutex
	buf    []byte
	spare  []byte // the other buffer, while it is not being written
	every  time.Duration
	timer  *time.Timer
	armed  bool // the timer will flush
	kicked bool // the timer was set to flush now, the batch being full
	closed bool
	err    error // of a batch written in the background
	// wmu orders the writes to w: a batch is taken out of buf with wmu
	// held, so batches go out in the order they were gathered.
	wmu sync.Mutex
	w   io.Writer
}

// NewLineBuffer returns a LineBuffer writing to w; a line waits at most
// every (FlushInterval when zero).
func NewLineBuffer(w io.Writer, every time.Duration) *LineBuffer {
	if every <= 0 {
		every = FlushInterval
	}
	b := &LineBuffer{w: w, every: every, buf: make([]byte, 0, lineBufferSize), spare: make([]byte, 0, lineBufferSize)}
	b.timer = time.AfterFunc(time.Hour, b.tick)
	b.timer.Stop()
	return b
}

// Write takes one whole line (or record). It returns the error of an
// earlier batch written in the background, if any, the line kept all the
// same.
func (b *LineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	ok, err := b.gather(p)
	b.mu.Unlock()
	if ok {
		return len(p), err
	}
	// Backlog full, too long or closed: what is gathered goes out, then
	// p, in order, or p joins the emptied buffer.
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if err := b.flushHeld(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	ok, err = b.gather(p)
	b.mu.Unlock()
	if ok {
		return len(p), err
	}
	return b.w.Write(p)
}

// gather appends p to the batch when it fits the backlog and b is open,
// arming the timer (to fire at once when the batch is full), and hands
// over the error of a batch written in the background; b.mu is held.
func (b *LineBuffer) gather(p []byte) (ok bool, err error) {
	n := len(b.buf) + len(p)
	if b.closed || n > maxBacklog {
		return false, nil
	}
	b.buf = append(b.buf, p...)
	switch {
	case n >= lineBufferSize && !b.kicked:
		b.armed, b.kicked = true, true
		b.timer.Reset(0)
	case !b.armed:
		b.armed = true
		b.timer.Reset(b.every)
	}
	err, b.err = b.err, nil
	return true, err
}

// Flush writes the lines gathered so far.
func (b *LineBuffer) Flush() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return b.flushHeld()
}

// Close writes what is left and stops the timer; later lines are written
// as they come.
func (b *LineBuffer) Close() error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	b.closed = true
	b.timer.Stop()
	b.armed, b.kicked = false, false
	b.mu.Unlock()
	return b.flushHeld()
}

// tick is the timer's flush; its error goes to the next Write. A tick
// that waits for wmu behind another keeps kicked set, so at most one
// waits.
func (b *LineBuffer) tick() {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if err := b.flush(true); err != nil {
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
	}
}

// flushHeld writes the lines gathered so far; b.wmu is held. The batch is
// swapped out under b.mu and written without it, and its buffer becomes
// the spare again once written (a fresh one when a backlog grew it).
func (b *LineBuffer) flushHeld() error { return b.flush(false) }

// flush is flushHeld; from the timer it also disarms it in the same hold
// of b.mu as the swap, so that a line gathered in between cannot find the
// full batch still there and kick a second write of its last lines.
func (b *LineBuffer) flush(tick bool) error {
	b.mu.Lock()
	if tick {
		b.armed, b.kicked = false, false
	}
	out := b.buf
	if len(out) == 0 {
		b.mu.Unlock()
		return nil
	}
	b.buf, b.spare = b.spare[:0], nil
	b.mu.Unlock()
	_, err := b.w.Write(out)
	if cap(out) > 2*lineBufferSize {
		out = make([]byte, 0, lineBufferSize)
	}
	b.mu.Lock()
	b.spare = out[:0]
	b.mu.Unlock()
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
