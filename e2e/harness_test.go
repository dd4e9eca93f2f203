package e2e

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// clock is a settable time source for key rests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a log sink safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gateway is a running keygate in front of an upstream.
type gateway struct {
	*app.App
	URL   string
	Clock *clock
	Logs  *syncBuffer
	srv   *httptest.Server
}

// testKeys are fake keys shaped like OpenRouter's.
func testKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "sk-or-v1-" + strconv.Itoa(1000+i) + "abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234" + strconv.Itoa(i)
	}
	return keys
}

// startGateway runs keygate against upstream with keys (ids 1..n) and extra
// environment settings (NAME=value).
func startGateway(t testing.TB, upstream string, keys []string, env ...string) *gateway {
	t.Helper()
	clk := newClock()
	a, logs := newApp(t, upstream, keys, app.Options{Now: clk.Now}, env...)
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	return &gateway{App: a, URL: srv.URL, Clock: clk, Logs: logs, srv: srv}
}

// newApp wires keygate against upstream with keys (ids 1..n), extra
// environment settings (NAME=value) and o, logging at debug into the
// returned buffer.
func newApp(t testing.TB, upstream string, keys []string, o app.Options, env ...string) (*app.App, *syncBuffer) {
	t.Helper()
	// Budget polls and the per-client bound on rests are off unless a
	// test sets them: most tests count upstream calls and rest several
	// keys from one client.
	environ := append([]string{"OPENROUTER_BASE_URL=" + upstream, "LOG_LEVEL=debug",
		"BUDGET_POLL_INTERVAL=0", "CLIENT_REST_SHARE=1"}, env...)
	cfg, err := config.Load(environ, nil, false)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Keys = nil
	for i, k := range keys {
		cfg.Keys = append(cfg.Keys, keyring.Entry{ID: i + 1, Secret: secret.New(k)})
	}
	logs := &syncBuffer{}
	a, err := app.New(cfg, console.New(logs, cfg.LogFormat, cfg.LogLevelValue()), o)
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	return a, logs
}

// do sends a request to the gateway and returns the response with its body read.
func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, b
}

func newRequest(t testing.TB, method, url string, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

var _ = slog.LevelDebug
