package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCommitHeld: at the hold timeout the stream's status, headers (without
// hop-by-hop ones) and held bytes reach the client, flushed; the usage tap
// then reads the body on from where the held bytes stopped, mid-event.
func TestCommitHeld(t *testing.T) {
	const held = ": OPENROUTER PROCESSING\n\ndata: {\"choices\":[],\"usa"
	const rest = "ge\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n"
	for _, primed := range []bool{true, false} {
		rec := httptest.NewRecorder()
		ex := &exchange{w: rec}
		resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(rest)), ContentLength: -1, Header: http.Header{
			"Content-Type": {"text/event-stream"}, "Connection": {"X-Hop"}, "X-Hop": {"1"}, "Keep-Alive": {"timeout=5"},
			"X-Keygate-Key": {"2"}}}
		ex.CommitHeld(resp, []byte(held))
		if rec.Code != 200 || !rec.Flushed || rec.Body.String() != held {
			t.Fatalf("client got %d %q (flushed %v), want 200 and the held bytes flushed", rec.Code, rec.Body.String(), rec.Flushed)
		}
		h := rec.Result().Header
		if h.Get("Content-Type") != "text/event-stream" || h.Get("X-Keygate-Key") != "2" || h.Get("X-Hop") != "" || h.Get("Keep-Alive") != "" {
			t.Fatalf("client headers %v", h)
		}
		c := &fakeCounter{}
		tapUsage(resp, c, 3, "m")
		if primed {
			resumeTap(resp, ex.heldTap)
		}
		if got, err := io.ReadAll(resp.Body); err != nil || string(got) != rest {
			t.Fatalf("body %q, %v", got, err)
		}
		resp.Body.Close()
		if n := len(c.got); primed != (n == 1 && c.got[0] == tokenRecord{3, "m", 7, 3}) {
			t.Fatalf("primed %v: counted %v", primed, c.got)
		}
	}
}
