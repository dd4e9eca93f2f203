package gateway

import (
	"bytes"
	"testing"
)

func TestTailUsage(t *testing.T) {
	for _, tt := range []struct{ name, tail, want string }{
		{"none", `"output":[{"text":"hi"}]}}`, ""},
		{"the last whole object", `x","usage":{"input_tokens":1},"y":{"usage":{"input_tokens":9,"cost":0.5}}}`, `{"input_tokens":9,"cost":0.5}`},
		{"nested and strings with braces", `"usage":{"a":{"b":[1,{"c":"}"}]},"d":"\"}"}}`, `{"a":{"b":[1,{"c":"}"}]},"d":"\"}"}`},
		{"cut before its end", `"usage":{"input_tokens":9,"out`, ""},
		{"escaped in a string is no member", `"text":"say \"usage\":{\"x\":1}"}`, ""},
		{"blanks around the colon", `"output":[]}, "usage" : {"input_tokens": 9}, "user": null}}`, `{"input_tokens": 9}`},
		{"a string value usage, a null usage after the object", `"usage":{"a":1},"name":"usage","usage":null}`, `{"a":1}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tailUsage([]byte(tt.tail))); got != tt.want {
				t.Errorf("tailUsage = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzTailUsage: whatever the tail of a long event, tailUsage never
// panics, and what it finds is an object of the tail.
func FuzzTailUsage(f *testing.F) {
	for _, s := range []string{`"usage":{"a":1}`, `"usage":{"a":"}\"`, `"usage":{[}`, `"usage":{`, `a"usage":{"b":{"c":[]}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, tail []byte) {
		u := tailUsage(tail)
		if u == nil {
			return
		}
		if u[0] != '{' || (u[len(u)-1] != '}' && u[len(u)-1] != ']') || !bytes.Contains(tail, u) {
			t.Fatalf("tailUsage(%q) = %q", tail, u)
		}
	})
}
