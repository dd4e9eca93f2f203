package simulator

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PathPrefix is where the API lives, as on OpenRouter: BaseURL ends with it.
const PathPrefix = "/api/v1"

// HeaderFault is the request header that carries per-request directives, the
// same list a "sim/..." model name carries.
const HeaderFault = "X-Sim-Fault"

// HeaderBodySHA256 carries the hex SHA-256 of the exact body bytes the
// simulator sent, so a test can check that a client got them unchanged
// through the gateway. It is a header when the body is known up front and a
// trailer (declared in the Trailer header) on streams.
const HeaderBodySHA256 = "X-Sim-Body-Sha256"

// maxRequestBody caps what the simulator reads of a request body; larger
// bodies get 413. It is above keygate's own default limit (10 MiB).
const maxRequestBody = 32 << 20

// Options configure a simulated upstream. The zero value is a usable server
// that knows no key (every request gets 401).
type Options struct {
	// Keys maps a key (the raw bearer token) to how it behaves. A missing
	// or unknown key gets 401. The map is copied by New. Each of these keys
	// has an account of its own with ample credit ($1,000,000, 1000 free
	// requests a day) and no cap, so that only its Profile makes it fail.
	Keys map[string]Profile
	// Accounts lay out accounts owning keys, with balances, caps and
	// quotas, as OpenRouter enforces them. A key may not appear twice,
	// here or in Keys.
	Accounts []Account
	// Latency is the delay before the response headers of every call,
	// errors included (default 0). The "delay" directive replaces it.
	Latency time.Duration
	// LatencySpread adds to Latency a fixed extra in [0, LatencySpread)
	// derived from a hash of the model name, so different models answer at
	// different but repeatable speeds (default 0).
	LatencySpread time.Duration
	// ChunkDelay is the gap between the content chunks of a stream
	// (default 0).
	ChunkDelay time.Duration
	// Chunks is the number of content chunks in a stream (default 4).
	Chunks int
	// Seed seeds the pseudo-random choices (the Profile.ServerErrorRate
	// faults and generation ids). A given seed, key and request number
	// always give the same outcome, whatever the concurrency.
	Seed uint64
	// Now is the clock for Retry-After dates, X-RateLimit-Reset, the
	// "created" field, and the periods of usage, caps and free-model quotas
	// (UTC minute, day, week, month); tests move it to cross midnight
	// (default time.Now).
	Now func() time.Time
}

// Server is a simulated upstream. It is an http.Handler (use it with
// httptest.NewServer, mounted at the root) and, made by Start, a loopback
// server of its own. It is safe for concurrent use.
type Server struct {
	opts     Options
	keys     map[string]*keyState
	unknown  keyState
	total    atomic.Int64
	reads    atomic.Int64
	inFlight atomic.Int64
	ids      atomic.Uint64
	models   []byte
	gens     generations
	bufs     sync.Pool // *[]byte scratch buffers
	reqs     sync.Pool // *chatRequest, reused with their message slices

	done      chan struct{}
	closing   atomic.Bool
	live      atomic.Int64 // running handlers plus open connections
	idle      chan struct{}
	closeOnce sync.Once
	closeErr  error

	srv       *http.Server
	ln        net.Listener
	serveDone chan struct{}
}

// New returns a simulator to mount as an http.Handler (for example with
// httptest.NewServer). Its BaseURL is empty: use the test server's URL plus
// PathPrefix. Call Close when done so that waiting handlers stop. It panics
// on a layout Start would refuse (a key twice, a bad LimitReset): a mistake
// in the test that wrote it.
func New(opts Options) *Server {
	s, err := build(opts)
	if err != nil {
		panic(err)
	}
	return s
}

func build(opts Options) (*Server, error) {
	if opts.Chunks <= 0 {
		opts.Chunks = defaultChunks
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts: opts,
		keys: make(map[string]*keyState, len(opts.Keys)),
		done: make(chan struct{}),
		idle: make(chan struct{}, 1),
	}
	if err := s.addKeys(opts); err != nil {
		return nil, err
	}
	s.opts.Keys, s.opts.Accounts = nil, nil
	s.models = modelList()
	s.bufs.New = func() any {
		b := make([]byte, 0, 4096)
		return &b
	}
	return s, nil
}

// Start listens on 127.0.0.1 on a free port and serves in the background
// until Close.
func Start(opts Options) (*Server, error) {
	s, err := build(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simulator: listening: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         s.trackConn,
	}
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// BaseURL is the value for OPENROUTER_BASE_URL, e.g.
// "http://127.0.0.1:41234/api/v1". It is empty for a Server made by New.
func (s *Server) BaseURL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String() + PathPrefix
}

// Close stops the listener, closes the connections, ends the delays and
// streams in progress, and waits until every handler and connection
// goroutine of the simulator has finished. It may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		close(s.done)
		if s.srv != nil {
			s.closeErr = s.srv.Close()
			<-s.serveDone
		}
		for s.live.Load() > 0 {
			<-s.idle
		}
	})
	return s.closeErr
}

