package main

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/keygate/keygate/simulator"
)

// upstreamTap serves the simulator, counting its refusals and its GET /key
// reads in flight; with statusOnly, error answers lose their body and
// their rate-limit headers.
type upstreamTap struct {
	sim         *simulator.Server
	statusOnly  bool
	refusals    atomic.Int64
	keyReads    atomic.Int64
	keyInFlight atomic.Int64
}

func (u *upstreamTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/key") {
		u.keyInFlight.Add(1)
		defer u.keyInFlight.Add(-1)
		u.keyReads.Add(1)
		u.sim.ServeHTTP(w, r)
		return
	}
	sw := &statusWriter{ResponseWriter: w, strip: u.statusOnly}
	u.sim.ServeHTTP(sw, r)
	if sw.code == http.StatusPaymentRequired || sw.code == http.StatusTooManyRequests {
		u.refusals.Add(1)
	}
}

// statusWriter notes the status; with strip, an error answer goes out as
// its status text alone, without X-RateLimit-* or Retry-After, so that
// keygate's classifier has only the status to go on. (A bare
// {"error":{"code":402}} would still parse as an error object, and read as
// the account's credits.)
type statusWriter struct {
	http.ResponseWriter
	code    int
	strip   bool
	dropped bool
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	if !s.strip || code < 400 {
		s.ResponseWriter.WriteHeader(code)
		return
	}
	h := s.ResponseWriter.Header()
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "x-ratelimit-") || strings.EqualFold(name, "Retry-After") {
			h.Del(name)
		}
	}
	body := []byte(http.StatusText(code))
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	s.ResponseWriter.WriteHeader(code)
	_, _ = io.Copy(s.ResponseWriter, bytes.NewReader(body))
	s.dropped = true
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.WriteHeader(http.StatusOK)
	}
	if s.dropped {
		return len(b), nil
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the connection for flushes.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
