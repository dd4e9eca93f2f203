package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/secret"
)

// TestRunFinishReason: a successful entry says why its answer ended, in
// the plain form, the streamed one (its model_done too) and a stream
// answered whole, so that an output cut at max_tokens no longer looks
// whole; a finish_reason that is no word is left out, and a key in one
// is masked as any text of the document.
func TestRunFinishReason(t *testing.T) {
	plain := func(reason string) string {
		return `{"choices":[{"finish_reason":` + reason + `,"message":{"role":"assistant","content":"Hello from"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	}
	sse := func(reason string) string {
		return "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{\"content\":\" from\"},\"finish_reason\":" + reason + "}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{},\"finish_reason\":" + reason + "}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n"
	}
	const key = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
	for _, tc := range []struct {
		name, ctype, body string
		stream            bool
		want              string
	}{
		{"plain, cut at max_tokens", "application/json", plain(`"length"`), false, "length"},
		{"plain, whole", "application/json", plain(`"stop"`), false, "stop"},
		{"plain, none given", "application/json", plain(`null`), false, ""},
		{"plain, not a word", "application/json", plain(`"stop\u202e now"`), false, ""},
		{"plain, too long", "application/json", plain(`"` + strings.Repeat("x", 65) + `"`), false, ""},
		{"plain, a long key in it", "application/json", plain(`"` + key + `"`), false, ""},
		{"plain, the pool's key in it", "application/json", plain(`"sk-or-v1-charge00000000000000000001"`), false, "sk-or-v1-…0001"},
		{"streamed, cut at max_tokens", "text/event-stream", sse(`"length"`), true, "length"},
		{"streamed, content filter", "text/event-stream", sse(`"content_filter"`), true, "content_filter"},
		{"streamed, whole", "text/event-stream", sse(`"stop"`), true, "stop"},
		{"streamed, answered whole", "application/json", plain(`"length"`), true, "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newChargeServer(t, chargeTransport{ctype: tc.ctype, body: tc.body}, &fakeSpender{})
			s.o.Redactor = secret.NewRedactor([]secret.Key{secret.New("sk-or-v1-charge00000000000000000001")})
			_, out := runOneModel(t, s, tc.stream)
			res := out.Responses[0]
			if res.Status != "success" || res.Output != "Hello from" {
				t.Fatalf("entry %+v; want a success", res)
			}
			if res.FinishReason != tc.want {
				t.Errorf("finish_reason %q; want %q", res.FinishReason, tc.want)
			}
		})
	}
}

// TestRunFinishReasonEvents: the streamed /run's model_done carries the
// finish_reason, and the console line of an output cut at max_tokens
// says so.
func TestRunFinishReasonEvents(t *testing.T) {
	body := "data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n"
	var log strings.Builder
	s := newChargeServer(t, chargeTransport{ctype: "text/event-stream", body: body}, &fakeSpender{})
	s.o.Logger = slog.New(slog.NewTextHandler(&log, nil))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(`{"prompt":"hi","models":["a/b"],"stream":true}`)))
	if !strings.Contains(w.Body.String(), "event: model_done\ndata: {\"index\":0,\"model\":\"a/b\",\"status\":\"success\"") ||
		!strings.Contains(w.Body.String(), `"finish_reason":"length"}`+"\n\nevent: done") {
		t.Errorf("events:\n%s\nwant a model_done with finish_reason length", w.Body.String())
	}
	if !strings.Contains(log.String(), "a/b completed in") || !strings.Contains(log.String(), "(cut at max_tokens)") {
		t.Errorf("console:\n%s\nwant the model's line to say it was cut at max_tokens", log.String())
	}
}
