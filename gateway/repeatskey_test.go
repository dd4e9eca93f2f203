package gateway

import (
	"encoding/json"
	"testing"
)

func TestRepeatsKey(t *testing.T) {
	for _, tt := range []struct {
		body string
		want bool
	}{
		{`{"model":"a:free"}`, false},
		{`{"model":"a:free","model":"b"}`, true},
		{`{"model":"a:free","messages":[],"model":"b"}`, true},
		{`{"model":"a:free","mod\u0065l":"b"}`, true},
		{`{"mod\u0065l":"b","model":"a:free"}`, true},
		{`{"model":"a:free","Model":"b"}`, false},
		{`{"model":"a:free","x":{"model":"b"}}`, false},
		{`{"model":"a:free","x":"\"model\":\"b\""}`, false},
		{`{"model":"a:free","messages":[{"model":"b"}]}`, false},
		{`{"model":"a:free",`, false},
		{`[{"model":"a"},{"model":"b"}]`, false},
		{``, false},
	} {
		if got := repeatsKey([]byte(tt.body), "model"); got != tt.want {
			t.Errorf("repeatsKey(%s) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

// FuzzRepeatsKey checks what keygate relies on: for a valid JSON object
// that repeatsKey passes, the model keygate reads (when it reads one) is
// the one a decoder that keeps the last duplicate, as upstream's does,
// reads.
func FuzzRepeatsKey(f *testing.F) {
	for _, s := range []string{
		`{"model":"a:free"}`, `{"model":"a:free","model":"b"}`, `{"model":"a:free","mod\u0065l":"b"}`,
		`{"x":[1,{"model":"n"}],"model":"y"}`, `{"model":"\u0041"}`, `{"mod\u0065l":"b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var doc map[string]json.RawMessage
		if json.Unmarshal(body, &doc) != nil || repeatsKey(body, "model") {
			return
		}
		got, _ := requestOf(body)
		var want string
		if raw, ok := doc["model"]; ok && json.Unmarshal(raw, &want) != nil {
			return
		}
		if got != "" && got != want {
			t.Fatalf("body %q: keygate reads model %q, upstream %q, and repeatsKey lets it pass", body, got, want)
		}
	})
}
