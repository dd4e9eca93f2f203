package simulator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Test keys; plain strings, so nothing here looks like a real secret.
const (
	keyOK      = "test-key-healthy"
	keyRevoked = "test-key-revoked"
	keyBroke   = "test-key-no-credit"
	keyBanned  = "test-key-forbidden"
)

// fixedNow is the injected clock of the tests: half past a second, so that
// rounding to whole seconds shows.
var fixedNow = time.Date(2025, 3, 4, 5, 6, 7, 500_000_000, time.UTC)

func testOptions() Options {
	return Options{
		Keys: map[string]Profile{
			keyOK:      {},
			keyRevoked: {Status: http.StatusUnauthorized},
			keyBroke:   {Status: http.StatusPaymentRequired},
			keyBanned:  {Status: http.StatusForbidden},
		},
		Seed: 42,
		Now:  func() time.Time { return fixedNow },
	}
}

// harness is a simulator on loopback with a client of its own.
type harness struct {
	t      *testing.T
	s      *Server
	base   string
	client *http.Client
}

// startSim starts a simulator with Start; Cleanup closes it and the
// client's idle connections.
func startSim(t *testing.T, opts Options) *harness {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	h := &harness{t: t, s: s, base: s.BaseURL(), client: &http.Client{Transport: &http.Transport{}}}
	t.Cleanup(func() {
		h.client.CloseIdleConnections()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// mountSim serves a simulator made by New through httptest.
func mountSim(t *testing.T, opts Options) *harness {
	t.Helper()
	s := New(opts)
	ts := httptest.NewServer(s)
	h := &harness{t: t, s: s, base: ts.URL + PathPrefix, client: ts.Client()}
	t.Cleanup(func() {
		_ = s.Close()
		ts.Close()
	})
	return h
}

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error // from reading the body
}

// request sends a request; hdr holds extra headers, key "" sends none.
func (h *harness) request(ctx context.Context, method, path, key, body string, hdr map[string]string) *http.Response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		h.t.Fatalf("NewRequest: %v", err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// do sends a request and reads the whole reply.
func (h *harness) do(method, path, key, body string, hdr map[string]string) reply {
	h.t.Helper()
	resp := h.request(context.Background(), method, path, key, body, hdr)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// chat posts a chat completion for model with one user message.
func (h *harness) chat(key, model, prompt string, stream bool, hdr map[string]string) reply {
	h.t.Helper()
	return h.do(http.MethodPost, "/chat/completions", key, chatBody(model, prompt, stream), hdr)
}

func chatBody(model, prompt string, stream bool) string {
	b, _ := json.Marshal(map[string]any{
		"model":    model,
		"stream":   stream,
		"messages": []map[string]string{{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}},
	})
	return string(b)
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// apiError decodes an OpenAI-style error body.
func apiError(t *testing.T, body []byte) (string, int) {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
			Code    int    `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Message, e.Error.Code
}

// Shapes as github.com/openai/openai-go decodes them.
type oaCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// readEvent reads one server-sent event's data ("" at the end).
func readEvent(br *bufio.Reader) (string, error) {
	var data bytes.Buffer
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return data.String(), err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data.Len() > 0 {
				return data.String(), nil
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data.WriteString(v)
		}
	}
}

// parseEvents splits a whole stream body into its events' data.
func parseEvents(t *testing.T, body []byte) []string {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(body))
	var evs []string
	for {
		ev, err := readEvent(br)
		if err == io.EOF {
			if ev != "" {
				t.Fatalf("stream ends inside an event: %q", ev)
			}
			return evs
		}
		if err != nil {
			t.Fatalf("reading events: %v", err)
		}
		evs = append(evs, ev)
	}
}

// eventually polls cond until it holds or a generous deadline passes; it
// waits for something that must happen, it asserts no timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bubbleCall is a chat completion served by a simulator on a goroutine of
// the current synctest bubble. In the bubble the delays run on the fake
// clock, and after synctest.Wait the handler is either finished or blocked
// in a delay, so what it has written by a given fake time is exact: the
// tests check delays by ordering, not by timing.
type bubbleCall struct {
	w     *lockedRecorder
	done  chan struct{}
	start time.Time // fake time
}

// lockedRecorder is a ResponseRecorder whose writes the test may watch
// while the handler runs. (synctest.Wait orders the handler's writes before
// the test's reads, but not the test's reads before the handler's later
// writes, which the race detector would report.)
type lockedRecorder struct {
	mu  sync.Mutex
	rec *httptest.ResponseRecorder
}

func (l *lockedRecorder) Header() http.Header { return l.rec.Header() }

func (l *lockedRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Write(p)
}

func (l *lockedRecorder) WriteHeader(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.WriteHeader(code)
}

func (l *lockedRecorder) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.Flush()
}

// written returns the body so far and whether anything was flushed.
func (l *lockedRecorder) written() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Body.String(), l.rec.Flushed
}

// serveInBubble starts a chat completion for model with key; hdr holds
// extra headers. Call it inside synctest.Test, with s made there too.
func serveInBubble(t *testing.T, s *Server, key, model string, stream bool, hdr map[string]string) *bubbleCall {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, PathPrefix+"/chat/completions",
		strings.NewReader(chatBody(model, "hi", stream)))
	req.Header.Set("Authorization", "Bearer "+key)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &bubbleCall{w: &lockedRecorder{rec: httptest.NewRecorder()}, done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(c.done)
		defer func() {
			// A Close during a delay aborts the handler, as net/http
			// would let it (a failed test closes the simulator early).
			if r := recover(); r != nil && r != http.ErrAbortHandler {
				panic(r)
			}
		}()
		s.ServeHTTP(c.w, req)
	}()
	return c
}

// at advances the bubble's fake clock to d after the call's start and
// waits until the handler has done all it can by then.
func (c *bubbleCall) at(d time.Duration) {
	if rest := d - time.Since(c.start); rest > 0 {
		time.Sleep(rest)
	}
	synctest.Wait()
}

func (c *bubbleCall) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// answered reports whether anything of the reply has been written.
func (c *bubbleCall) answered() bool {
	body, flushed := c.w.written()
	return c.finished() || flushed || body != ""
}

// events counts the server-sent events written so far.
func (c *bubbleCall) events() int {
	body, _ := c.w.written()
	return strings.Count(body, "\n\n") - strings.Count(body, processing)
}

// result is the whole reply; call it once the call has finished.
func (c *bubbleCall) result(t *testing.T) (*http.Response, string) {
	t.Helper()
	if !c.finished() {
		t.Fatal("the call has not finished")
	}
	return c.w.rec.Result(), c.w.rec.Body.String()
}

// heldBetween checks that the call has no answer at all until lo after its
// start, and has finished by hi (lo <= hi) on the fake clock.
func (c *bubbleCall) heldBetween(t *testing.T, lo, hi time.Duration) {
	t.Helper()
	c.at(0)
	if c.answered() {
		t.Fatalf("answered before the fake clock moved (delay %v)", lo)
	}
	c.at(lo - time.Nanosecond)
	if c.answered() {
		t.Fatalf("answered before %v had passed", lo)
	}
	c.at(hi)
	if !c.finished() {
		t.Fatalf("no whole answer once %v had passed", hi)
	}
}
