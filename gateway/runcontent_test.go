package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRunContentParts: a model's content may come as an array of content
// parts, as Mistral's reasoning models answer (a "thinking" part, then
// "text" parts); its output is the text parts' text, in the plain form and
// the streamed one, where /run called the answer invalid JSON.
func TestRunContentParts(t *testing.T) {
	const (
		thinking = `{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]}`
		parts    = `[` + thinking + `,{"type":"text","text":"Hel"},{"type":"text","text":"lo"}]`
		usageF   = `"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}`
		whole    = `{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":` + parts + `}}],` + usageF + `}`
		sse      = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":[" + thinking + "]}}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"Hel\"}]}}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"lo\"}]},\"finish_reason\":\"stop\"}]," + usageF + "}\n\n" +
			"data: [DONE]\n\n"
	)
	for _, tc := range []struct {
		name, ctype, body   string
		stream              bool
		status, output, err string
	}{
		{"plain", "application/json", whole, false, "success", "Hello", ""},
		{"streamed", "text/event-stream", sse, true, "success", "Hello", ""},
		{"streamed, answered whole", "application/json", whole, true, "success", "Hello", ""},
		{"plain, content a number", "application/json", `{"choices":[{"message":{"content":7}}]}`, false, "error", "", "upstream returned invalid JSON"},
		{"plain, parts not objects", "application/json", `{"choices":[{"message":{"content":[1]}}]}`, false, "error", "", "upstream returned invalid JSON"},
		{"plain, content null", "application/json", `{"choices":[{"message":{"content":null}}]}`, false, "error", "", "upstream returned no message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newChargeServer(t, chargeTransport{ctype: tc.ctype, body: tc.body}, &fakeSpender{})
			body := `{"prompt":"hi","models":["a/b"]}`
			if tc.stream {
				body = `{"prompt":"hi","models":["a/b"],"stream":true}`
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(body)))
			doc := w.Body.String()
			if tc.stream {
				i := strings.LastIndex(doc, "event: done\ndata: ")
				if i < 0 {
					t.Fatalf("no done event: %s", doc)
				}
				deltas := ""
				for _, line := range strings.Split(doc[:i], "\n") {
					var d runDelta
					if strings.HasPrefix(line, "data: ") && json.Unmarshal([]byte(line[6:]), &d) == nil {
						deltas += d.Content
					}
				}
				if deltas != tc.output {
					t.Errorf("deltas %q, want %q", deltas, tc.output)
				}
				doc = strings.TrimSpace(doc[i+len("event: done\ndata: "):])
			}
			var out runResponse
			if err := json.Unmarshal([]byte(doc), &out); err != nil || len(out.Responses) != 1 {
				t.Fatalf("answer %s: %v", doc, err)
			}
			if res := out.Responses[0]; res.Status != tc.status || res.Output != tc.output || res.Error != tc.err {
				t.Errorf("entry %+v; want status %q, output %q, error %q", res, tc.status, tc.output, tc.err)
			}
		})
	}
}