func (s *Server) enter() { s.live.Add(1) }

func (s *Server) leave() {
	if s.live.Add(-1) == 0 && s.closing.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// trackConn counts open connections so that Close can wait for their
// goroutines; a hijacked connection belongs to its handler from then on.
func (s *Server) trackConn(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		s.enter()
	case http.StateClosed, http.StateHijacked:
		s.leave()
	}
}

// ServeHTTP answers the simulated API under PathPrefix.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.enter()
	defer s.leave()
	s.total.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)

	c := call{s: s, w: w, r: r}
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	var ep endpoint
	switch {
	case !ok:
	case rest == "/chat/completions":
		ep = completionsEndpoint
	case rest == "/models":
		ep = modelsEndpoint
	case rest == "/embeddings":
		ep = embeddingsEndpoint
	case rest == "/responses":
		ep = responsesEndpoint
	case rest == "/key" || rest == "/auth/key":
		ep = keyEndpoint
	case rest == "/credits":
		ep = creditsEndpoint
	case rest == "/generation":
		ep = generationEndpoint
	case rest == "/echo" || strings.HasPrefix(rest, "/echo/"):
		ep = echoEndpoint
	}
	if ep == noEndpoint {
		c.sendPlainError(http.StatusNotFound, "no such endpoint")
		return
	}
	if allow := ep.method(); allow != "" && r.Method != allow {
		c.sendMethodNotAllowed(allow)
		return
	}

	key := bearer(r)
	var ks *keyState
	if key != "" {
		ks = s.keys[key]
	}
	if ks == nil {
		c.ks = &s.unknown
		s.unknown.requests.Add(1)
		msg := "User not found."
		if key == "" {
			msg = "No auth credentials found"
		}
		c.sendError(http.StatusUnauthorized, msg, hint{})
		return
	}
	c.ks = ks
	if ep.isRead() {
		// Budget reads neither count as requests of the key nor meet its
		// Profile's faults, only its revocation: keygate's polls must not
		// shift a test's rate-limit windows.
		c.read = true
		ks.reads.Add(1)
		s.reads.Add(1)
		if ks.profile.Status == http.StatusUnauthorized || ks.revoked.Load() {
			c.sendStatus(http.StatusUnauthorized, hint{})
			return
		}
	} else {
		n := uint64(ks.requests.Add(1) - 1)
		if status, h := ks.decide(n, s.opts.Seed); status != 0 {
			c.sendStatus(status, h)
			return
		}
	}
	if d := r.Header.Get(HeaderFault); d != "" {
		if err := parseDirectives(d, &c.f); err != nil {
			c.sendError(http.StatusBadRequest, err.Error(), hint{})
			return
		}
	}
	if ep.isInference() && ks.bud.management {
		c.sendRefusal(forbidden403("Management keys cannot be used to make API calls to OpenRouter's completion endpoints"))
		return
	}
	switch ep {
	case completionsEndpoint:
		c.serveCompletion()
	case embeddingsEndpoint:
		c.serveEmbeddings()
	case responsesEndpoint:
		c.serveResponses()
	case modelsEndpoint:
		c.serveModels()
	case keyEndpoint:
		c.serveKey()
	case creditsEndpoint:
		c.serveCredits()
	case echoEndpoint:
		c.serveEcho()
	case generationEndpoint:
		c.serveGeneration()
	}
}

// endpoint is a route of the simulated API.
type endpoint int

const (
	noEndpoint endpoint = iota
	completionsEndpoint
	embeddingsEndpoint
	responsesEndpoint
	modelsEndpoint
	keyEndpoint
	creditsEndpoint
	echoEndpoint
	generationEndpoint
)

// method is the one method the endpoint accepts, or "" for any.
func (e endpoint) method() string {
	switch e {
	case completionsEndpoint, embeddingsEndpoint, responsesEndpoint:
		return http.MethodPost
	case modelsEndpoint, keyEndpoint, creditsEndpoint, generationEndpoint:
		return http.MethodGet
	}
	return ""
}

// isInference tells the endpoints that answer with a model, and cost.
func (e endpoint) isInference() bool {
	return e == completionsEndpoint || e == embeddingsEndpoint || e == responsesEndpoint
}

// isRead tells the endpoints that read a key's or account's budget.
func (e endpoint) isRead() bool { return e == keyEndpoint || e == creditsEndpoint }

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	const p = "Bearer "
	if len(v) > len(p) && strings.EqualFold(v[:len(p)], p) {
		return strings.TrimSpace(v[len(p):])
	}
	return ""
}

// latency is the delay before the headers of a reply about model.
func (s *Server) latency(model string) time.Duration {
	d := s.opts.Latency
	if spread := s.opts.LatencySpread; spread > 0 {
		d += time.Duration(fnv64(model) % uint64(spread))
	}
	return d
}

// sleep waits d, and reports false if the client went away or the server is
// closing first.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

func (s *Server) getBuf() *[]byte { return s.bufs.Get().(*[]byte) }

func (s *Server) putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return
	}
	*b = (*b)[:0]
	s.bufs.Put(b)
}
