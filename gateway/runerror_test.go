package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRunAnswerCarryingAnError: a 2xx answer that carries an error is that
// model's error entry, in the plain form and the streamed one alike, worded
// by the error's message: OpenRouter answers 200 with choices[0].error and
// finish_reason "error" when the model fails while it writes (the plain
// form called it a success with the text written so far), and an error
// object the relay's first bytes did not reach is no "upstream returned no
// message".
func TestRunAnswerCarryingAnError(t *testing.T) {
	const (
		usageJSON   = `"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}`
		choiceError = `{"choices":[{"finish_reason":"error","error":{"code":502,"message":"provider died"},"message":{"role":"assistant","content":"par"}}],` + usageJSON + `}`
		finishOnly  = `{"choices":[{"finish_reason":"error","message":{"role":"assistant","content":"par"}}],` + usageJSON + `}`
		stop        = `{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":"done"}}],` + usageJSON + `}`
		sseChoice   = "data: {\"choices\":[{\"delta\":{\"content\":\"par\"}}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\",\"error\":{\"code\":502,\"message\":\"provider died\"}}]}\n\n"
	)
	farError := `{"id":"` + strings.Repeat("x", 1000) + `","error":{"code":502,"message":"provider died"}}`
	for _, tc := range []struct {
		name, ctype, body string
		stream            bool
		status, err       string
		usage             bool
	}{
		{"plain, choice error", "application/json", choiceError, false, "error", "upstream error: provider died", true},
		{"plain, finish_reason error alone", "application/json", finishOnly, false, "error", "upstream error: no details", true},
		{"plain, error object past the peek", "application/json", farError, false, "error", "upstream error: provider died", false},
		{"plain, finished", "application/json", stop, false, "success", "", true},
		{"streamed, answered whole with a choice error", "application/json", choiceError, true, "error", "upstream error: provider died", true},
		{"streamed, answered whole and finished", "application/json", stop, true, "success", "", true},
		{"streamed, choice error event", "text/event-stream", sseChoice, true, "error", "upstream stream error: provider died", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newChargeServer(t, chargeTransport{ctype: tc.ctype, body: tc.body}, &fakeSpender{})
			code, out := runOneModel(t, s, tc.stream)
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			res := out.Responses[0]
			if res.Status != tc.status || res.Error != tc.err || (res.Usage != nil) != tc.usage {
				t.Errorf("entry %+v (usage %v); want status %q, error %q, usage %v", res, res.Usage, tc.status, tc.err, tc.usage)
			}
			if tc.status == "error" && (res.Output != "" || out.Failed != 1) {
				t.Errorf("failed entry with output %q, %d failed; want none and 1", res.Output, out.Failed)
			}
		})
	}
}

// runOneModel posts a /run of the one model "a/b" to s, plain or streamed,
// and returns the status and the answer (a stream's done event), which
// must hold one entry.
func runOneModel(t *testing.T, s http.Handler, stream bool) (int, runResponse) {
	t.Helper()
	body := `{"prompt":"hi","models":["a/b"]}`
	if stream {
		body = `{"prompt":"hi","models":["a/b"],"stream":true}`
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(body)))
	doc := w.Body.String()
	if stream {
		i := strings.LastIndex(doc, "event: done\ndata: ")
		if i < 0 {
			t.Fatalf("no done event: %s", doc)
		}
		doc = strings.TrimSpace(doc[i+len("event: done\ndata: "):])
	}
	var out runResponse
	if err := json.Unmarshal([]byte(doc), &out); err != nil || len(out.Responses) != 1 {
		t.Fatalf("answer %s: %v", doc, err)
	}
	return w.Code, out
}
