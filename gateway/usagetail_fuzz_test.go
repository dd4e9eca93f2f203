package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestLastUsage(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"last member", `{"id":"x","usage":{"prompt_tokens":1}}`, `{"prompt_tokens":1}`},
		{"spaces", " {\"usage\" : { \"cost\" : 2 } }\n", `{ "cost" : 2 }`},
		{"members after it", `{"usage":{"cost":1},"n":[1,{"a":"}"}],"s":"x\"y","t":true}`, `{"cost":1}`},
		{"the last of two", `{"usage":{"cost":1},"usage":{"cost":2}}`, `{"cost":2}`},
		{"nested usage is not top-level", `{"response":{"usage":{"cost":1}}}`, ""},
		{"quoted in a string", `{"a":"\",\"usage\":{\"cost\":9}}"}`, ""},
		{"escaped backslash before the quote", `{"a":"x\\\\","usage":{"cost":3}}`, `{"cost":3}`},
		{"null", `{"usage":null}`, ""},
		{"not an object", `[{"usage":{}}]`, ""},
		{"no usage", `{"a":1,"b":"c"}`, ""},
		{"empty object", `{}`, ""},
		{"truncated", `{"usage":{"cost":1}`, ""},
		{"starts inside a string", `age":{"cost":1}}`, ""},
		{"starts at a key's quote", `"usage":{"cost":1}}`, ""},
		{"starts at a string's escaped quote", `\"usage":{"cost":1}}`, ""},
		{"starts inside a number", `23,"usage":{"cost":1}}`, `{"cost":1}`},
		{"empty", ``, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(lastUsage([]byte(tc.doc))); got != tc.want {
				t.Fatalf("lastUsage(%s) = %q, want %q", tc.doc, got, tc.want)
			}
		})
	}
}

// FuzzLastUsage: on any text lastUsage never panics; on a JSON object it
// finds what encoding/json takes as its top-level usage object (the last
// one), unless a key is escaped; and no end of such a document, cut
// anywhere (the tap's window of a large answer), makes it find any other
// value: text quoted in strings cannot pass for the usage.
func FuzzLastUsage(f *testing.F) {
	for _, s := range []string{
		`{"id":"x","usage":{"prompt_tokens":1,"cost":0.5}}`,
		`{"choices":[{"message":{"content":"\",\"usage\":{\"cost\":9}}"}}],"usage":{"cost":1}}`,
		`{"a":"\\\\\"usage\":{}","usage":{"x":"}"},"b":[1,2,{"c":null}]}`,
		`{"usage":{"cost":1},"usage":{"cost":2}}`,
		`{"usage":7}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		b := []byte(doc)
		got := lastUsage(b)
		var top map[string]json.RawMessage
		if json.Unmarshal(b, &top) != nil {
			return
		}
		want := top["usage"]
		if len(want) == 0 || want[0] != '{' {
			want = nil
		}
		if (got != nil || !bytes.Contains(b, []byte(`\`))) && !bytes.Equal(got, want) {
			t.Fatalf("lastUsage(%s) = %s, want %s", doc, got, want)
		}
		for i := range b {
			if cut := lastUsage(b[i:]); cut != nil && !bytes.Equal(cut, got) {
				t.Fatalf("lastUsage of %q, the end of %s, = %s, want nil or %s", b[i:], doc, cut, got)
			}
		}
	})
}
