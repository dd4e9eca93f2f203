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
