package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/secret"
)

func TestMaskAccountIDs(t *testing.T) {
	l := breaker.AccountLabel
	for _, tt := range []struct{ in, want string }{
		{`{"error":{"code":429},"user_id":"user_demo_b"}`, `{"error":{"code":429},"user_id":"` + l("user_demo_b") + `"}`},
		{`{"user_id" : "u1", "error":{"metadata":{"user_id":"u2"}}}`, `{"user_id" : "` + l("u1") + `", "error":{"metadata":{"user_id":"` + l("u2") + `"}}}`},
		{`{"user_id":"a\"b"}`, `{"user_id":"` + l(`a\"b`) + `"}`},
		{`{"user_id":null,"message":"no \"user_id\": here"}`, `{"user_id":null,"message":"no \"user_id\": here"}`},
		{`{"error":{"message":"plain"}}`, `{"error":{"message":"plain"}}`},
		{`{"user_id":"cut`, `{"user_id":"cut`},
	} {
		if got := maskAccountIDs(tt.in); got != tt.want {
			t.Errorf("maskAccountIDs(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzMaskAccountIDs: valid JSON stays valid, and no "user_id" string
// keeps its value.
func FuzzMaskAccountIDs(f *testing.F) {
	for _, s := range []string{`{"user_id":"u"}`, `{"a":"\"user_id\":\"x\"","user_id":"y\\"}`, `{"user_id" :"é"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := maskAccountIDs(in)
		if !json.Valid([]byte(in)) {
			return
		}
		if !json.Valid([]byte(out)) {
			t.Fatalf("%s became %s, no longer JSON", in, out)
		}
		var v map[string]any
		if json.Unmarshal([]byte(in), &v) != nil {
			return
		}
		var w map[string]any
		if err := json.Unmarshal([]byte(out), &w); err != nil {
			t.Fatal(err)
		}
		if id, ok := v["user_id"].(string); ok && w["user_id"] != breaker.AccountLabel(id) && len(strings.TrimSpace(id)) > 0 {
			// The raw text is labelled, so an id with escapes is labelled
			// as written; compare only plain ones.
			if !strings.ContainsAny(id, "\\\"") && !strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
				t.Fatalf("top-level user_id %q left as %v", id, w["user_id"])
			}
		}
	})
}

// TestRedactHeadKeepsLength: a HEAD answer's error status keeps its
// Content-Length, the GET's: there is no body to mask, and it used to be
// set to 0.
func TestRedactHeadKeepsLength(t *testing.T) {
	r := secret.NewRedactor([]secret.Key{secret.New("sk-or-v1-" + strings.Repeat("a", 64))})
	resp := &http.Response{StatusCode: 502, Header: http.Header{"Content-Length": {"24"}},
		Body: io.NopCloser(strings.NewReader("")), Request: httptest.NewRequest(http.MethodHead, "/v1/x", nil)}
	redactErrorBody(resp, r)
	if got := resp.Header.Get("Content-Length"); got != "24" {
		t.Fatalf("Content-Length %q, want 24", got)
	}
}
