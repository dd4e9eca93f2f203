package gateway

import (
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"github.com/keygate/keygate/metrics"
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

// isV1 reports whether a request belongs to the passthrough: /v1 or
// /v1/..., matched on the escaped path as echo's router matches it.
func isV1(r *http.Request) bool {
	p := r.URL.RawPath
	if p == "" {
		p = r.URL.Path
	}
	return p == "/v1" || strings.HasPrefix(p, "/v1/")
}

// v1Handler is the passthrough behind measure, limit and auth, in that
// order, written out in one function rather than chained: every layer of a
// chain would be one more frame under the stream's deepest point.
type v1Handler struct{ s *Server }

func (s *Server) newV1Handler() http.Handler { return &v1Handler{s: s} }

// ServeHTTP implements http.Handler.
func (h *v1Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	if m := s.o.Metrics; m != nil {
		sw := &statusWriter{ResponseWriter: w, start: time.Now()}
		defer sw.record(m)
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
	s.pass.ServeHTTP(w, r)
	markReturned(w)
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

// statusWriter remembers the final status of a /v1 response and records
// the request metrics. It passes flushes and everything else
// (http.ResponseController) through.
type statusWriter struct {
	http.ResponseWriter
	status   int
	start    time.Time
	returned bool
}

// record records the request, like the echo routes' measure: a request
// aborted with http.ErrAbortHandler (upstream broke mid-body) counts too,
// with the status the client got, or 502 when none was sent.
func (w *statusWriter) record(m *metrics.Metrics) {
	code := w.status
	if code == 0 {
		code = http.StatusOK
		if !w.returned {
			code = http.StatusBadGateway
		}
	}
	m.Request(metrics.RoutePassthrough, code, time.Since(w.start))
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
