package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// nTransport answers as an OpenAI-compatible server does for "n": 2: a
// whole answer with two choices, or a stream whose chunks carry one
// choice each, by index.
type nTransport struct{}

func (nTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	h := http.Header{"Content-Type": {"application/json"}}
	body := `{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":"Lyon"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	if strings.Contains(string(b), `"stream":true`) {
		h.Set("Content-Type", "text/event-stream")
		body = `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Par"}}]}` + "\n\n" +
			`data: {"choices":[{"index":1,"delta":{"role":"assistant","content":"Ly"}}]}` + "\n\n" +
			`data: {"choices":[{"index":0,"delta":{"content":"is"},"finish_reason":"stop"}]}` + "\n\n" +
			`data: {"choices":[{"index":1,"delta":{"content":"on"},"finish_reason":"stop"}]}` + "\n\n" +
			`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}` + "\n\n" +
			"data: [DONE]\n\n"
	}
	return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

// TestRunStreamSameAsPlainWithN: the streamed /run's done document is
// "the whole JSON document that the same request without stream answers"
// (CONTRACT.md); with params asking for two choices, the plain form shows
// the first choice, the streamed form must not mix both into one output.
func TestRunStreamSameAsPlainWithN(t *testing.T) {
	s := newRunServer(t, nTransport{})
	outputOf := func(stream bool) string {
		body := `{"prompt":"capital?","models":["m"],"params":{"n":2},"stream":` + map[bool]string{true: "true", false: "false"}[stream] + `}`
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(body)))
		doc := rec.Body.String()
		if stream {
			i := strings.LastIndex(doc, "event: done\ndata: ")
			if i < 0 {
				t.Fatalf("no done event: %s", doc)
			}
			doc = strings.TrimSpace(doc[i+len("event: done\ndata: "):])
		}
		var d runResponse
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("%v: %s", err, doc)
		}
		return d.Responses[0].Output
	}
	plain, streamed := outputOf(false), outputOf(true)
	if plain != streamed {
		t.Errorf("plain output %q, streamed output %q", plain, streamed)
	}
}
