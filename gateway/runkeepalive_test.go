package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// slowStream answers with a stream written as it goes: the comment
// OpenRouter sends while a model thinks, a pause, then chunks deltas
// apart by gap.
type slowStream struct {
	pause, gap time.Duration
	chunks     int
}

func (s slowStream) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, ": OPENROUTER PROCESSING\n\n")
		time.Sleep(s.pause)
		for i := 0; i < s.chunks; i++ {
			_, _ = io.WriteString(pw, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n")
			time.Sleep(s.gap)
		}
		_, _ = io.WriteString(pw, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
		pw.Close()
	}()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr, Request: r}, nil
}

// TestRunStreamKeepAlive: a streamed /run whose models are all silent
// sends a comment every so often, which SSE readers skip, so that a proxy
// or client that cuts idle connections does not cut it while a model
// thinks; it swallowed OpenRouter's own and sent nothing at all. A /run
// whose models write sends none.
func TestRunStreamKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name      string
		every     time.Duration
		upstream  slowStream
		keepAlive bool
	}{
		{"silent model", 20 * time.Millisecond, slowStream{pause: 300 * time.Millisecond, chunks: 1}, true},
		{"writing model", 250 * time.Millisecond, slowStream{gap: 2 * time.Millisecond, chunks: 150}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newChargeServer(t, tc.upstream, &fakeSpender{})
			s.o.RunKeepAlive = tc.every
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(`{"prompt":"hi","models":["a/b"],"stream":true}`)))
			body := w.Body.String()
			first := strings.Index(body, "event: delta")
			comment := strings.Index(body, ": keep-alive\n\n")
			if tc.keepAlive && (comment < 0 || comment > first) {
				t.Errorf("no keep-alive comment before the first delta: %q", body)
			}
			if !tc.keepAlive && comment >= 0 {
				t.Errorf("a keep-alive comment while the model wrote: %q", body)
			}
			i := strings.LastIndex(body, "event: done\ndata: ")
			var out runResponse
			if i < 0 || json.Unmarshal([]byte(strings.TrimSpace(body[i+len("event: done\ndata: "):])), &out) != nil || out.Successful != 1 {
				t.Fatalf("done event: %q", body)
			}
		})
	}
}
