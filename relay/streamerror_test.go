package relay

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/sse"
)

func TestStreamError(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		data   string
		ok     bool
		status int
		scope  fault.Scope
	}{
		{"chat content", `{"choices":[{"delta":{"content":"an error, said the model"}}]}`, false, 0, 0},
		{"chat error object", `{"error":{"code":401,"message":"User not found."},"choices":[{"finish_reason":"error"}]}`, true, 401, fault.Key},
		{"chat finish_reason error alone", `{"error":null,"choices":[{"delta":{"content":""},"finish_reason":"error"}]}`, true, 502, fault.Upstream},
		{"responses error event", `{"type":"error","sequence_number":3,"code":"401","message":"User not found.","param":null}`, true, 401, fault.Key},
		{"responses error event, OpenAI's code", `{"type":"error","code":"insufficient_quota","message":"You exceeded your quota"}`, true, 502, fault.Upstream},
		{"responses failed", `{"type":"response.failed","response":{"status":"failed","error":{"code":"429","message":"Rate limit exceeded: limit_rpm"}}}`, true, 429, fault.Key},
		{"responses failed without an error", `{"type":"response.failed","response":{"status":"failed","error":null}}`, true, 502, fault.Upstream},
		{"responses delta quoting an error", `{"type":"response.output_text.delta","delta":"\"error\": 1"}`, false, 0, 0},
		{"messages error event", `{"type":"error","error":{"type":"authentication_error","code":401,"message":"User not found."}}`, true, 401, fault.Key},
		{"messages error event without a code", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, true, 502, fault.Upstream},
		{"responses completed", `{"type":"response.completed","response":{"status":"completed","error":null}}`, false, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, body, ok := streamError(http.Header{}, []byte(tt.data), now)
			if ok != tt.ok {
				t.Fatalf("error %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if v.Status != tt.status || v.Scope != tt.scope {
				t.Errorf("verdict %d %v, want %d %v", v.Status, v.Scope, tt.status, tt.scope)
			}
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
				t.Errorf("answer %s is no JSON error object: %v", body, err)
			}
		})
	}
}

func TestOpening(t *testing.T) {
	for _, tt := range []struct {
		name, data string
		want       bool
	}{
		{"response.created", `{"type":"response.created","response":{"status":"in_progress"}}`, true},
		{"response.in_progress", `{"type":"response.in_progress"}`, true},
		{"response.content_part.added", `{"type":"response.content_part.added","part":{"type":"output_text"}}`, true},
		{"response.output_text.delta", `{"type":"response.output_text.delta","delta":"{\"type\":\"response.created\"}"}`, false},
		{"error", `{"type":"error","code":"401"}`, false},
		{"", `{"choices":[{"delta":{"content":"x"}}]}`, false},
		{"message_start", `{"type":"message_start","message":{"id":"msg_1","role":"assistant","content":[]}}`, true},
		{"content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`, true},
		{"ping", `{"type":"ping"}`, true},
		{"content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`, false},
	} {
		named := sse.Event{Name: []byte(tt.name), Data: []byte(tt.data)}
		unnamed := sse.Event{Data: []byte(tt.data)}
		if got := opening(named); got != tt.want {
			t.Errorf("opening(event: %s) = %v, want %v", tt.name, got, tt.want)
		}
		if got := opening(unnamed); got != tt.want {
			t.Errorf("opening(data %s) = %v, want %v", tt.data, got, tt.want)
		}
	}
}

// FuzzStreamError: any event's data is judged without a panic, and an
// error comes with a JSON error object for the client.
func FuzzStreamError(f *testing.F) {
	for _, s := range []string{`{"error":{"code":401}}`, `{"type":"error","code":"429"}`,
		`{"type":"response.failed","response":{"error":{"code":"402","message":"can only afford 10"}}}`,
		`{"choices":[{"finish_reason":"error"}],"error":null}`, `{"type":"response.failed","response":{"error":"x"}}`} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data string) {
		_, body, ok := streamError(http.Header{}, []byte(data), now)
		if !ok {
			return
		}
		var e struct {
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
			t.Fatalf("%q: answer %s is no JSON error object: %v", data, body, err)
		}
	})
}

// TestRoleOnly: a chat stream's first chunk that only names the
// assistant's role opens the stream (the hold looks past it); one that
// says anything more is its first event.
func TestRoleOnly(t *testing.T) {
	for _, tt := range []struct {
		data string
		want bool
	}{
		{`{"id":"gen-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}`, true},
		{`{"choices":[{"index":0,"delta":{"role":"assistant"}}]}`, true},
		{`{"choices":[{"delta":{"content":"","role":"assistant","refusal":null,"reasoning":null,"reasoning_details":[]}}],"usage":null}`, true},
		{`{"choices":[{"delta":{"role":"assistant","content":"Hi"}}]}`, false},
		{`{"choices":[{"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}`, false},
		{`{"choices":[{"delta":{"role":"assistant","content":""},"finish_reason":"error"}],"error":{"code":502}}`, false},
		{`{"choices":[{"delta":{"role":"assistant","tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}`, false},
		{`{"choices":[{"delta":{"role":"assistant","reasoning":"thinking"}}]}`, false},
		{`{"choices":[{"delta":{"role":"assistant","content":""}}],"usage":{"prompt_tokens":3}}`, false},
		{`{"choices":[{"delta":{"role":"assistant"}},{"delta":{"role":"assistant"}}]}`, false},
		{`{"choices":[{"delta":{"role":"user"}}],"x":"\"role\":\"assistant\""}`, false},
		{`{"choices":[]}`, false},
	} {
		if got := roleOnly([]byte(tt.data)); got != tt.want {
			t.Errorf("roleOnly(%s) = %v, want %v", tt.data, got, tt.want)
		}
		if got := opening(sse.Event{Data: []byte(tt.data)}); got != tt.want {
			t.Errorf("opening(data %s) = %v, want %v", tt.data, got, tt.want)
		}
	}
}

// FuzzRoleOnly: an event roleOnly holds past is a chat chunk that says no
// more than the role: never an error event, never one carrying content.
func FuzzRoleOnly(f *testing.F) {
	for _, s := range []string{`{"choices":[{"delta":{"role":"assistant","content":""}}]}`,
		`{"choices":[{"delta":{"role":"assistant","content":"x"}}]}`, `{"error":{"code":401},"choices":[{"delta":{"role":"assistant"}}]}`} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data string) {
		if !roleOnly([]byte(data)) {
			return
		}
		if _, _, isErr := streamError(http.Header{}, []byte(data), now); isErr {
			t.Fatalf("%q: held past as role-only, yet an error event", data)
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(data), &c) != nil || len(c.Choices) != 1 || c.Choices[0].Delta.Content != "" {
			t.Fatalf("%q: held past as role-only, yet it says more", data)
		}
	})
}
