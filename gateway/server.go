// Package gateway is keygate's HTTP face: the /v1 passthrough, POST /run,
// /keys, health and metrics, with client auth and a cap on concurrent
// requests. Handlers stay thin: key choice, health and retries live in the
// relay, keyring and breaker packages.
package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/console"
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
	// Rand is the random source of /run's random_key, the same one the
	// default strategy draws from; nil uses math/rand/v2.
	Rand keyring.IntN
	// BaseURL is the upstream base (OPENROUTER_BASE_URL).
	BaseURL *url.URL
	// Tokens are the client tokens (GATEWAY_API_KEYS); none means open.
	Tokens []secret.Key
	// Viewer, when set, decides who reads GET /keys, as it decides who
	// reads the status page (a client token or ADMIN_TOKEN); nil lets in
	// the client tokens alone.
	Viewer func(*http.Request) bool
	// MaxBodyBytes caps request bodies (MAX_BODY_BYTES).
	MaxBodyBytes int64
	// ReadBodyTimeout bounds the time a request body takes to arrive
	// (READ_BODY_TIMEOUT): a client trickling its body would otherwise
	// hold a MAX_IN_FLIGHT slot for ever. Zero means no bound.
	ReadBodyTimeout time.Duration
	// MaxInFlight caps concurrent client requests (MAX_IN_FLIGHT).
	MaxInFlight int
	// RunMaxModels caps models per /run (RUN_MAX_MODELS). Default 32.
	RunMaxModels int
	// RunKeepAlive is how often a streamed /run whose models are all
	// silent sends a comment. Default 15s.
	RunKeepAlive time.Duration
	// Metrics records request metrics; nil records none.
	Metrics *metrics.Metrics
	// Gatherer serves /metrics; nil serves 404.
	Gatherer prometheus.Gatherer
	// Observer is the relay's observer, read for /keys.
	Observer *Observer
	// Logger receives console lines; nil discards them.
	Logger *slog.Logger
	// Redactor masks pool keys in upstream text before it is shown.
	Redactor *secret.Redactor
	// Spender takes what answers cost off the keys' budgets; nil keeps
	// no budgets.
	Spender Spender
	// Budgets shows each key's budget in /keys; nil shows none.
	Budgets BudgetViewer
	// Admin serves /admin/* (all methods; it checks its own token); nil
	// mounts nothing.
	Admin http.Handler
	// Page serves the status page: GET and HEAD of / exactly,
	// /status.json and /ui/*; nil mounts nothing.
	Page http.Handler
	// WriteTimeout cuts off a client that accepts no bytes for this long
	// (WRITE_TIMEOUT); zero means never.
	WriteTimeout time.Duration
	// CORSOrigins are the browser origins allowed in (CORS_ORIGINS).
	CORSOrigins []string
	// AllowedHosts are extra Host values an open gateway answers
	// (ALLOWED_HOSTS).
	AllowedHosts []string
}

// assetServer is a status page that tells which paths under /ui/ are its
// files (webui.Handler).
type assetServer interface {
	HasAsset(path string) bool
}

// Server is the gateway's HTTP handler.
type Server struct {
	echo     *echo.Echo
	o        Options
	inFlight atomic.Int64
	// tokens are the digests of the client tokens; nil when the gateway
	// is open.
	tokens  [][sha256.Size]byte
	pass    *passthrough
	v1      http.Handler // the passthrough and its middleware, outside echo
	chatURL string
	guard   *browserGuard
	// strategies /run's random_key chooses between.
	strategies struct{ random, roundRobin keyring.Strategy }
	// hint names the routes in 404 answers (notfound.go).
	hint routeHint
	// accessFields: the logger writes an access line's attributes (JSON);
	// the text console prints its message alone.
	accessFields bool
}

