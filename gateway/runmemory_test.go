package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// allocated is the bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestRunDecodeMemory: a /run body of MAX_BODY_BYTES (10 MiB) made of
// many small entries is refused, or read, for at most a few times its
// size in memory (3 to 5 times; under -race, where sync.Pool keeps less,
// up to 6). Decoded whole into maps and slices before the counts were
// checked, each took 10 to 40 times its size (105 to 394 MB).
func TestRunDecodeMemory(t *testing.T) {
	const size = 10 << 20
	fill := func(head, entry, tail string) []byte {
		var b bytes.Buffer
		b.WriteString(head)
		for i := 0; b.Len() < size-len(entry)-len(tail); i++ {
			fmt.Fprintf(&b, entry, i)
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	for _, tt := range []struct {
		name string
		body []byte
		err  string // "" for a request that is read
	}{
		{"models", fill(`{"prompt":"x","models":[`, `"m%d",`, `"m"]}`), `"models" has `},
		{"messages", fill(`{"models":["m"],"messages":[`, `{"role":"u%d"},`, `{"role":"user"}]}`), `"messages" has `},
		{"params fields", fill(`{"prompt":"x","models":["m"],"params":{`, `"k%d":1,`, `"z":1}}`), `"params" has `},
		{"unknown top-level fields", fill(`{"prompt":"x","models":["m"],`, `"k%d":1,`, `"z":1}`), ""},
		// Within one message: its fields, its content's parts.
		{"one message of many fields", fill(`{"models":["m"],"messages":[{"role":"user","content":"hi",`, `"k%d":1,`, `"z":1}]}`), ""},
		{"many content parts", fill(`{"models":["m"],"messages":[{"role":"user","content":[`, `{"type":"image_url","image_url":%d},`, `{"type":"text","text":"z"}]}]}`), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocated(func() {
				var req *runRequest
				if req, err = decodeRunRequest(tt.body, 32); err == nil {
					err = req.buildShared(false)
				}
			})
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)):
				t.Fatalf("error %v, want one starting %q", err, tt.err)
			}
			if n > 6*uint64(len(tt.body)) {
				t.Errorf("a %d-byte body allocated %d MB (%.1f times its size)", len(tt.body), n>>20, float64(n)/float64(len(tt.body)))
			}
		})
	}
}

// TestRunFieldsOfAsMap: runFieldsOf reads a body's /run fields as
// json.Unmarshal into a map does, the last of a repeated name and escaped
// names included, and skips the rest.
func TestRunFieldsOfAsMap(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`{"prompt":"a","models":["m"]}`, `map[models:["m"] prompt:"a"]`},
		{`{"prompt":"a","prompt":"b"}`, `map[prompt:"b"]`},
		{`{"pr\u006fmpt":"a","x":{"prompt":"no"}}`, `map[prompt:"a"]`},
		{`{"Prompt":"a","stream":true,"params":{"n":1}}`, `map[params:{"n":1} stream:true]`},
		{`{}`, `map[]`},
	} {
		got := map[string]string{}
		for k, v := range runFieldsOf([]byte(tt.body)) {
			got[k] = string(v)
		}
		if s := fmt.Sprint(got); s != tt.want {
			t.Errorf("runFieldsOf(%s) = %s, want %s", tt.body, s, tt.want)
		}
	}
}

func TestJSONLen(t *testing.T) {
	for _, tt := range []struct {
		raw  string
		want int
	}{
		{`[]`, 0}, {`[ ]`, 0}, {`{}`, 0}, {`{ }`, 0}, {`[1]`, 1}, {`[1,[2,3],{"a":[4]}]`, 3},
		{`{"a":1,"b":{"c":2}}`, 2}, {` [ "x" , "y" ] `, 2}, {`["a,b","c\"]"]`, 2},
	} {
		if got := jsonLen([]byte(tt.raw)); got != tt.want {
			t.Errorf("jsonLen(%s) = %d, want %d", tt.raw, got, tt.want)
		}
	}
}

// FuzzRunFieldsOf: for any JSON object, runFieldsOf reads the /run fields
// json.Unmarshal into a map reads, and jsonLen counts its members.
func FuzzRunFieldsOf(f *testing.F) {
	for _, s := range []string{`{"prompt":"a","models":["m"]}`, `{"prompt":"a","prompt":"b"}`,
		`{"pr\u006fmpt":"a","x":{"prompt":"no"}}`, `{"params":{"n":[1,{"a":"}"}]},"stream":true}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil || m == nil {
			return
		}
		got := runFieldsOf(body)
		for _, name := range runFields {
			w, ok := m[name]
			g, gok := got[name]
			if ok != gok || ok && !bytes.Equal(bytes.TrimSpace(w), g) {
				t.Fatalf("body %q: field %s %q (%v), the decoder's %q (%v)", body, name, g, gok, w, ok)
			}
		}
		if n := jsonLen(bytes.TrimSpace(body)); n < len(m) {
			t.Fatalf("body %q: jsonLen %d, %d distinct members", body, n, len(m))
		}
	})
}

// contentTextDecoded is contentText as the decoder reads a content, into
// a slice of parts: the reference contentText's walk must agree with.
func contentTextDecoded(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// FuzzContentText: for any valid JSON content (as a message's field holds
// it, without leading blanks), the walk reads the text the decoder does.
func FuzzContentText(f *testing.F) {
	for _, s := range []string{`"hi"`, `[{"type":"text","text":"a"},{"type":"image_url","image_url":{}},{"type":"text","text":"b"}]`,
		`[null,{"TYPE":"text","Text":"x"}]`, `[{"type":1}]`, `[1]`, `{}`, `[{"type":"text"}]`, `[{"ty\u0070e":"text","text":"\u00e9"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) || len(raw) == 0 || raw[0] == ' ' || raw[0] == '\t' || raw[0] == '\n' || raw[0] == '\r' {
			return
		}
		if want, got := contentTextDecoded(raw), contentText(raw); want != got {
			t.Fatalf("%q: walked %q, decoded %q", raw, got, want)
		}
	})
}
