package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestRequestOf(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		stream           bool
	}{
		{"plain", `{"model":"openai/gpt-4o","messages":[]}`, "openai/gpt-4o", false},
		{"after nested", `{"messages":[{"role":"user","content":"{\"model\":\"x\"}"}],"model":"a/b"}`, "a/b", false},
		{"spaces", " {\n \"stream\" : true ,\n \"model\" : \"m\" } ", "m", true},
		{"stream after model", `{"model":"m","messages":[{"content":"\"stream\":false"}],"stream":true}`, "m", true},
		{"stream false", `{"model":"m","stream":false}`, "m", false},
		{"stream not a bool", `{"model":"m","stream":"true"}`, "m", false},
		{"stream nested only", `{"model":"m","options":{"stream":true}}`, "m", false},
		{"stream without model", `{"stream":true}`, "", true},
		{"first stream wins", `{"stream":true,"stream":false}`, "", true},
		{"escaped", `{"model":"a\/b\u00e9"}`, "a/bé", false},
		{"nested only", `{"x":{"model":"no"}}`, "", false},
		{"not a string", `{"model":42}`, "", false},
		{"array", `["model"]`, "", false},
		{"empty", ``, "", false},
		{"unterminated", `{"model":"abc`, "", false},
		{"garbage", `{"a" 1}`, "", false},
		{"numbers first", `{"temperature":0.7,"max_tokens":10,"model":"z"}`, "z", false},
		{"escaped quote, then backslashes", `{"messages":[{"content":"a\"b\\"}],"x":"\\\"\\","model":"q"}`, "q", false},
		{"backslash before the end of a key", `{"a\\":1,"model":"k"}`, "k", false},
		{"unterminated after escapes", `{"messages":"\\\"`, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, stream := requestOf([]byte(tc.body)); got != tc.want || stream != tc.stream {
				t.Fatalf("requestOf(%s) = %q, %v; want %q, %v", tc.body, got, stream, tc.want, tc.stream)
			}
		})
	}
}

func BenchmarkRequestOf(b *testing.B) {
	body := []byte(`{"messages":[{"role":"user","content":"Say hi in one word, please."}],"max_tokens":8,"model":"openai/gpt-4o-mini"}`)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = requestOf(body)
	}
}

// BenchmarkRequestOfLongPrompt: the model after a 16 KiB prompt, as the
// OpenAI SDKs order a chat request.
func BenchmarkRequestOfLongPrompt(b *testing.B) {
	prompt := bytes.Repeat([]byte("All work and no play makes Jack a dull boy. "), 16<<10/44)
	body := []byte(`{"messages":[{"role":"user","content":"` + string(prompt) + `"}],"model":"openai/gpt-4o-mini"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = requestOf(body)
	}
}

// FuzzRequestOf checks the scanner against encoding/json: on a valid JSON
// object whose "model" is a string, or whose "stream" is a bool, both agree.
func FuzzRequestOf(f *testing.F) {
	for _, s := range []string{
		`{"model":"a"}`, `{"x":[1,{"model":"n"}],"model":"y"}`, `{"model":"\u0041\n"}`,
		`{"model":null}`, `{}`, `[]`, `"model"`, `{"model":"a","model":"b"}`, `{"a":"\"model\":\"x\""}`,
		`{"model":"m","stream":true}`, `{"stream":false,"model":"m"}`, `{"x":{"stream":true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, stream := requestOf(body)
		var doc map[string]json.RawMessage
		if json.Unmarshal(body, &doc) != nil {
			return
		}
		if raw, ok := doc["stream"]; ok {
			var want bool
			single := bytes.Count(body, []byte(`"stream"`)) == 1 && !bytes.Contains(body, []byte(`\u`))
			if json.Unmarshal(raw, &want) == nil && single && stream != want {
				t.Fatalf("requestOf(%q) stream = %v, encoding/json says %v", body, stream, want)
			}
		}
		var want string
		if raw, ok := doc["model"]; ok && json.Unmarshal(raw, &want) == nil {
			// encoding/json keeps the last duplicate and decodes escaped
			// keys; the scanner takes the first literal key.
			single := bytes.Count(body, []byte(`"model"`)) == 1 && !bytes.Contains(body, []byte(`\u`))
			if single && got != want {
				t.Fatalf("requestOf(%q) = %q, encoding/json says %q", body, got, want)
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
		{`{"max_output_tokens":3,"max_tokens":5}`, 5},
		{`{"max_tokens":0,"max_completion_tokens":4}`, 4},
		{`{"max_tokens":5,"max_tokens":6}`, 5},
		{`{"max_tokens":"9"}`, 0},
		{`{"messages":[{"max_tokens":5}]}`, 0},
		{`not json`, 0},
	} {
		if got := maxTokensOf([]byte(tt.body)); got != tt.want {
			t.Errorf("maxTokensOf(%s) = %d, want %d", tt.body, got, tt.want)
		}
	}
}
