package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/secret"
)

// clientWriter is what every route writes its answer through. It makes two
// promises by construction:
//
//   - no pool key reaches the client: header names and values (of 1xx
//     interim answers, of the answer, of its trailers) and every byte of
//     every body pass the redactor, streamed, a key cut between two writes
//     included (secret.Writer keeps the body's length, so a declared
//     Content-Length stays true);
//   - a client that accepts no bytes for WRITE_TIMEOUT is cut off: each
//     write and flush runs under a deadline on the connection at least
//     WRITE_TIMEOUT ahead (renew), so a deadline on progress, not a total
//     time: a slow but steady reader is served, and a write to one that
//     stopped reading fails. The proxy then aborts, which
//     closes the upstream body (cancelling the call) and frees the slot.
type clientWriter struct {
	http.ResponseWriter
	red     *secret.Redactor
	timeout time.Duration
	body    secret.Writer
	wrote   bool
	// renewed is when renew last moved the deadline, zero before.
	renewed time.Time
	// conn is the state the answers of an HTTP/1 connection share; nil
	// when unknown.
	conn *connState
}

// connState is what the answers of one HTTP/1 connection, one after the
// other, know of it: when and for which timeout the last of them moved
// its write deadline. An answer that starts less than the slack later
// finds the deadline at least WRITE_TIMEOUT ahead and leaves it: moving it
// is a runtime timer change, on every call of a busy connection.
type connState struct {
	moved   time.Time
	timeout time.Duration
}

type connKey struct{}

// ConnContext is the http.Server hook (Server.ConnContext) that gives each
// connection the state its answers share.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, new(connState))
}

// connOf is the connection state of r, nil when r is not HTTP/1 (an HTTP/2
// connection's answers run at once) or its server has no ConnContext.
func connOf(r *http.Request) *connState {
	if r.ProtoMajor != 1 {
		return nil
	}
	cs, _ := r.Context().Value(connKey{}).(*connState)
	return cs
}

// clientWriters are reused: one per request would be an allocation on the
// hot path.
var clientWriters = sync.Pool{New: func() any { return new(clientWriter) }}

// newClientWriter readies a writer for one answer on w, of the connection
// conn (nil when unknown). Its write deadline starts now: a keep-alive
// connection may carry one set long ago, which the server's own writes
// (100 Continue) would otherwise meet; unless conn tells that an answer
// before it moved the deadline, for the same timeout, less than the slack
// ago.
func newClientWriter(w http.ResponseWriter, red *secret.Redactor, timeout time.Duration, conn *connState) *clientWriter {
	cw := clientWriters.Get().(*clientWriter)
	cw.ResponseWriter, cw.red, cw.timeout, cw.wrote = w, red, timeout, false
	cw.renewed, cw.conn = time.Time{}, conn
	if conn != nil && conn.timeout == timeout {
		cw.renewed = conn.moved
	}
	cw.body.Reset(red, (*rawWriter)(cw))
	cw.renew()
	return cw
}

// release gives cw back for reuse, once nothing writes through it.
func (w *clientWriter) release() {
	if w.body.Cap() > 4<<10 {
		w.body = secret.Writer{}
	}
	w.ResponseWriter, w.conn = nil, nil
	clientWriters.Put(w)
}

// WriteHeader implements http.ResponseWriter. It runs for 1xx interim
// answers too, whose headers the proxy puts in Header() just before.
func (w *clientWriter) WriteHeader(code int) {
	if code >= 200 {
		if w.wrote {
			return
		}
		w.wrote = true
	}
	h := w.Header()
	redactHeaderNames(h, w.red)
	w.renew()
	w.ResponseWriter.WriteHeader(code)
	if code == http.StatusOK && eventStream(h) {
		// A stream's headers go out now, from this shallow frame: the
		// server formats them in one of its deepest calls, and a stream's
		// goroutine keeps the stack its deepest point grew to.
		_ = flushWriter(w.ResponseWriter)
	}
}

// Write implements http.ResponseWriter.
func (w *clientWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.body.Write(p)
}

// FlushError flushes what is masked; http.ResponseController prefers it.
// The few bytes that may start a key wait for the next write.
func (w *clientWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	w.renew()
	return flushWriter(w.ResponseWriter)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *clientWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes what the body held back and masks the trailers, which the
// server sends from Header() after the handler returns.
func (w *clientWriter) finish() {
	if w.wrote {
		_ = w.body.Close()
	}
	if h := w.Header(); hasTrailers(h) {
		redactHeaderNames(h, w.red)
	}
}

// hasTrailers reports whether h, after the answer's headers went out,
// holds trailers: announced in Trailer, or named with http.TrailerPrefix.
func hasTrailers(h http.Header) bool {
	if _, ok := h["Trailer"]; ok {
		return true
	}
	for name := range h {
		if strings.HasPrefix(name, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// renewSlack is how long a write deadline, once moved, serves the writes
// that follow: moving it is a timer update in the runtime, and an answer
// makes three or four writes in as many microseconds (a stream, one per
// chunk). A write then meets a deadline between WRITE_TIMEOUT and
// WRITE_TIMEOUT plus the slack ahead; an eighth of it, at most a second.
func renewSlack(timeout time.Duration) time.Duration { return min(timeout/8, time.Second) }

// renew keeps the connection's write deadline at least WRITE_TIMEOUT
// ahead. It runs before every write: one that waits on a client taking no
// bytes fails after WRITE_TIMEOUT (and at most the slack more), however
// long the answer was quiet before it. The first renew of an answer sets
// the deadline unless the connection's last answer moved it less than the
// slack ago (connState): a keep-alive connection carries the last answer's.
func (w *clientWriter) renew() {
	if w.timeout <= 0 {
		return
	}
	slack := renewSlack(w.timeout)
	// time.Since reads one clock, time.Now two: the rule is a deadline
	// moved microseconds ago, which needs only the monotonic one.
	if !w.renewed.IsZero() && time.Since(w.renewed) < slack {
		return
	}
	now := time.Now()
	w.renewed = now
	if w.conn != nil {
		w.conn.moved, w.conn.timeout = now, w.timeout
	}
	setWriteDeadline(w.ResponseWriter, now.Add(w.timeout+slack))
}

// rawWriter is the clientWriter's way out for masked body bytes.
type rawWriter clientWriter

func (w *rawWriter) Write(p []byte) (int, error) {
	(*clientWriter)(w).renew()
	return w.ResponseWriter.Write(p)
}

// flushWriter flushes w as http.ResponseController does, without
// allocating one.
func flushWriter(w http.ResponseWriter) error {
	for {
		switch x := w.(type) {
		case interface{ FlushError() error }:
			return x.FlushError()
		case http.Flusher:
			x.Flush()
			return nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return http.ErrNotSupported
		}
	}
}

// setWriteDeadline sets the write deadline of w's connection, as
// http.ResponseController does but without allocating one.
func setWriteDeadline(w http.ResponseWriter, t time.Time) bool {
	for {
		switch x := w.(type) {
		case interface{ SetWriteDeadline(time.Time) error }:
			return x.SetWriteDeadline(t) == nil
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// redactHeaderNames masks pool keys in every value of h and drops a header
// whose name holds one (a masked name would not be a valid one).
func redactHeaderNames(h http.Header, r *secret.Redactor) {
	if r.Empty() {
		return
	}
	for name := range h {
		// Trailer names announced with the prefix the server strips are
		// checked whole too: the key would follow it.
		if r.HoldsKeyFold(name) {
			delete(h, name)
		}
	}
	redactHeader(h, r)
}
