package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// readSizes is an upstream body that records the largest buffer it was
// read into.
type readSizes struct {
	r       io.Reader
	mu      *sync.Mutex
	largest *int
}

func (b readSizes) Read(p []byte) (int, error) {
	b.mu.Lock()
	*b.largest = max(*b.largest, len(p))
	b.mu.Unlock()
	return b.r.Read(p)
}

func (readSizes) Close() error { return nil }

// sizedUpstream answers a stream to a request that asks for one and JSON
// otherwise, through readSizes.
type sizedUpstream struct {
	text    map[bool]string
	mu      sync.Mutex
	largest int
}

func (u *sizedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	stream := strings.Contains(string(body), `"stream":true`)
	ct := "application/json"
	if stream {
		ct = "text/event-stream"
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {ct}}, Request: r,
		Body: readSizes{r: strings.NewReader(u.text[stream]), mu: &u.mu, largest: &u.largest}}, nil
}

// TestStreamCopyBuffer: a request that asks for a stream is copied through
// the smaller buffer (an open stream holds it as long as it lasts), others
// through the larger one; an event longer than the buffer arrives whole.
func TestStreamCopyBuffer(t *testing.T) {
	long := strings.Repeat("x", 5000)
	// The first event is short: the hold reads it on buffers of its own.
	// It says something (a role-only chunk would be held past).
	stream := "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"" + long + "\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n"
	plain := `{"choices":[{"message":{"content":"` + long + `"}}],"usage":{"prompt_tokens":9,"completion_tokens":12}}`
	for _, tc := range []struct {
		name, body, want string
		size             int
	}{
		{"stream", `{"model":"m","stream":true,"messages":[]}`, stream, streamCopyBufferSize},
		{"no stream", `{"model":"m","messages":[]}`, plain, copyBufferSize},
		{"stream false", `{"model":"m","stream":false,"messages":[]}`, plain, copyBufferSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &sizedUpstream{text: map[bool]string{true: stream, false: plain}}
			s, _ := newAccessServer(t, up, "text", slog.LevelWarn)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "http://localhost/v1/chat/completions", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Body.String() != tc.want {
				t.Fatalf("status %d, body %d bytes (want %d): %.120q", rec.Code, rec.Body.Len(), len(tc.want), rec.Body.String())
			}
			if up.largest != tc.size {
				t.Fatalf("upstream body read into buffers of up to %d bytes, want %d", up.largest, tc.size)
			}
		})
	}
}
