package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// Responses API streams, as OpenAI and OpenRouter send them: opening
// events first, then output or an error event.
const (
	rspOpening = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n\n" +
		"event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\"}}\n\n" +
		"event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"type\":\"message\",\"content\":[]}}\n\n"
	rspDelta     = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"delta\":\"Hello\"}\n\n"
	rspCompleted = "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\"}}\n\n"
	rspRevoked   = "event: error\ndata: {\"type\":\"error\",\"sequence_number\":3,\"code\":\"401\",\"message\":\"User not found.\",\"param\":null}\n\n"
	rspFailed    = "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"code\":\"429\",\"message\":\"Rate limit exceeded: limit_rpm\"}}}\n\n"
)

// TestResponsesStreamFaults: on /v1/responses a key's fault after the
// opening events is the key's, as on chat completions: before any output
// the call goes on to another key (the client gets one clean answer), and
// after output the key rests. Both used to be passed on as a 200 stream
// ending in an error event, the key left in rotation.
func TestResponsesStreamFaults(t *testing.T) {
	for _, tt := range []struct {
		name      string
		first     string // key 1's stream
		status    int
		body      string // what the client's answer holds
		key1State string
	}{
		{"an error event before output goes on to another key", rspOpening + rspRevoked, 200, `"delta":"Hello"`, "open"},
		{"response.failed before output goes on to another key", rspOpening + rspFailed, 200, `"delta":"Hello"`, "open"},
		{"an error event after output rests the key", rspOpening + rspDelta + rspRevoked, 200, `"code":"401"`, "open"},
		{"a stream without error", rspOpening + rspDelta + rspCompleted, 200, `response.completed`, "closed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			keys := testKeys(2)
			up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.WriteHeader(http.StatusOK)
				if s.Key == keys[0] {
					ptFlushed(w, tt.first)
					return
				}
				ptFlushed(w, rspOpening+rspDelta+rspCompleted)
			})
			g := hdStart(t, up.URL, keys, newClock(), "KEY_ROTATION=round-robin")
			res := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/responses", `{"model":"openai/gpt-4o-mini","stream":true,"input":"hi"}`))
			if res.Err != nil || res.Status != tt.status || !strings.Contains(string(res.Body), tt.body) {
				t.Fatalf("%d %v %s, want %d holding %s", res.Status, res.Err, res.Body, tt.status, tt.body)
			}
			if got := hdKeyStates(t, g)[0]; got != tt.key1State {
				t.Fatalf("key 1 %s after its stream, want %s", got, tt.key1State)
			}
		})
	}
}