// New builds the gateway's routes.
func New(o Options) *Server {
	if o.RunMaxModels <= 0 {
		o.RunMaxModels = 32
	}
	if o.RunKeepAlive <= 0 {
		o.RunKeepAlive = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, echo: echo.New(), chatURL: o.BaseURL.String() + "/chat/completions",
		accessFields: console.EventFields(o.Logger.Handler())}
	if len(o.Tokens) > 0 {
		s.tokens = tokenDigests(o.Tokens)
	}
	s.guard = newBrowserGuard(o.CORSOrigins, o.AllowedHosts, len(o.Tokens) == 0)
	s.strategies.random = keyring.NewRandom(o.Rand)
	s.strategies.roundRobin = keyring.RoundRobin{}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.httpError
	var tokens TokenCounter
	switch {
	case o.Spender != nil:
		tokens = &usageSink{m: o.Metrics, spend: o.Spender, relay: o.Relay, obs: o.Observer}
	case o.Metrics != nil:
		tokens = o.Metrics
	}
	s.pass = newPassthrough(o.Relay, o.Strategy, o.BaseURL, bodyLimits{max: o.MaxBodyBytes, timeout: o.ReadBodyTimeout}, o.Logger, tokens)
	s.pass.redactor = o.Redactor
	s.pass.spender = o.Spender
	s.pass.tokensOn = len(o.Tokens) > 0

	healthz := func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) }
	// HEAD too: uptime monitors and load balancers often probe with it.
	// net/http sends the headers and drops the body.
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		e.Add(m, "/healthz", healthz)
		e.Add(m, "/readyz", s.readyz)
	}
	if o.Gatherer != nil {
		mh := echo.WrapHandler(metrics.Handler(o.Gatherer))
		e.GET("/metrics", mh)
		e.HEAD("/metrics", mh)
	}
	// Guarded per route, not by a group: a group's middleware comes with a
	// catch-all route that answers 404 where the router would answer 405
	// (GET /run). measure comes first so that the requests limit and auth
	// turn away (503, 401) are counted too.
	keys := chain(s.keys, s.limit, s.viewerAuth)
	e.GET("/keys", keys)
	e.HEAD("/keys", keys) // as GET, without the body, as / and /status.json
	e.POST("/run", chain(s.run, s.measure(metrics.RouteRun), s.limit, s.auth))
	if o.Admin != nil {
		e.Any("/admin/*", echo.WrapHandler(o.Admin))
	}
	if o.Page != nil {
		page := echo.WrapHandler(o.Page)
		files := page
		if a, ok := o.Page.(assetServer); ok {
			// A path under /ui/ that is none of the page's files is
			// unknown: the JSON 404 with the routes, as anywhere else.
			files = func(c echo.Context) error {
				if !a.HasAsset(c.Request().URL.Path) {
					return echo.ErrNotFound
				}
				return page(c)
			}
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			e.Add(m, "/", page)
			e.Add(m, "/status.json", page)
			e.Add(m, "/ui/*", files)
		}
	}
	// /v1 and /v1/* are served outside echo, in the same order (v1.go).
	s.v1 = s.newV1Handler()
	return s
}

// chain wraps h in mw, the first outermost, once. Echo v4 composes a
// route's own middleware anew on every request, which allocates a closure
// per layer per request (and would rebuild auth's token table each time).
func chain(h echo.HandlerFunc, mw ...echo.MiddlewareFunc) echo.HandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

func (s *Server) redact(text string) string {
	if s.o.Redactor == nil {
		return text
	}
	return s.o.Redactor.Redact(text)
}

// ServeHTTP implements http.Handler. Every answer goes out through a
// clientWriter (clientwriter.go); browser checks come first (browser.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := newClientWriter(w, s.o.Redactor, s.o.WriteTimeout, connOf(r))
	switch {
	case r.Method == http.MethodTrace:
		// Upstream would echo the request, pool key and all.
		markNoKey(cw, r)
		cw.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		writeAPIError(cw, http.StatusMethodNotAllowed, "invalid_request_error", "TRACE is not served")
	default:
		out, origin := s.guard.check(r)
		if out.answers() {
			s.guardAnswer(cw, r, out, origin)
			break
		}
		s.guard.serve(cw, r, out, origin)
		if isV1(r) {
			s.v1.ServeHTTP(cw, r)
		} else {
			s.echo.ServeHTTP(cw, r)
		}
	}
	// Not deferred: after a panic (http.ErrAbortHandler, upstream broke
	// mid-body) nothing more is written, and the writer is not reused.
	cw.finish()
	cw.release()
}

