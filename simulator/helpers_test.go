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
	"testing"
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
