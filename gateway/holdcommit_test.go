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
// then reads the body on from where the held bytes stopped, mid-event,
// even where the rest opens with an event's '{' (it stays a stream). Held
// blanks alone prime nothing: the tap still reads a JSON answer as one.
func TestCommitHeld(t *testing.T) {
	const usage = "{\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}"
	for _, tc := range []struct {
		name, held, rest string
	}{
		{"mid-event", ": OPENROUTER PROCESSING\n\ndata: {\"choices\":[],\"usa",
			"ge\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n"},
		{"after data: ", ": OPENROUTER PROCESSING\n\ndata: ",
			"{\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: " + usage + "\n\ndata: [DONE]\n\n"},
		{"after data:", ": OPENROUTER PROCESSING\n\ndata:", " " + usage + "\n\ndata: [DONE]\n\n"},
		{"blanks, then JSON", " \n", usage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, primed := range []bool{true, false} {
				rec := httptest.NewRecorder()
				ex := &exchange{w: rec}
				resp := &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(tc.rest)), ContentLength: -1, Header: http.Header{
					"Content-Type": {"text/event-stream"}, "Connection": {"X-Hop"}, "X-Hop": {"1"}, "Keep-Alive": {"timeout=5"},
					"X-Keygate-Key": {"2"}}}
				ex.CommitHeld(resp, resp.Trailer, []byte(tc.held))
				if rec.Code != 200 || !rec.Flushed || rec.Body.String() != tc.held {
					t.Fatalf("client got %d %q (flushed %v), want 200 and the held bytes flushed", rec.Code, rec.Body.String(), rec.Flushed)
				}
				h := rec.Result().Header
				if h.Get("Content-Type") != "text/event-stream" || h.Get("X-Keygate-Key") != "2" || h.Get("X-Hop") != "" || h.Get("Keep-Alive") != "" {
					t.Fatalf("client headers %v", h)
				}
				blank := strings.TrimSpace(tc.held) == ""
				if blank != (ex.heldTap == nil) {
					t.Fatalf("held %q primed a splitter: %v", tc.held, ex.heldTap != nil)
				}
				c := &fakeCounter{}
				tapUsage(resp, c, 3, "m")
				if primed && ex.heldTap != nil {
					resumeTap(resp, ex.heldTap)
				}
				if got, err := io.ReadAll(resp.Body); err != nil || string(got) != tc.rest {
					t.Fatalf("body %q, %v", got, err)
				}
				resp.Body.Close()
				// Unprimed, the tap reads the rest alone: the split event
				// is lost; a JSON-looking rest is taken for a JSON answer.
				want := primed || blank || tc.name == "after data:"
				if n := len(c.got); want != (n == 1 && c.got[0] == tokenRecord{3, "m", 7, 3}) {
					t.Fatalf("primed %v: counted %v", primed, c.got)
				}
			}
		})
	}
}
