package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

const testMaxModels = 32

func TestDecodeRunRequestValid(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name, body string
		prompt     string
		models     []string
		randomKey  *bool
		params     string // JSON of the params kept, "" for none
	}{
		{"minimal", `{"prompt":"hi","models":["a/b"]}`, "hi", []string{"a/b"}, nil, ""},
		{"UTF-8 byte order mark", "\xef\xbb\xbf{\"prompt\":\"hi\",\"models\":[\"a/b\"]}\r\n", "hi", []string{"a/b"}, nil, ""},
		{"white space", " \n\t{\"prompt\" : \"hi\", \"models\" : [ \"a/b\" , \"c/d\" ]}\r\n", "hi", []string{"a/b", "c/d"}, nil, ""},
		{"random_key true", `{"prompt":"hi","models":["a"],"random_key":true}`, "hi", []string{"a"}, &yes, ""},
		{"random_key false", `{"prompt":"hi","models":["a"],"random_key":false}`, "hi", []string{"a"}, &no, ""},
		{"nulls are absent", `{"prompt":"hi","models":["a"],"random_key":null,"params":null}`, "hi", []string{"a"}, nil, ""},
		{"duplicate models kept", `{"prompt":"hi","models":["a","a"]}`, "hi", []string{"a", "a"}, nil, ""},
		{"unicode", `{"prompt":"h\u00e9 \ud83d\ude00","models":["m/\u00fc"]}`, "hé 😀", []string{"m/ü"}, nil, ""},
		{"unknown fields ignored", `{"prompt":"hi","models":["a"],"stream":true,"extra":{}}`, "hi", []string{"a"}, nil, ""},
		{"last duplicate field wins", `{"prompt":"","prompt":"hi","models":["a"]}`, "hi", []string{"a"}, nil, ""},
		{"params kept raw", `{"prompt":"hi","models":["a"],"params":{"temperature":0.70,"max_tokens":5,"stop":["x"]}}`,
			"hi", []string{"a"}, nil, `{"max_tokens":5,"stop":["x"],"temperature":0.70}`},
		{"params cannot set owned fields", `{"prompt":"hi","models":["a"],"params":{"model":"x","messages":[],"stream":true,"Model":"x","STREAM":true,"ſtream":true,"meſſages":[],"top_p":1}}`,
			"hi", []string{"a"}, nil, `{"top_p":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := decodeRunRequest([]byte(tc.body), testMaxModels)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if req.Prompt != tc.prompt || !reflect.DeepEqual(req.Models, tc.models) || !reflect.DeepEqual(req.RandomKey, tc.randomKey) {
				t.Fatalf("got %q %q %v, want %q %q %v", req.Prompt, req.Models, req.RandomKey, tc.prompt, tc.models, tc.randomKey)
			}
			got := ""
			if req.Params != nil {
				b, _ := json.Marshal(req.Params)
				got = string(b)
			}
			if got != tc.params {
				t.Fatalf("params %s, want %s", got, tc.params)
			}
		})
	}
}

// badRunBodies are invalid /run bodies and a word the error must contain.
var badRunBodies = []struct{ body, want string }{
	{``, "empty"},
	{"  \n", "empty"},
	{"\xef\xbb\xbf", "empty"},
	{"\xef\xbb\xbf\xef\xbb\xbf{}", "must be a JSON object"},
	{"{\"prompt\":\"Erkl\xe4re Rekursion\",\"models\":[\"a\"]}", "not UTF-8"},
	{"{\"prompt\":\"hi\",\"models\":[\"a\"],\"params\":{\"user\":\"\xff\"}}", "not UTF-8"},
	{`prompt=hi`, "JSON object"},
	{`{"prompt":"hi","models":[`, "not valid JSON"},
	{`{"prompt":"hi","models":["a"]} x`, "not valid JSON"},
	{`{"prompt":"hi","models":["a"]}{}`, "not valid JSON"},
	{`{"prompt":"hi",}`, "not valid JSON"},
	{`[]`, "JSON object"},
	{`"hi"`, "JSON object"},
	{`1`, "JSON object"},
	{`null`, "JSON object"},
	{`false`, "JSON object"},
	{`{"models":["a"]}`, `"prompt" is required`},
	{`{"prompt":null,"models":["a"]}`, `"prompt" is required`},
	{`{"prompt":"","models":["a"]}`, `"prompt" must not be empty`},
	{`{"prompt":"\t \n","models":["a"]}`, `"prompt" must not be empty`},
	{`{"prompt":1,"models":["a"]}`, `"prompt" must be a string`},
	{`{"prompt":["hi"],"models":["a"]}`, `"prompt" must be a string`},
	{`{"prompt":{},"models":["a"]}`, `"prompt" must be a string`},
	{`{"prompt":true,"models":["a"]}`, `"prompt" must be a string`},
	{`{"prompt":"hi"}`, `"models" is required`},
	{`{"prompt":"hi","models":null}`, `"models" is required`},
	{`{"prompt":"hi","models":[]}`, `"models" must not be empty`},
	{`{"prompt":"hi","models":"a"}`, `"models" must be an array`},
	{`{"prompt":"hi","models":{"a":1}}`, `"models" must be an array`},
	{`{"prompt":"hi","models":7}`, `"models" must be an array`},
	{`{"prompt":"hi","models":["a",1]}`, `"models[1]" must be a string`},
	{`{"prompt":"hi","models":[null]}`, `"models[0]" must be a string`},
	{`{"prompt":"hi","models":[{}]}`, `"models[0]" must be a string`},
	{`{"prompt":"hi","models":[["a"]]}`, `"models[0]" must be a string`},
	{`{"prompt":"hi","models":[true]}`, `"models[0]" must be a string`},
	{`{"prompt":"hi","models":["a",""]}`, `"models[1]" must not be empty`},
	{`{"prompt":"hi","models":[" "]}`, `"models[0]" must not be empty`},
	{`{"prompt":"hi","models":["a","b\n✅ forged line"]}`, `"models[1]" must not contain control characters`},
	{`{"prompt":"hi","models":["a\u001b[31m"]}`, `"models[0]" must not contain control characters`},
	{`{"prompt":"hi","models":["a\rb"]}`, `"models[0]" must not contain control characters`},
	{`{"prompt":"hi","models":["a","openai/gpt-4o\u200b"]}`, `"models[1]" must not contain invisible characters (U+200B)`},
	{`{"prompt":"hi","models":["m/\u202eo4-tpg"]}`, `"models[0]" must not contain invisible characters (U+202E)`},
	{`{"prompt":"hi","models":["a\u2028b"]}`, `"models[0]" must not contain invisible characters (U+2028)`},
	{`{"prompt":"hi","models":["a","openai/gpt-4o "]}`, `"models[1]" has blanks around it: "openai/gpt-4o "`},
	{`{"prompt":"hi","models":["\u00a0openai/gpt-4o"]}`, `"models[0]" has blanks around it`},
	{`{"prompt":"hi","models":["a","m/` + strings.Repeat("x", 255) + `"]}`, `"models[1]" is 257 bytes long; a model name has at most 256`},
	{`{"prompt":"hi","models":[` + strings.Repeat(`"a",`, 32) + `"a"]}`, `"models" has 33 entries; at most 32`},
	{`{"prompt":"hi","models":["a"],"random_key":"true"}`, `"random_key"`},
	{`{"prompt":"hi","models":["a"],"random_key":0}`, `"random_key"`},
	{`{"prompt":"hi","models":["a"],"random_key":[]}`, `"random_key"`},
	{`{"prompt":"hi","models":["a"],"random_key":{}}`, `"random_key"`},
	{`{"prompt":"hi","models":["a"],"params":[]}`, `"params"`},
	{`{"prompt":"hi","models":["a"],"params":"x"}`, `"params"`},
	{`{"prompt":"hi","models":["a"],"params":1}`, `"params"`},
	{`{"prompt":"hi","models":["a"],"params":false}`, `"params"`},
	{`{"prompt":"hi","messages":[{"role":"user","content":"x"}],"models":["a"]}`, `not both`},
	{`{"messages":[],"models":["a"]}`, `"messages" must not be empty`},
	{`{"messages":{"role":"user"},"models":["a"]}`, `"messages" must be an array`},
	{`{"messages":[1],"models":["a"]}`, `"messages" must be an array`},
	{`{"messages":[{"content":"x"}],"models":["a"]}`, `"messages[0]" must be an object with a "role"`},
	{`{"messages":[{"role":""}],"models":["a"]}`, `"messages[0]" must be an object with a "role"`},
	{`{"prompt":"hi","models":["a"],"stream":"true"}`, `"stream" must be true or false`},
}

func TestDecodeRunRequestMessages(t *testing.T) {
	for _, tc := range []struct{ body, prompt string }{
		{`{"messages":[{"role":"user","content":"hi"}],"models":["a"]}`, "hi"},
		{`{"messages":[{"role":"user","content":"one"},{"role":"assistant","content":"x"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]}],"models":["a"]}`, "a\nb"},
		{`{"messages":[{"role":"system","content":"only"}],"models":["a"]}`, ""},
	} {
		req, err := decodeRunRequest([]byte(tc.body), testMaxModels)
		if err != nil || req.Prompt != tc.prompt || req.Messages == nil {
			t.Fatalf("%s: %+v %v, want prompt %q", tc.body, req, err, tc.prompt)
		}
		body, err := req.chatBodyStream("a", true)
		if err != nil || !strings.Contains(string(body), `"messages":`+string(req.Messages)) ||
			!strings.Contains(string(body), `"stream":true`) || !strings.Contains(string(body), `"stream_options":{"include_usage":true}`) {
			t.Fatalf("chat body %s (%v)", body, err)
		}
	}
}

func TestDecodeRunRequestInvalid(t *testing.T) {
	for _, tc := range badRunBodies {
		t.Run(tc.body, func(t *testing.T) {
			req, err := decodeRunRequest([]byte(tc.body), testMaxModels)
			if err == nil || req != nil {
				t.Fatalf("accepted: %+v", req)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRunRequestMaxModels(t *testing.T) {
	body := []byte(`{"prompt":"hi","models":["a","b","c"]}`)
	if _, err := decodeRunRequest(body, 3); err != nil {
		t.Fatalf("3 models, max 3: %v", err)
	}
	if _, err := decodeRunRequest(body, 2); err == nil || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("3 models, max 2: error %v", err)
	}
}

// TestChatBody decodes the upstream body as a Go upstream would (field
// names matched case-insensitively): the gateway's model, messages and
// stream must win over anything in params.
func TestChatBody(t *testing.T) {
	req, err := decodeRunRequest([]byte(`{"prompt":"say hi","models":["a/b"],"params":{"temperature":0.5,"max_tokens":9,`+
		`"model":"evil","Model":"evil","messages":[{"role":"system","content":"evil"}],"meſſages":[],"stream":true,"ſtream":true}}`), testMaxModels)
	if err != nil {
		t.Fatal(err)
	}
	checkChatBody(t, req, "a/b")
	body, _ := req.chatBody("a/b")
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m["temperature"] != 0.5 || m["max_tokens"] != 9.0 {
		t.Fatalf("params not merged: %s", body)
	}
}

// TestChatBodyStreamOptions: params' stream_options go out with a stream
// only. Beside "stream": false OpenAI refuses them (400 "The
// 'stream_options' parameter is only allowed when 'stream' is enabled"),
// so params shared by a client's plain and streamed /runs failed every
// model of the plain ones.
func TestChatBodyStreamOptions(t *testing.T) {
	for _, tc := range []struct {
		name, params string
		stream       bool
		want         string // the stream_options sent, "" for none
	}{
		{"plain, none", `{}`, false, ""},
		{"plain, the client's", `{"stream_options":{"include_usage":true}}`, false, ""},
		{"streamed, none", `{}`, true, `{"include_usage":true}`},
		{"streamed, the client's", `{"stream_options":{"include_usage":false}}`, true, `{"include_usage":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := decodeRunRequest([]byte(`{"prompt":"hi","models":["a"],"params":`+tc.params+`}`), testMaxModels)
			if err != nil {
				t.Fatal(err)
			}
			body, err := req.chatBodyStream("a", tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("chat body %s: %v", body, err)
			}
			if string(got["stream_options"]) != tc.want || string(got["stream"]) != map[bool]string{true: "true", false: "false"}[tc.stream] {
				t.Errorf("chat body %s: want stream %v, stream_options %q", body, tc.stream, tc.want)
			}
		})
	}
}

