package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRunStreamEnd: a streamed /run model's answer is whole once upstream
// said why it ended (a finish_reason) or sent [DONE]; a stream that ends
// with neither was cut short and is that model's error, as the same answer
// cut short unstreamed is (it was a success with half a text). The event a
// stream ends in without its blank line counts, its usage included.
func TestRunStreamEnd(t *testing.T) {
	const (
		delta  = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
		finish = "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n"
		usage  = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}"
		cut    = "upstream stream ended before the answer was complete"
	)
	for _, tc := range []struct {
		name, body  string
		status, err string
		output      string
		usage       bool
	}{
		{"whole", delta + finish + usage + "\n\ndata: [DONE]\n\n", "success", "", "Hello", true},
		{"no [DONE] after the finish", delta + finish + usage + "\n\n", "success", "", "Hello", true},
		{"last event without its blank line", delta + finish + usage, "success", "", "Hello", true},
		{"[DONE] without its blank line", delta + "data: [DONE]", "success", "", "Hel", false},
		{"cut after a delta", delta, "error", cut, "", false},
		{"cut inside an event", delta + "data: {\"choices\":[{\"delta\":{\"content\"", "error", cut, "", false},
		{"a bad event before the end", delta + "data: {nope\n\n" + finish, "error", "upstream returned invalid JSON", "", false},
		{"nothing but a comment after the first delta", delta + ": OPENROUTER PROCESSING\n\n", "error", cut, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newChargeServer(t, chargeTransport{ctype: "text/event-stream", body: tc.body}, &fakeSpender{})
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(`{"prompt":"hi","models":["a/b"],"stream":true}`)))
			doc := w.Body.String()
			i := strings.LastIndex(doc, "event: done\ndata: ")
			if w.Code != http.StatusOK || i < 0 {
				t.Fatalf("status %d, no done event: %s", w.Code, doc)
			}
			var out runResponse
			if err := json.Unmarshal([]byte(strings.TrimSpace(doc[i+len("event: done\ndata: "):])), &out); err != nil || len(out.Responses) != 1 {
				t.Fatalf("done event of %s: %v", doc, err)
			}
			res := out.Responses[0]
			if res.Status != tc.status || res.Error != tc.err || res.Output != tc.output || (res.Usage != nil) != tc.usage {
				t.Errorf("entry %+v (usage %v); want status %q, error %q, output %q, usage %v", res, res.Usage, tc.status, tc.err, tc.output, tc.usage)
			}
		})
	}
}
