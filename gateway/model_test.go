package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestModelOf(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"plain", `{"model":"openai/gpt-4o","messages":[]}`, "openai/gpt-4o"},
		{"after nested", `{"messages":[{"role":"user","content":"{\"model\":\"x\"}"}],"model":"a/b"}`, "a/b"},
		{"spaces", " {\n \"stream\" : true ,\n \"model\" : \"m\" } ", "m"},
		{"escaped", `{"model":"a\/b\u00e9"}`, "a/bé"},
		{"nested only", `{"x":{"model":"no"}}`, ""},
		{"not a string", `{"model":42}`, ""},
		{"array", `["model"]`, ""},
		{"empty", ``, ""},
		{"unterminated", `{"model":"abc`, ""},
		{"garbage", `{"a" 1}`, ""},
		{"numbers first", `{"temperature":0.7,"max_tokens":10,"model":"z"}`, "z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := modelOf([]byte(tc.body)); got != tc.want {
				t.Fatalf("modelOf(%s) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}

func BenchmarkModelOf(b *testing.B) {
	body := []byte(`{"messages":[{"role":"user","content":"Say hi in one word, please."}],"max_tokens":8,"model":"openai/gpt-4o-mini"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = modelOf(body)
	}
}

// FuzzModelOf checks the scanner against encoding/json: on a valid JSON
// object whose "model" is a string, both agree.
func FuzzModelOf(f *testing.F) {
	for _, s := range []string{
		`{"model":"a"}`, `{"x":[1,{"model":"n"}],"model":"y"}`, `{"model":"\u0041\n"}`,
		`{"model":null}`, `{}`, `[]`, `"model"`, `{"model":"a","model":"b"}`, `{"a":"\"model\":\"x\""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got := modelOf(body)
		var doc map[string]json.RawMessage
		if json.Unmarshal(body, &doc) != nil {
			return
		}
		var want string
		if raw, ok := doc["model"]; ok && json.Unmarshal(raw, &want) == nil {
			// encoding/json keeps the last duplicate and decodes escaped
			// keys; the scanner takes the first literal key.
			single := bytes.Count(body, []byte(`"model"`)) == 1 && !bytes.Contains(body, []byte(`\u`))
			if single && got != want {
				t.Fatalf("modelOf(%q) = %q, encoding/json says %q", body, got, want)
			}
		}
	})
}

func TestMaxTokensOf(t *testing.T) {
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"model":"m","max_tokens":256}`, 256},
		{`{"max_completion_tokens":77,"max_tokens":null}`, 77},
		{`{"max_output_tokens":12}`, 12},
		{`{"max_tokens":"9"}`, 0},
		{`{"messages":[{"max_tokens":5}]}`, 0},
		{`not json`, 0},
	} {
		if got := maxTokensOf([]byte(tt.body)); got != tt.want {
			t.Errorf("maxTokensOf(%s) = %d, want %d", tt.body, got, tt.want)
		}
	}
}
