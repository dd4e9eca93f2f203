package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// accessKeys are the pool of the access-line tests, ids 1..3.
var accessKeys = []string{
	"sk-or-v1-access00000000000000000000000000000001",
	"sk-or-v1-access00000000000000000000000000000002",
	"sk-or-v1-access00000000000000000000000000000003",
}

// accessUpstream answers its first requests with the statuses of fail, in
// turn, and then 200 with a JSON chat answer, or an SSE stream whose last
// event carries the usage when the request asks for one.
type accessUpstream struct {
	mu   sync.Mutex
	fail []int
}

func (u *accessUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	u.mu.Lock()
	code := 0
	if len(u.fail) > 0 {
		code, u.fail = u.fail[0], u.fail[1:]
	}
	u.mu.Unlock()
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Request: r}
	text := `{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`
	switch {
	case code != 0:
		resp.StatusCode = code
		text = `{"error":{"message":"no"}}`
	case strings.Contains(string(body), `"stream":true`):
		resp.Header.Set("Content-Type", "text/event-stream")
		text = "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n" +
			"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n"
	}
	resp.Body = io.NopCloser(strings.NewReader(text))
	return resp, nil
}

// newAccessServer is a round-robin gateway over accessKeys in front of up,
// logging in format at level to the returned buffer.
func newAccessServer(t testing.TB, up http.RoundTripper, format string, level slog.Level, tokens ...string) (*Server, *strings.Builder) {
	t.Helper()
	var entries []keyring.Entry
	var secrets []secret.Key
	for i, k := range accessKeys {
		entries = append(entries, keyring.Entry{ID: i + 1, Secret: secret.New(k)})
		secrets = append(secrets, secret.New(k))
	}
	pool, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	var toks []secret.Key
	for _, tok := range tokens {
		toks = append(toks, secret.New(tok))
	}
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}), relay.Options{Transport: up})
	logs := &strings.Builder{}
	return New(Options{
		Relay: rl, Strategy: keyring.RoundRobin{}, BaseURL: base, MaxBodyBytes: 1 << 20, Tokens: toks,
		Logger: console.New(logs, format, level), Redactor: secret.NewRedactor(secrets),
	}), logs
}

