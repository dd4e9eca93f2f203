// Package gateway is keygate's HTTP face: the /v1 passthrough, POST /run,
// /keys, health and metrics, with client auth and a cap on concurrent
// requests. Handlers stay thin: key choice, health and retries live in the
// relay, keyring and breaker packages.
package gateway

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/metrics"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// Options wire a gateway.
type Options struct {
	// Relay sends upstream calls over the pool.
	Relay *relay.Relay
	// Strategy is the default key rotation (KEY_ROTATION).
	Strategy keyring.Strategy
	// BaseURL is the upstream base (OPENROUTER_BASE_URL).
	BaseURL *url.URL
	// Tokens are the client tokens (GATEWAY_API_KEYS); none means open.
	Tokens []string
	// MaxBodyBytes caps request bodies (MAX_BODY_BYTES).
	MaxBodyBytes int64
	// MaxInFlight caps concurrent client requests (MAX_IN_FLIGHT).
	MaxInFlight int
	// RunMaxModels caps models per /run (RUN_MAX_MODELS). Default 32.
	RunMaxModels int
	// Metrics records request metrics; nil records none.
	Metrics *metrics.Metrics
	// Gatherer serves /metrics; nil serves 404.
	Gatherer prometheus.Gatherer
	// Observer is the relay's observer, read for /keys.
	Observer *Observer
	// Logger receives console lines.
	Logger *slog.Logger
	// Redactor masks pool keys in upstream text before it is shown.
	Redactor *secret.Redactor
}

// Server is the gateway's HTTP handler.
type Server struct {
	echo     *echo.Echo
	o        Options
	inFlight atomic.Int64
	pass     *passthrough
	chatURL  string
	// strategies /run's random_key chooses between.
	strategies struct{ random, roundRobin keyring.Strategy }
}

// New builds the gateway's routes.
func New(o Options) *Server {
	if o.RunMaxModels <= 0 {
		o.RunMaxModels = 32
	}
	s := &Server{o: o, echo: echo.New(), chatURL: o.BaseURL.String() + "/chat/completions"}
	s.strategies.random, _ = keyring.ByName(keyring.NameRandom, nil)
	s.strategies.roundRobin, _ = keyring.ByName(keyring.NameRoundRobin, nil)
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.httpError
	var tokens TokenCounter
	if o.Metrics != nil {
		tokens = o.Metrics
	}
	s.pass = newPassthrough(o.Relay, o.Strategy, o.BaseURL, o.MaxBodyBytes, o.Logger, tokens)

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	if o.Gatherer != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})))
	}
	guarded := e.Group("", s.limit, s.auth)
	guarded.GET("/keys", s.keys)
	guarded.POST("/run", s.run, s.measure(metrics.RouteRun))
	guarded.Any("/v1/*", s.passthrough, s.measure(metrics.RoutePassthrough))
	guarded.Any("/v1", s.passthrough, s.measure(metrics.RoutePassthrough))
	return s
}

func (s *Server) redact(text string) string {
	if s.o.Redactor == nil {
		return text
	}
	return s.o.Redactor.Redact(text)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

func (s *Server) passthrough(c echo.Context) error {
	s.pass.ServeHTTP(c.Response(), c.Request())
	return nil
}

// measure records the request metrics of a route.
func (s *Server) measure(route metrics.Route) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if s.o.Metrics != nil {
				code := c.Response().Status
				if err != nil {
					if he, ok := err.(*echo.HTTPError); ok {
						code = he.Code
					}
				}
				s.o.Metrics.Request(route, code, time.Since(start))
			}
			return err
		}
	}
}

// limit answers 503 past MaxInFlight concurrent requests.
func (s *Server) limit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.o.MaxInFlight > 0 {
			n := s.inFlight.Add(1)
			defer s.inFlight.Add(-1)
			if n > int64(s.o.MaxInFlight) {
				c.Response().Header().Set("Retry-After", "1")
				writeAPIError(c.Response(), http.StatusServiceUnavailable, "overloaded", "too many concurrent requests; retry shortly")
				return nil
			}
		}
		return next(c)
	}
}

// auth lets in only requests bearing one of the client tokens.
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	if len(s.o.Tokens) == 0 {
		return next
	}
	tokens := make([][]byte, len(s.o.Tokens))
	for i, t := range s.o.Tokens {
		tokens[i] = []byte(t)
	}
	return func(c echo.Context) error {
		got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if ok && validToken(tokens, []byte(strings.TrimSpace(got))) {
			return next(c)
		}
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="keygate"`)
		writeAPIError(c.Response(), http.StatusUnauthorized, "invalid_request_error",
			"missing or invalid gateway token: send Authorization: Bearer <one of GATEWAY_API_KEYS>")
		return nil
	}
}

// validToken compares got with every token in constant time.
func validToken(tokens [][]byte, got []byte) bool {
	match := 0
	for _, t := range tokens {
		match |= subtle.ConstantTimeCompare(t, got)
	}
	return match == 1
}

func (s *Server) readyz(c echo.Context) error {
	pool := s.o.Relay.Pool()
	n := pool.CountAvailable(s.o.Relay.Breakers().Now().UnixNano())
	code := http.StatusOK
	status := "ready"
	if n == 0 {
		code, status = http.StatusServiceUnavailable, "no key in rotation"
	}
	return c.JSON(code, map[string]any{"status": status, "keys_available": n})
}

// httpError answers echo's own errors (unknown route, wrong method) as JSON.
func (s *Server) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	if he, ok := err.(*echo.HTTPError); ok {
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = strings.ToLower(m)
		}
	}
	if strings.HasPrefix(c.Path(), "/run") || c.Request().URL.Path == "/run" {
		writeJSON(c.Response(), code, runError{Error: msg})
		return
	}
	writeAPIError(c.Response(), code, "invalid_request_error", msg)
}
