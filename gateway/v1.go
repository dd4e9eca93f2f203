package gateway

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/secret"
)

// The /v1 passthrough is served by a plain net/http handler, outside echo:
// it is the hot path, and it carries streams. A stream's goroutine keeps
// the deepest stack its request ever needed, and the proxy's first flush,
// under echo's routing, context, response wrapper and middleware frames,
// took it past 16 KiB to 32 KiB; outside them an open stream costs about
// 10 KiB less, and each request skips the router and the context. The
// checks (measure, limit, auth) are those of the echo routes, in the same
// order and with the same answers.

// isV1 reports whether a request belongs to the passthrough: /v1, /v1/...,
// /api/v1 or /api/v1/..., matched on the escaped path as echo's router
// matches it.
func isV1(r *http.Request) bool {
	p := r.URL.RawPath
	if p == "" {
		p = r.URL.Path
	}
	return v1Prefix(p) != ""
}

// v1Prefixes are the passthrough's prefixes. /api/v1 is OpenRouter's own,
// so that a base URL copied from OpenRouter works with only the host
// changed; it is served exactly as /v1.
var v1Prefixes = [...]string{"/v1", "/api/v1"}

// v1Prefix returns the passthrough prefix that path starts with, followed
// by its end or a slash, or "" when path is outside the passthrough.
func v1Prefix(path string) string {
	for _, pre := range v1Prefixes {
		if rest, ok := strings.CutPrefix(path, pre); ok && (rest == "" || rest[0] == '/') {
			return pre
		}
	}
	return ""
}

// v1Handler is the passthrough behind measure, limit and auth, in that
// order, written out in one function rather than chained: every layer of a
// chain would be one more frame under the stream's deepest point.
type v1Handler struct{ s *Server }

func (s *Server) newV1Handler() http.Handler { return &v1Handler{s: s} }

// ServeHTTP implements http.Handler.
func (h *v1Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	var ex *exchange // the passthrough's, once it has read the request
	st := new(v1Request)
	if s.o.Metrics != nil || s.o.Logger.Enabled(r.Context(), slog.LevelInfo) {
		sw := &st.sw
		*sw = statusWriter{ResponseWriter: w, start: time.Now()}
		defer s.finish(sw, r, &ex)
		w = sw
	}
	if !s.enter() {
		writeOverloaded(w, r)
		markReturned(w)
		return
	}
	defer s.leave()
	if !s.authorized(r) {
		writeUnauthorized(w, r)
		markReturned(w)
		return
	}
	s.pass.serve(w, r, &ex, &st.xc)
	markReturned(w)
}

// v1Request is what a /v1 request needs of the heap, in one allocation:
// its status writer and its exchange's context.
type v1Request struct {
	sw statusWriter
	xc exchangeCtx
}

// markReturned tells the statusWriter, if any, that the handler returned
// rather than panicked.
func markReturned(w http.ResponseWriter) {
	if sw, ok := w.(*statusWriter); ok {
		sw.returned = true
	}
}

// tokenDigests are the SHA-256 digests of the client tokens, which
// validToken compares.
func tokenDigests(tokens []secret.Key) [][sha256.Size]byte {
	d := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		d[i] = t.Digest()
	}
	return d
}

// writeOverloaded is the answer past MAX_IN_FLIGHT.
func writeOverloaded(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	markNoKey(w, r)
	writeAPIError(w, http.StatusServiceUnavailable, "overloaded", "too many concurrent requests; retry shortly")
}

// writeUnauthorized is the answer to a missing or wrong gateway token.
func writeUnauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="keygate"`)
	markNoKey(w, r)
	writeAPIError(w, http.StatusUnauthorized, "invalid_request_error",
		"missing or invalid gateway token: send Authorization: Bearer <one of GATEWAY_API_KEYS>")
}

// statusWriter remembers the final status of a /v1 response, for the
// request metrics and the access line. It passes flushes and everything
// else (http.ResponseController) through.
type statusWriter struct {
	http.ResponseWriter
	status   int
	start    time.Time
	returned bool
}

// code is the status to record, like the echo routes' measure does: a
// request aborted with http.ErrAbortHandler (upstream broke mid-body) has
// the status the client got, or 502 when none was sent.
func (w *statusWriter) code() int {
	if w.status != 0 {
		return w.status
	}
	if !w.returned {
		return http.StatusBadGateway
	}
	return http.StatusOK
}

// WriteHeader implements http.ResponseWriter; informational (1xx)
// statuses pass without being taken for the final one.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// FlushError flushes the response; http.ResponseController prefers it.
func (w *statusWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
