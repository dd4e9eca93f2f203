package simulator

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// jsonModeSchema is the schema of the JSON-mode tests: the simulator
// lists "response_format" among every chat model's supported_parameters,
// and a JSON-mode request must get JSON, as from OpenRouter: the openai
// SDKs' chat.completions.parse() and responses.parse() threw SyntaxError
// ("Unexpected token 'H'") on the plain "Hello from …" text.
var jsonModeSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"answer": map[string]any{"type": "string"},
		"count":  map[string]any{"type": "integer"},
		"ok":     map[string]any{"type": "boolean"},
		"tags":   map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"mood":   map[string]any{"type": "string", "enum": []string{"calm", "busy"}},
		"inner": map[string]any{"type": "object", "properties": map[string]any{
			"n": map[string]any{"type": []string{"number", "null"}},
		}, "required": []string{"n"}, "additionalProperties": false},
	},
	"required":             []string{"answer", "count", "ok", "tags", "mood", "inner"},
	"additionalProperties": false,
}

// checkSchemaReply fails unless content is a JSON object that fits jsonModeSchema.
func checkSchemaReply(t *testing.T, content string) {
	t.Helper()
	var got struct {
		Answer *string   `json:"answer"`
		Count  *int      `json:"count"`
		OK     *bool     `json:"ok"`
		Tags   *[]string `json:"tags"`
		Mood   *string   `json:"mood"`
		Inner  *struct {
			N *float64 `json:"n"`
		} `json:"inner"`
	}
	dec := json.NewDecoder(strings.NewReader(content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("content %q is not an object of the schema: %v", content, err)
	}
	if got.Answer == nil || !strings.Contains(*got.Answer, "Hello from") || got.Count == nil || got.OK == nil || got.Tags == nil || got.Inner == nil {
		t.Fatalf("content %q lacks a required property (answer should hold the reply)", content)
	}
	if got.Mood == nil || (*got.Mood != "calm" && *got.Mood != "busy") {
		t.Fatalf("content %q: mood is not one of its enum", content)
	}
}

func TestJSONModeChatAnswersJSON(t *testing.T) {
	h := startSim(t, testOptions())
	prompt := `say "hi" \ back`
	for _, tc := range []struct {
		name   string
		format map[string]any
		check  func(t *testing.T, content string)
	}{
		{"json_object", map[string]any{"type": "json_object"}, func(t *testing.T, content string) {
			var v map[string]any
			if err := json.Unmarshal([]byte(content), &v); err != nil {
				t.Fatalf("content %q is not a JSON object: %v", content, err)
			}
		}},
		{"json_schema", map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "a", "strict": true, "schema": jsonModeSchema}}, checkSchemaReply},
	} {
		for _, stream := range []bool{false, true} {
			body, _ := json.Marshal(map[string]any{
				"model": "openai/gpt-4o-mini", "stream": stream, "response_format": tc.format,
				"messages": []map[string]string{{"role": "user", "content": prompt}},
			})
			r := h.do(http.MethodPost, "/chat/completions", keyOK, string(body), nil)
			if r.status != http.StatusOK {
				t.Fatalf("%s stream=%v: status %d: %s", tc.name, stream, r.status, r.body)
			}
			var content string
			if !stream {
				var v struct {
					Choices []struct {
						Message struct{ Content string } `json:"message"`
					} `json:"choices"`
				}
				if err := json.Unmarshal(r.body, &v); err != nil || len(v.Choices) != 1 {
					t.Fatalf("%s: body %s: %v", tc.name, r.body, err)
				}
				content = v.Choices[0].Message.Content
			} else {
				for _, ev := range parseEvents(t, r.body) {
					if ev == "[DONE]" {
						continue
					}
					var c struct {
						Choices []struct {
							Delta struct{ Content string } `json:"delta"`
						} `json:"choices"`
					}
					if err := json.Unmarshal([]byte(ev), &c); err != nil {
						t.Fatalf("%s: event %s: %v", tc.name, ev, err)
					}
					for _, ch := range c.Choices {
						content += ch.Delta.Content
					}
				}
			}
			t.Run(tc.name, func(t *testing.T) { tc.check(t, content) })
		}
	}
}

func TestJSONModeResponsesAnswersJSON(t *testing.T) {
	h := startSim(t, testOptions())
	body, _ := json.Marshal(map[string]any{
		"model": "openai/gpt-4o-mini", "input": "hi",
		"text": map[string]any{"format": map[string]any{"type": "json_schema", "name": "a", "strict": true, "schema": jsonModeSchema}},
	})
	r := h.do(http.MethodPost, "/responses", keyOK, string(body), nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var v struct {
		Output []struct {
			Content []struct{ Text string } `json:"content"`
		} `json:"output"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || len(v.Output) != 1 || len(v.Output[0].Content) != 1 {
		t.Fatalf("body %s: %v", r.body, err)
	}
	checkSchemaReply(t, v.Output[0].Content[0].Text)
}
