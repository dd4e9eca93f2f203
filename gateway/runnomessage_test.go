package gateway

import (
	"strings"
	"testing"
)

// TestRunNoMessageSaysWhy: an answer without text is its model's error,
// worded by what came in its place: a refusal (OpenAI's structured
// outputs send one instead of content) quoted, tool calls named, in the
// plain form and the streamed one. Each was "upstream returned no
// message", the refusal's text lost.
func TestRunNoMessageSaysWhy(t *testing.T) {
	const (
		refused  = "the model refused: I can't help with that."
		tools    = "upstream returned no message: the model called tools, which /run does not show"
		refusal  = `{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":null,"refusal":"I can't help with that."}}]}`
		toolCall = `{"choices":[{"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}`
		sseRef   = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"refusal\":\"I can't \"}}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{\"refusal\":\"help with that.\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
		sseTool = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
	)
	for _, tc := range []struct {
		name, ctype, body string
		stream            bool
		err               string
	}{
		{"plain refusal", "application/json", refusal, false, refused},
		{"plain tool call", "application/json", toolCall, false, tools},
		{"plain, no choices", "application/json", `{"choices":[]}`, false, "upstream returned no message"},
		{"plain, null tool calls", "application/json", `{"choices":[{"message":{"content":null,"tool_calls":null}}]}`, false, "upstream returned no message"},
		{"plain refusal beside empty content", "application/json", strings.Replace(refusal, `"content":null`, `"content":""`, 1), false, refused},
		{"plain tool call beside empty content", "application/json", strings.Replace(toolCall, `"content":null`, `"content":""`, 1), false, tools},
		{"streamed refusal", "text/event-stream", sseRef, true, refused},
		{"streamed tool call after an empty content", "text/event-stream", "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" + sseTool, true, tools},
		{"streamed refusal after an empty content", "text/event-stream", "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}}]}\n\n" + sseRef, true, refused},
		{"streamed tool call", "text/event-stream", sseTool, true, tools},
		{"streamed, answered whole with a refusal", "application/json", refusal, true, refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newChargeServer(t, chargeTransport{ctype: tc.ctype, body: tc.body}, &fakeSpender{})
			_, out := runOneModel(t, s, tc.stream)
			if res := out.Responses[0]; res.Status != "error" || res.Error != tc.err || res.Output != "" {
				t.Errorf("entry %+v; want an error %q", res, tc.err)
			}
		})
	}
}
