package simulator

import (
	"github.com/keygate/keygate/secret"

	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestCompletion(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 40)
	tests := []struct {
		name, model, prompt string
		content             string
		completionTokens    int
	}{
		{"plain", "openai/gpt-4o", "Say hi", `Hello from openai/gpt-4o: you said "Say hi"`, 7},
		{"quotes and unicode", "x/y", "say \"héllo\" 🙂\n", `Hello from x/y: you said "say "héllo" 🙂"`, 8},
		{"long prompt cut", "m", long, `Hello from m: you said "` + strings.TrimSpace(long[:80]) + `..."`, 5 + 16},
		{"sim model without directives", "sim/", "hi", `Hello from sim/: you said "hi"`, 6},
	}
	for _, mk := range []struct {
		name  string
		mount func(*testing.T, Options) *harness
	}{{"Start", startSim}, {"New", mountSim}} {
		h := mk.mount(t, testOptions())
		for _, tt := range tests {
			t.Run(mk.name+"/"+tt.name, func(t *testing.T) {
				r := h.chat(keyOK, tt.model, tt.prompt, false, nil)
				if r.status != http.StatusOK || r.err != nil {
					t.Fatalf("status %d, err %v, body %s", r.status, r.err, r.body)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				if got := r.header.Get(HeaderBodySHA256); got != sha(r.body) {
					t.Errorf("body SHA-256 header %q, body's %q", got, sha(r.body))
				}
				var c oaCompletion
				if err := json.Unmarshal(r.body, &c); err != nil {
					t.Fatalf("decode %s: %v", r.body, err)
				}
				if !regexp.MustCompile(`^gen-\d+-[0-9A-Za-z]{20}$`).MatchString(c.ID) {
					t.Errorf("id %q", c.ID)
				}
				if c.Object != "chat.completion" || c.Created != fixedNow.Unix() || c.Model != tt.model {
					t.Errorf("object %q created %d model %q", c.Object, c.Created, c.Model)
				}
				if len(c.Choices) != 1 {
					t.Fatalf("choices: %s", r.body)
				}
				ch := c.Choices[0]
				if ch.Index != 0 || ch.Message.Role != "assistant" || ch.FinishReason == nil || *ch.FinishReason != "stop" {
					t.Errorf("choice: %s", r.body)
				}
				if ch.Message.Content != tt.content {
					t.Errorf("content %q, want %q", ch.Message.Content, tt.content)
				}
				u := c.Usage
				wantPrompt := 2 + len(strings.Fields(tt.prompt))
				if u == nil || u.PromptTokens != wantPrompt || u.CompletionTokens != tt.completionTokens ||
					u.TotalTokens != u.PromptTokens+u.CompletionTokens {
					t.Errorf("usage %+v, want prompt %d completion %d", u, wantPrompt, tt.completionTokens)
				}
			})
		}
	}
}

func TestCompletionIDsDiffer(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	seen := map[string]bool{}
	for range 20 {
		var c oaCompletion
		if err := json.Unmarshal(h.chat(keyOK, "m", "hi", false, nil).body, &c); err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("id %s repeated", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestContentParts(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	body := `{"model":"m","messages":[{"role":"assistant","content":null},` +
		`{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"here"}]}]}`
	r := h.do(http.MethodPost, "/chat/completions", keyOK, body, nil)
	var c oaCompletion
	if err := json.Unmarshal(r.body, &c); err != nil || r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := c.Choices[0].Message.Content; got != `Hello from m: you said "look here"` {
		t.Errorf("content %q", got)
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	tests := []struct {
		name, method, path, key, body string
		hdr                           map[string]string
		status                        int
		msg                           string // substring of the error message
	}{
		{"no key", "POST", "/chat/completions", "", chatBody("m", "hi", false), nil, 401, "No auth credentials"},
		{"unknown key", "POST", "/chat/completions", "nope", chatBody("m", "hi", false), nil, 401, "User not found"},
		{"basic auth", "POST", "/chat/completions", "", chatBody("m", "hi", false),
			map[string]string{"Authorization": "Basic " + keyOK}, 401, "No auth credentials"},
		{"unknown key on models", "GET", "/models", "nope", "", nil, 401, "User not found"},
		{"unknown key on echo", "GET", "/echo", "nope", "", nil, 401, "User not found"},
		{"bad JSON", "POST", "/chat/completions", keyOK, `{"model":`, nil, 400, "invalid JSON"},
		{"bad content", "POST", "/chat/completions", keyOK, `{"model":"m","messages":[{"role":"user","content":5}]}`, nil, 400, "content"},
		{"no model", "POST", "/chat/completions", keyOK, `{"messages":[]}`, nil, 400, "model is required"},
		{"x/broken", "POST", "/chat/completions", keyOK, chatBody("x/broken", "hi", false), nil, 404, "model not found"},
		{"x/missing", "POST", "/chat/completions", keyOK, chatBody("x/missing-model", "hi", true), nil, 404, "model not found"},
		{"unknown directive in model", "POST", "/chat/completions", keyOK, chatBody("sim/statsu=500", "hi", false), nil, 400, "unknown directive"},
		{"unknown directive in header", "POST", "/chat/completions", keyOK, chatBody("m", "hi", false),
			map[string]string{HeaderFault: "delay=1ms,explode"}, 400, `unknown directive: "explode"`},
		{"bad directive value", "GET", "/models", keyOK, "", map[string]string{HeaderFault: "status=abc"}, 400, "bad directive value"},
		{"GET completions", "GET", "/chat/completions", keyOK, "", nil, 405, "method not allowed"},
		{"POST models", "POST", "/models", keyOK, "{}", nil, 405, "method not allowed"},
		{"unknown endpoint", "GET", "/nothing-here", keyOK, "", nil, 404, "no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.key, tt.body, tt.hdr)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			msg, code := apiError(t, r.body)
			if code != tt.status || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q code %d, want %q code %d", msg, code, tt.msg, tt.status)
			}
			if got := r.header.Get(HeaderBodySHA256); got != sha(r.body) {
				t.Errorf("SHA-256 header %q, body's %q", got, sha(r.body))
			}
		})
	}
	t.Run("exact not-found body", func(t *testing.T) {
		r := h.chat(keyOK, "x/broken", "hi", false, nil)
		if string(r.body) != `{"error":{"message":"model not found","code":404}}` {
			t.Errorf("body %s", r.body)
		}
	})
	t.Run("never echoes the key", func(t *testing.T) {
		for _, key := range []string{keyOK, keyRevoked, "nope"} {
			r := h.chat(key, "x/broken", key, false, nil)
			for name, vals := range r.header {
				if strings.Contains(name+strings.Join(vals, ","), key[len(key)-4:]) {
					t.Errorf("header %s: %v shows the key", name, vals)
				}
			}
			if strings.Contains(string(r.body), key) {
				t.Errorf("body %s shows the key", r.body)
			}
		}
	})
}

func TestModels(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	r := h.do("GET", "/models", keyOK, "", nil)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if list.Object != "list" || len(list.Data) < 3 || list.Data[0].ID != "openai/gpt-4o" || list.Data[0].Object != "model" {
		t.Errorf("list %+v", list)
	}
	if r.header.Get(HeaderBodySHA256) != sha(r.body) {
		t.Error("SHA-256 header does not match")
	}
}

func TestEcho(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	tests := []struct{ method, path, body string }{
		{"GET", "/echo", ""},
		{"POST", "/echo/some/path?x=1&y=%20", `{"any":"thing"}`},
		{"DELETE", "/echo/x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			r := h.do(tt.method, tt.path, keyOK, tt.body, map[string]string{"X-Test": "yes", "Connection": "keep-alive"})
			var e echoReply
			if err := json.Unmarshal(r.body, &e); err != nil || r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			path, query, _ := strings.Cut(tt.path, "?")
			if e.Method != tt.method || e.Path != PathPrefix+path || e.RawQuery != query ||
				e.RequestURI != PathPrefix+tt.path || e.Body != tt.body || e.BodyLength != len(tt.body) {
				t.Errorf("echo %+v", e)
			}
			// The key shows masked only, as everywhere keygate's demo runs.
			if e.Headers.Get("X-Test") != "yes" || e.Headers.Get("Authorization") != "Bearer "+secret.Mask(keyOK) || strings.Contains(string(r.body), keyOK) {
				t.Errorf("headers %v", e.Headers)
			}
			if !strings.HasPrefix(e.Host, "127.0.0.1:") {
				t.Errorf("host %q", e.Host)
			}
			if r.header.Get(HeaderBodySHA256) != sha(r.body) {
				t.Error("SHA-256 header does not match")
			}
		})
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	opts.Keys["limited"] = Profile{RateLimitEvery: 2, RateLimitBurst: 1}
	h := startSim(t, opts)
	h.chat(keyOK, "m", "hi", false, nil)
	h.chat(keyOK, "m", "hi", true, nil)
	h.chat(keyOK, "x/broken", "hi", false, nil)
	h.chat(keyRevoked, "m", "hi", false, nil)
	h.chat("nope", "m", "hi", false, nil)
	h.chat("", "m", "hi", false, nil)
	for range 3 {
		h.chat("limited", "m", "hi", false, nil)
	}
	h.do("GET", "/nowhere", keyOK, "", nil)

	st := h.s.Stats()
	want := map[string]KeyStats{
		keyOK:      {Requests: 3, ByStatus: map[int]int64{200: 2, 404: 1}},
		keyRevoked: {Requests: 1, ByStatus: map[int]int64{401: 1}},
		keyBroke:   {Requests: 0, ByStatus: map[int]int64{}},
		"limited":  {Requests: 3, ByStatus: map[int]int64{429: 2, 200: 1}},
	}
	for k, w := range want {
		if got := st.Keys[k]; !sameKeyStats(got, w) {
			t.Errorf("key %s: %+v, want %+v", k, got, w)
		}
	}
	if !sameKeyStats(st.Unknown, KeyStats{Requests: 2, ByStatus: map[int]int64{401: 2}}) {
		t.Errorf("unknown %+v", st.Unknown)
	}
	if st.Total != 10 || st.InFlight != 0 || len(st.Keys) != 5 {
		t.Errorf("total %d in flight %d keys %d", st.Total, st.InFlight, len(st.Keys))
	}

	h.s.Reset()
	st = h.s.Stats()
	if st.Total != 0 || st.Keys[keyOK].Requests != 0 || len(st.Keys[keyOK].ByStatus) != 0 || st.Unknown.Requests != 0 {
		t.Errorf("after Reset: %+v", st)
	}
	if r := h.chat("limited", "m", "hi", false, nil); r.status != 429 {
		t.Errorf("after Reset the rate-limit window starts again: got %d", r.status)
	}
}

func sameKeyStats(a, b KeyStats) bool {
	if a.Requests != b.Requests || len(a.ByStatus) != len(b.ByStatus) {
		return false
	}
	for k, v := range b.ByStatus {
		if a.ByStatus[k] != v {
			return false
		}
	}
	return true
}

func TestLatency(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	opts.Latency = 40 * time.Millisecond
	opts.LatencySpread = 30 * time.Millisecond
	// On a synctest bubble's fake clock: a reply is held for exactly its
	// model's latency, and an error decided before the model is read for
	// a latency in [Latency, Latency+LatencySpread).
	synctest.Test(t, func(t *testing.T) {
		s := New(opts)
		defer s.Close()
		for _, m := range []string{"a", "b", "openai/gpt-4o"} {
			d := s.latency(m)
			if d < opts.Latency || d >= opts.Latency+opts.LatencySpread || d != s.latency(m) {
				t.Errorf("latency(%q) = %v", m, d)
			}
		}
		c := serveInBubble(t, s, keyOK, "a", false, nil)
		c.heldBetween(t, s.latency("a"), s.latency("a"))
		if resp, body := c.result(t); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		c = serveInBubble(t, s, keyRevoked, "a", false, nil)
		c.heldBetween(t, opts.Latency, opts.Latency+opts.LatencySpread-time.Nanosecond)
		if resp, body := c.result(t); resp.StatusCode != 401 {
			t.Fatalf("revoked key: status %d: %s", resp.StatusCode, body)
		}
	})
}

// TestCloseLeavesNoGoroutines closes a server in the middle of a slow
// reply, a stalled stream and an idle keep-alive connection, and checks
// that Close returns and no goroutine of the server is left.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	s, err := Start(testOptions())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	h := &harness{t: t, s: s, base: s.BaseURL(), client: &http.Client{Transport: tr}}
	defer tr.CloseIdleConnections()

	if r := h.chat(keyOK, "m", "hi", false, nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	stream := h.request(context.Background(), "POST", "/chat/completions", keyOK,
		chatBody("sim/chunkdelay=1h", "hi", true), nil)
	defer stream.Body.Close()
	slow := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", h.base+"/chat/completions", strings.NewReader(chatBody("sim/delay=1h", "hi", false)))
		req.Header.Set("Authorization", "Bearer "+keyOK)
		resp, err := h.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	eventually(t, "both slow requests in flight", func() bool { return s.Stats().InFlight == 2 })

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-slow; err == nil {
		t.Error("the delayed request should fail when the server closes")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	eventually(t, "no server goroutine left", func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "net/http.(*conn).serve") || strings.Contains(g, "net/http.(*Server).Serve") ||
				strings.Contains(g, "simulator.(*Server)") || strings.Contains(g, "simulator.(*call)") {
				return false
			}
		}
		return true
	})
}
