package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// clipUpstream answers every call with a streamed chat answer whose
// second event is an error quoting msg.
type clipUpstream struct{ msg string }

func (u clipUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	_, _ = io.Copy(io.Discard, r.Body)
	r.Body.Close()
	text := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
		"data: {\"error\":{\"message\":\"" + u.msg + "\",\"code\":502}}\n\n"
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(strings.NewReader(text)), Request: r}, nil
}

// Text that keygate cuts before it shows it (a logged model, a quoted
// path, an upstream message) is masked first: a pool key standing where
// the cut falls shows as its masked form, not as its first part.
func TestClippedTextHoldsNoPartOfAKey(t *testing.T) {
	key := accessKeys[2]
	for _, tc := range []struct {
		name               string
		method, path, body string
		upstreamMsg        string
		where              string // "log" or "answer"
		want               string // in the log or answer
	}{
		{name: "logged model", method: "POST", path: "/v1/chat/completions",
			body: `{"model":"` + strings.Repeat("m", 100) + key + `"}`, where: "log",
			want: strings.Repeat("m", 100) + "sk-or-v1-…0003 → 200"},
		{name: "path quoted by a 404", method: "GET", path: "/nowhere/" + strings.Repeat("p", 170) + key,
			where: "answer", want: strings.Repeat("p", 170) + "sk-or-v1-…0003"},
		{name: "path guessed by a 404", method: "GET", path: "/chat/" + key,
			where: "answer", want: "did you mean /v1/chat/sk-or-v1-…0003?"},
		{name: "message of a /run stream's error event", method: "POST", path: "/run",
			body:        `{"prompt":"hi","models":["a/b"],"stream":true}`,
			upstreamMsg: strings.Repeat("u", 180) + key, where: "answer",
			want: "upstream stream error: " + strings.Repeat("u", 180) + "sk-or-v1-…0003"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var up http.RoundTripper = &accessUpstream{}
			if tc.upstreamMsg != "" {
				up = clipUpstream{msg: tc.upstreamMsg}
			}
			s, logs := newAccessServer(t, up, "text", slog.LevelInfo)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, localRequest(tc.method, tc.path, tc.body))
			got := w.Body.String()
			if tc.where == "log" {
				got = logs.String()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("status %d; %s:\n%s\nwant it to hold %q", w.Code, tc.where, got, tc.want)
			}
			for _, k := range accessKeys {
				// More than the mask shows: "sk-or-v1-" and the last four.
				if part := k[:len("sk-or-v1-")+4]; strings.Contains(w.Body.String(), part) || strings.Contains(logs.String(), part) {
					t.Fatalf("%q, part of a key, shows in the answer or the log:\n%s\n%s", part, w.Body.String(), logs.String())
				}
			}
		})
	}
}
