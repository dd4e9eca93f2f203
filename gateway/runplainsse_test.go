package gateway

import "testing"

// TestRunPlainAnsweredStreamed: a plain /run whose upstream answers with
// an event stream anyway (some OpenAI-compatible servers stream whatever
// is asked) is read as a stream, its text, usage and finish_reason
// gathered, where it was "upstream returned invalid JSON"; its error
// event and a stream cut short are its model's error as in a streamed
// /run. A body that is one JSON answer under the stream's Content-Type is
// read whole, by either form of /run.
func TestRunPlainAnsweredStreamed(t *testing.T) {
	const (
		whole = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{\"content\":\" there\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":2,\"total_tokens\":4}}\n\ndata: [DONE]\n\n"
		failed = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n" +
			"data: {\"error\":{\"code\":502,\"message\":\"Provider disconnected\"},\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n"
		cut = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n"
		// A whole JSON answer sent as an event stream.
		json = "\n " + `{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"Hello there"}}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}` + "\n"
	)
	for _, tc := range []struct {
		name, body, status, output, err string
	}{
		{"whole", whole, "success", "Hello there", ""},
		{"an error event", failed, "error", "", "upstream stream error: Provider disconnected"},
		{"cut short", cut, "error", "", cutShort},
		{"one JSON answer", json, "success", "Hello there", ""},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{true: ", streamed /run"}[stream], func(t *testing.T) {
				sp := &fakeSpender{}
				s := newChargeServer(t, chargeTransport{ctype: "text/event-stream", body: tc.body}, sp)
				_, out := runOneModel(t, s, stream)
				res := out.Responses[0]
				if res.Status != tc.status || res.Output != tc.output || res.Error != tc.err {
					t.Fatalf("entry %+v; want %s %q %q", res, tc.status, tc.output, tc.err)
				}
				if tc.status == "success" && (res.Usage == nil || res.Usage.TotalTokens != 4 || res.FinishReason != "stop") {
					t.Errorf("entry %+v; want its usage (4 tokens) and finish_reason stop", res)
				}
			})
		}
	}
}
