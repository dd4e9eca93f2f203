package simulator

import (
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestRequestLevelFaults checks the directive-made and prompt-made refusals
// of OpenRouter: their status, headers and bodies, and that they cost
// nothing and use no free quota.
func TestRequestLevelFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, model, prompt, fault string
		status                     int
		header                     map[string]string // "" means absent
		want                       shape
	}{
		{"provider 429", "openai/gpt-4o", "hi", "provider429,after=7", 429,
			map[string]string{"Retry-After": "7", "X-RateLimit-Limit": "", "X-RateLimit-Reset": ""},
			shape{"error.code": "=429", "error.message": `="openai/gpt-4o is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations"`,
				"error.metadata.provider_name": `="OpenAI"`, "error.metadata.retry_after_seconds": "=7",
				"error.metadata.headers": `={"Retry-After":"7"}`, "user_id": `="user_r"`}},
		{"free model provider 429", "qwen/qwen3-coder:free", "hi", "provider429", 429,
			map[string]string{"Retry-After": "1"},
			shape{"error.message": "string", "error.metadata.provider_name": `="Venice"`}},
		{"in-flight budget", "openai/gpt-4o", "hi", "inflight,after=3", 402,
			map[string]string{"Retry-After": "3"},
			shape{"error.code": "=402", "error.metadata.limit_source": `="openrouter_in_flight_budget"`,
				"error.metadata.reason": `="in_flight_budget_exhausted"`, "error.metadata.remedy_hint": "string", "user_id": `="user_r"`}},
		{"moderation by directive", "openai/gpt-4o", "hi", "moderation", 403, nil,
			shape{"error.code": "=403", "error.metadata.reasons": `=["harassment"]`, "error.metadata.flagged_input": "string",
				"error.metadata.provider_name": `="OpenAI"`, "error.metadata.model_slug": `="openai/gpt-4o"`}},
		{"moderation by prompt", "openai/gpt-4o", "please sim:flagged this", "", 403, nil,
			shape{"error.metadata.flagged_input": `="please sim:flagged this"`}},
		{"guardrail", "openai/gpt-4o", "hi", "guardrail", 403, nil,
			shape{"error.code": "=403", "error.message": "string", "error.metadata.reason": `="guardrail_blocked"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startSim(t, Options{Now: func() time.Time { return fixedNow }, Accounts: []Account{{ID: "user_r", Balance: 1, FreeUsedToday: 49,
				Keys: []KeySpec{{Secret: "k"}}}}})
			for _, stream := range []bool{false, true} {
				r := h.chat("k", tt.model, tt.prompt, stream, map[string]string{HeaderFault: tt.fault})
				if r.status != tt.status {
					t.Fatalf("stream %v: status %d, want %d: %s", stream, r.status, tt.status, r.body)
				}
				for k, v := range tt.header {
					if got := r.header.Get(k); got != v {
						t.Errorf("header %s %q, want %q", k, got, v)
					}
				}
				checkShape(t, tt.name, r.body, tt.want)
			}
			if r := h.chat("k", "qwen/qwen3-coder:free", "hi", false, nil); r.status != 200 || h.s.Spent("k") != 0 {
				t.Errorf("after the refusals: the last free request gets %d, spent %v", r.status, h.s.Spent("k"))
			}
		})
	}
}

// TestStreamErrors checks the stream shapes OpenRouter can send after a
// 200: an error as the first and only event, an error after some content,
// and a stream that ends before any data.
func TestStreamErrors(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	tests := []struct {
		fault   string
		content int    // content chunks before the error
		code    int    // the error event's code; 0: no error event
		body    string // the exact body, when set
	}{
		{"inband=429", 0, 429, ""},
		{"errorafter=2,chunks=4", 2, 502, ""},
		{"inband=503,errorafter=9,chunks=3", 3, 503, ""},
		{"nodata", 0, 0, processing},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			r := h.chat(keyOK, "openai/gpt-4o", "hi", true, map[string]string{HeaderFault: tt.fault})
			if r.status != 200 || !strings.HasPrefix(string(r.body), processing) {
				t.Fatalf("status %d: %q", r.status, r.body)
			}
			if tt.body != "" {
				if string(r.body) != tt.body {
					t.Errorf("body %q, want %q", r.body, tt.body)
				}
				return
			}
			evs := parseEvents(t, r.body)
			if len(evs) != tt.content+1 {
				t.Fatalf("%d events, want %d content and an error: %q", len(evs), tt.content, evs)
			}
			for _, ev := range evs[:tt.content] {
				if strings.Contains(ev, `"error"`) {
					t.Errorf("content event with an error: %s", ev)
				}
			}
			var last struct {
				Error struct {
					Code int `json:"code"`
				} `json:"error"`
				Choices []struct {
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
			}
			if err := json.Unmarshal([]byte(evs[tt.content]), &last); err != nil || last.Error.Code != tt.code ||
				len(last.Choices) != 1 || last.Choices[0].FinishReason != "error" {
				t.Errorf("error event %s (%v)", evs[tt.content], err)
			}
		})
	}
	if ks := h.s.Stats().Keys[keyOK]; ks.ByStatus[200] != int64(len(tests)) {
		t.Errorf("stats %+v", ks)
	}
}

// TestHold checks that hold= sends only processing comments, one every
// holdTick, before the first data event, on the bubble's fake clock.
func TestHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(testOptions())
		defer s.Close()
		c := serveInBubble(t, s, keyOK, "m", true, map[string]string{HeaderFault: "hold=1s"})
		comments := func() (n int, data bool) {
			body, _ := c.w.written()
			return strings.Count(body, processing), strings.Contains(body, "data: ")
		}
		for _, step := range []struct {
			at       time.Duration
			comments int
		}{{0, 1}, {holdTick - time.Nanosecond, 1}, {holdTick, 2}, {3 * holdTick, 4}, {4*holdTick - time.Nanosecond, 4}} {
			c.at(step.at)
			if n, data := comments(); n != step.comments || data {
				t.Fatalf("at %v: %d comments (data %v), want %d and no data", step.at, n, data, step.comments)
			}
		}
		c.at(4 * holdTick)
		resp, body := c.result(t)
		if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Index(body, "data: ") < 4*len(processing) {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
	})
}

// FuzzRequestInputs feeds the embeddings and Responses API input parsers:
// they either refuse or return at least one input.
func FuzzRequestInputs(f *testing.F) {
	for _, s := range []string{`"hi"`, `["a","b"]`, `[[1,2],[3]]`, `[1,2,3]`, `[]`, `null`, `{}`, `[{"role":"user","content":"x"}]`,
		`[{"role":"user","content":[{"type":"input_text","text":"x"}]}]`, `[{"content":5}]`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := embeddingRequest{Input: b}
		if ins, err := e.inputs(); err == nil && len(ins) == 0 {
			t.Fatalf("embeddings input %q: no input and no error", b)
		}
		r := responsesRequest{Input: b}
		if msgs, err := r.messages(); err == nil && len(msgs) == 0 {
			t.Fatalf("responses input %q: no message and no error", b)
		}
	})
}