// guardAnswer answers r as the browser checks judged it (a 403, a
// preflight); a /v1 or /run request so answered is counted, and a /v1 one
// gets its access line, as the turn-aways of auth and the request limit
// are, so that a browser app's 403s show on the dashboard and the console.
func (s *Server) guardAnswer(w http.ResponseWriter, r *http.Request, out guardOutcome, origin string) {
	route := metrics.RoutePassthrough
	switch {
	case isV1(r):
	case r.URL.Path == "/run":
		route = metrics.RouteRun
	default:
		s.guard.serve(w, r, out, origin)
		return
	}
	sw := &statusWriter{ResponseWriter: w, start: time.Now()}
	s.guard.serve(sw, r, out, origin)
	sw.returned = true
	if route == metrics.RouteRun {
		if m := s.o.Metrics; m != nil {
			m.Request(route, sw.code(), time.Since(sw.start))
		}
		return
	}
	var ex *exchange
	s.finish(sw, r, &ex)
}

// measure records the request metrics of a route. It records in a defer:
// a passthrough whose upstream breaks mid-body aborts the handler with
// http.ErrAbortHandler, and that request counts too (with the status the
// client got, or 502 when none was sent).
func (s *Server) measure(route metrics.Route) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			if s.o.Metrics == nil {
				return next(c)
			}
			start := time.Now()
			returned := false
			defer func() {
				code := c.Response().Status
				switch he, ok := err.(*echo.HTTPError); {
				case ok:
					code = he.Code
				case !returned && !c.Response().Committed:
					code = http.StatusBadGateway
				}
				s.o.Metrics.Request(route, code, time.Since(start))
			}()
			err = next(c)
			returned = true
			return err
		}
	}
}

// limit answers 503 past MaxInFlight concurrent requests.
func (s *Server) limit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.enter() {
			writeOverloaded(c.Response(), c.Request())
			return nil
		}
		defer s.leave()
		return next(c)
	}
}

// enter takes one of MaxInFlight request slots; false means none is left.
// Every true must be followed by leave.
func (s *Server) enter() bool {
	if s.o.MaxInFlight <= 0 {
		return true
	}
	if s.inFlight.Add(1) > int64(s.o.MaxInFlight) {
		s.inFlight.Add(-1)
		return false
	}
	return true
}

// leave gives back a slot taken by enter.
func (s *Server) leave() {
	if s.o.MaxInFlight > 0 {
		s.inFlight.Add(-1)
	}
}

// auth lets in only requests bearing one of the client tokens.
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.authorized(c.Request()) {
			writeUnauthorized(c.Response(), c.Request())
			return nil
		}
		return next(c)
	}
}

// viewerAuth lets in those who may read the pool's state: Options.Viewer's,
// or auth's without one.
func (s *Server) viewerAuth(next echo.HandlerFunc) echo.HandlerFunc {
	if s.o.Viewer == nil {
		return s.auth(next)
	}
	return func(c echo.Context) error {
		if !s.o.Viewer(c.Request()) {
			writeUnauthorized(c.Response(), c.Request())
			return nil
		}
		return next(c)
	}
}

// authorized reports whether r bears one of the client tokens, or the
// gateway is open.
func (s *Server) authorized(r *http.Request) bool {
	if s.tokens == nil {
		return true
	}
	got, ok := access.Bearer(r.Header.Get("Authorization"))
	return ok && validToken(s.tokens, got)
}

// validToken compares got with every token in constant time. Digests are
// compared, not the tokens, so that the time does not tell a token's length
// either.
func validToken(tokens [][sha256.Size]byte, got string) bool {
	sum := sha256.Sum256([]byte(got))
	match := 0
	for i := range tokens {
		match |= subtle.ConstantTimeCompare(tokens[i][:], sum[:])
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
	// How many keys, and so when an attack took the last one out, is for
	// callers with a client token only.
	if s.tokens == nil || !s.authorized(c.Request()) {
		return c.JSON(code, map[string]any{"status": status})
	}
	return c.JSON(code, map[string]any{"status": status, "keys_available": n})
}

// httpError answers echo's own errors (unknown route, wrong method) as JSON;
// an unknown route's answer names the routes that exist.
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
	if code == http.StatusNotFound && errors.Is(err, echo.ErrNotFound) {
		msg = s.notFoundMessage(c.Request())
	}
	if strings.HasPrefix(c.Path(), "/run") || c.Request().URL.Path == "/run" {
		writeJSON(c.Response(), code, runError{Error: msg})
		return
	}
	writeAPIError(c.Response(), code, "invalid_request_error", msg)
}