// checkChatBody checks the chat-completion body of req for model.
func checkChatBody(t testing.TB, req *runRequest, model string) {
	t.Helper()
	body, err := req.chatBody(model)
	if err != nil {
		t.Fatalf("chatBody: %v", err)
	}
	var got struct {
		Model    string
		Stream   *bool
		Messages []struct{ Role, Content string }
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("chat body %s: %v", body, err)
	}
	wantMsgs := []struct{ Role, Content string }{{"user", req.Prompt}}
	if got.Model != model || got.Stream == nil || *got.Stream || !reflect.DeepEqual(got.Messages, wantMsgs) {
		t.Fatalf("chat body %s: model, messages or stream not the gateway's", body)
	}
}

// acceptable is an independent reading of the /run request rules: it says
// whether body is a valid request. White space around the body, Unicode's
// included, is forgiven, and so is a UTF-8 byte order mark before it.
func acceptable(body []byte, maxModels int) bool {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\ufeff")))
	if !utf8.Valid(body) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil || dec.InputOffset() != int64(len(body)) {
		return false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if st, ok := m["stream"]; ok && st != nil {
		if _, ok := st.(bool); !ok {
			return false
		}
	}
	if msgs, ok := m["messages"]; ok && msgs != nil {
		if p, ok := m["prompt"]; ok && p != nil {
			return false
		}
		list, ok := msgs.([]any)
		if !ok || len(list) == 0 || len(list) > 1024 {
			return false
		}
		for _, x := range list {
			msg, ok := x.(map[string]any)
			if !ok {
				return false
			}
			if role, ok := msg["role"].(string); !ok || role == "" {
				return false
			}
		}
	} else if p, ok := m["prompt"].(string); !ok || strings.TrimSpace(p) == "" {
		return false
	}
	models, ok := m["models"].([]any)
	if !ok || len(models) < 1 || len(models) > maxModels {
		return false
	}
	for _, x := range models {
		if s, ok := x.(string); !ok || strings.TrimSpace(s) != s || s == "" || len(s) > 256 || strings.ContainsFunc(s, unicode.IsControl) ||
			strings.ContainsFunc(s, func(r rune) bool { return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) }) {
			return false
		}
	}
	if rk := m["random_key"]; rk != nil {
		if _, ok := rk.(bool); !ok {
			return false
		}
	}
	if p := m["params"]; p != nil {
		if _, ok := p.(map[string]any); !ok {
			return false
		}
	}
	return true
}

