package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// tokRec records the token counts the tap reports.
type tokRec struct{ prompt, completion int }

func (r *tokRec) Tokens(_ int, _ string, p, c int) { r.prompt, r.completion = p, c }

// TestMessagesStreamTokens: a Messages API stream tells its input tokens in
// message_start's usage and only the output tokens in the final
// message_delta's; the tap read the last alone, and counted no prompt.
func TestMessagesStreamTokens(t *testing.T) {
	stream := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader(stream))}
	rec := &tokRec{}
	tapUsage(resp, rec, 1, "m")
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if rec.prompt != 25 || rec.completion != 15 {
		t.Errorf("tokens %d prompt, %d completion; want 25, 15", rec.prompt, rec.completion)
	}
}