// TestAccessLine: every passthrough request writes one console line at
// info when it is over, naming method, path, model, status, key, attempts,
// time and tokens.
func TestAccessLine(t *testing.T) {
	const chat = `{"model":"openai/gpt-4o-mini","messages":[]}`
	for _, tc := range []struct {
		name, method, path, body string
		fail                     []int  // the upstream's first answers
		auth                     bool   // the gateway wants a token, none is sent
		want                     string // regexp of the line, its time as TIME
	}{
		{name: "chat", method: "POST", path: "/v1/chat/completions", body: chat,
			want: `↪️ POST /v1/chat/completions openai/gpt-4o-mini → 200 in TIME \(key #1, 21 tokens\)`},
		{name: "api prefix", method: "POST", path: "/api/v1/chat/completions", body: chat,
			want: `↪️ POST /api/v1/chat/completions openai/gpt-4o-mini → 200 in TIME \(key #1, 21 tokens\)`},
		{name: "stream, tokens from its last event", method: "POST", path: "/v1/chat/completions",
			body: `{"model":"a/b","stream":true}`, want: `↪️ POST /v1/chat/completions a/b → 200 in TIME \(key #1, 7 tokens\)`},
		{name: "no model, query left out", method: "GET", path: "/v1/models?secret=1",
			want: `↪️ GET /v1/models → 200 in TIME \(key #1, 21 tokens\)`},
		{name: "retried", method: "POST", path: "/v1/chat/completions", body: chat,
			fail: []int{429},
			want: `↪️ POST /v1/chat/completions openai/gpt-4o-mini → 200 in TIME \(key #[23], 2 attempts, 21 tokens\)`},
		{name: "upstream error, not the key's", method: "POST", path: "/v1/chat/completions", body: chat,
			fail: []int{500},
			want: `↪️ POST /v1/chat/completions openai/gpt-4o-mini → 500 in TIME \(key #1\)`},
		{name: "turned away", method: "POST", path: "/v1/chat/completions", body: chat, auth: true,
			want: `↪️ POST /v1/chat/completions → 401 in TIME \(no key\)`},
		{name: "refused path", method: "GET", path: "/v1/a/../keys",
			want: `↪️ GET /v1/a/../keys → 400 in TIME \(no key\)`},
		{name: "control characters escaped", method: "POST", path: "/v1/chat/completions", body: `{"model":"a\nb\u001b[31m"}`,
			want: `↪️ POST /v1/chat/completions a\\nb\\x1b\[31m → 200 in TIME \(key #1, 21 tokens\)`},
		{name: "pool key masked", method: "POST", path: "/v1/x/" + accessKeys[1], body: `{"model":"` + accessKeys[2] + `"}`,
			want: `↪️ POST /v1/x/sk-or-v1-…0002 sk-or-v1-…0003 → 200 in TIME \(key #1, 21 tokens\)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tokens []string
			if tc.auth {
				tokens = []string{"gw-token-0001"}
			}
			s, logs := newAccessServer(t, &accessUpstream{fail: tc.fail}, "text", slog.LevelInfo, tokens...)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, localRequest(tc.method, tc.path, tc.body))
			var access []string
			for _, l := range strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n") {
				if strings.HasPrefix(l, "↪️ ") {
					access = append(access, l)
				}
			}
			re := regexp.MustCompile("^" + strings.ReplaceAll(tc.want, "TIME", `\d+\.\d\ds`) + "$")
			if len(access) != 1 || !re.MatchString(access[0]) {
				t.Fatalf("status %d; console:\n%s\nwant one access line matching %s", w.Code, logs, re)
			}
			for _, k := range accessKeys {
				if strings.Contains(logs.String(), k) {
					t.Fatalf("a key shows unmasked in:\n%s", logs)
				}
			}
		})
	}
}

// TestAccessLineJSON: with LOG_FORMAT=json the access line is one object
// with the line's facts as fields.
func TestAccessLineJSON(t *testing.T) {
	s, logs := newAccessServer(t, &accessUpstream{fail: []int{429}}, "json", slog.LevelInfo)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, localRequest("POST", "/api/v1/chat/completions", `{"model":"a/b"}`))
	var got map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		if ev["event"] == "access" {
			if got != nil {
				t.Fatalf("two access lines:\n%s", logs)
			}
			got = ev
		}
	}
	if got == nil {
		t.Fatalf("no access line in:\n%s", logs)
	}
	want := map[string]any{"level": "INFO", "method": "POST", "path": "/api/v1/chat/completions", "model": "a/b",
		"status": 200.0, "attempts": 2.0, "tokens": 21.0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v (line %v)", k, got[k], v, got)
		}
	}
	if id, _ := got["key_id"].(float64); id != 2 && id != 3 {
		t.Errorf("key_id %#v, want the retry's key", got["key_id"])
	}
	if _, ok := got["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms %#v, want a number", got["duration_ms"])
	}
	if msg, _ := got["msg"].(string); !strings.HasPrefix(msg, "↪️ POST /api/v1/chat/completions a/b → 200 in ") {
		t.Errorf("msg %q, want the console line", msg)
	}
}

// TestAccessLineSilencedAboveInfo: LOG_LEVEL=warn writes no access line.
func TestAccessLineSilencedAboveInfo(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		s, logs := newAccessServer(t, &accessUpstream{}, format, slog.LevelWarn)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, localRequest("POST", "/v1/chat/completions", `{"model":"a/b"}`))
		if w.Code != http.StatusOK || logs.Len() != 0 {
			t.Errorf("%s: status %d, logged %q", format, w.Code, logs)
		}
	}
}

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"aé", 2, "a…"},
		{"", 0, ""},
	} {
		if got := shorten(tc.in, tc.n); got != tc.want {
			t.Errorf("shorten(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestAPIV1CallLikeV1: /api/v1 prepares the same call as /v1: an inference
// path is not blind under either prefix, a made-up one is under both.
func TestAPIV1CallLikeV1(t *testing.T) {
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	p := newPassthrough(nil, keyring.RoundRobin{}, base, bodyLimits{max: 1 << 20}, slog.New(slog.DiscardHandler), nil)
	for _, tc := range []struct {
		rest  string
		blind bool
	}{{"/chat/completions", false}, {"/embeddings", false}, {"/models", true}, {"/made/up", true}} {
		for _, prefix := range []string{"/v1", "/api/v1"} {
			ctx := p.prepare(httptest.NewRecorder(), httptest.NewRequest("POST", prefix+tc.rest, strings.NewReader(`{"model":"a/b:free"}`)), new(exchangeCtx))
			if ctx == nil {
				t.Fatalf("%s%s refused", prefix, tc.rest)
			}
			// A free model's call only where it is an inference call.
			if c := ctx.ex.call; c.Blind != tc.blind || c.Model != "a/b:free" || c.Free == tc.blind {
				t.Errorf("%s%s: blind %v, model %q, free %v; want blind %v, free %v", prefix, tc.rest, c.Blind, c.Model, c.Free, tc.blind, !tc.blind)
			}
		}
	}
}

// localRequest is a request to an open gateway by a client on this
// machine: Host localhost, as an open gateway wants it.
func localRequest(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = "localhost"
	return r
}