func FuzzDecodeRunRequest(f *testing.F) {
	for _, tc := range badRunBodies {
		f.Add([]byte(tc.body))
	}
	for _, s := range []string{
		`{"prompt":"hi","models":["a/b"]}`,
		`{"prompt":"hi","models":["a","a"],"random_key":true,"params":{"temperature":0.7}}`,
		`{"prompt":"hi","models":["a"],"random_key":false,"params":{"model":"x","ſtream":true,"Messages":[]}}`,
		`{"prompt":"hi","models":["a"],"params":{"n":1e999}}`,
		"{\"prompt\":\"\xff\",\"models\":[\"\xfe\"]}",
		`{"prompt":"hi","models":["` + strings.Repeat(`a","`, 31) + `a"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeRunRequest(body, testMaxModels)
		if want := acceptable(body, testMaxModels); (err == nil) != want {
			t.Fatalf("decodeRunRequest(%q) error %v; want accepted=%v", body, err, want)
		}
		if err != nil {
			if req != nil || err.Error() == "" {
				t.Fatalf("error %v with request %+v", err, req)
			}
			return
		}
		if (req.Messages == nil && strings.TrimSpace(req.Prompt) == "") || len(req.Models) < 1 || len(req.Models) > testMaxModels {
			t.Fatalf("accepted prompt %q with %d models", req.Prompt, len(req.Models))
		}
		for i, m := range req.Models {
			if strings.TrimSpace(m) == "" {
				t.Fatalf("accepted empty models[%d]", i)
			}
		}
		for k := range req.Params {
			if isGatewayOwned(k) {
				t.Fatalf("params kept gateway-owned field %q", k)
			}
		}
		if req.Messages == nil {
			checkChatBody(t, req, req.Models[0])
		}
	})
}
