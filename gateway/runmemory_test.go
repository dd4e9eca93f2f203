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
// size in memory. Decoded whole into a map and slices before the counts
// were checked, each took 13 to 40 times its size (134 to 394 MB).
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
			if n > 3*uint64(len(tt.body)) {
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
