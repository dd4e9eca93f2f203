package simulator

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// field walks a decoded JSON value along a dotted path ("choices.0.message");
// ok is false when some step is missing.
func field(v any, path string) (any, bool) {
	for _, step := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[step]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// kindOf names the JSON type of v as the shape tables spell it.
func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		if x == float64(int64(x)) {
			return "int"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "?"
}

// matches tells whether v, present or not, fits want: "|"-separated kinds
// (string, int, number (an int is a number too), bool, null, array, object,
// absent) or "=<JSON>" for one exact value.
func matches(v any, present bool, want string) bool {
	if j, ok := strings.CutPrefix(want, "="); ok {
		var w any
		if err := json.Unmarshal([]byte(j), &w); err != nil {
			panic("bad shape value " + j)
		}
		a, _ := json.Marshal(v)
		b, _ := json.Marshal(w)
		return present && string(a) == string(b)
	}
	for _, k := range strings.Split(want, "|") {
		got := kindOf(v)
		switch {
		case k == "absent" && !present:
			return true
		case !present:
		case k == got, k == "number" && got == "int":
			return true
		}
	}
	return false
}

type shape map[string]string

func checkShape(t *testing.T, what string, body []byte, want shape) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	for path, kind := range want {
		got, ok := field(v, path)
		if !matches(got, ok, kind) {
			t.Errorf("%s: %s is %s (%v), want %s", what, path, map[bool]string{true: kindOf(got), false: "absent"}[ok], got, kind)
		}
	}
}

// usageShape is OpenRouter's usage object on chat completions.
var usageShape = shape{
	"usage.prompt_tokens": "int", "usage.completion_tokens": "int", "usage.total_tokens": "int",
	"usage.cost": "number", "usage.is_byok": "=false",
	"usage.cost_details.upstream_inference_cost":             "null",
	"usage.cost_details.upstream_inference_prompt_cost":      "number",
	"usage.cost_details.upstream_inference_completions_cost": "number",
	"usage.prompt_tokens_details.cached_tokens":              "int",
	"usage.completion_tokens_details.reasoning_tokens":       "int",
}

func with(a, b shape) shape {
	out := shape{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestShapes checks, field by field, the answers that @openrouter/sdk and
// the OpenAI SDKs validate (ChatResult, ChatStreamChunk, ModelsListResponse,
// CreateEmbeddingsResponse, OpenResponsesResult, GetCurrentKeyResponse,
// GetCreditsResponse and the error bodies).
func TestShapes(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	opts.Accounts = []Account{{ID: "user_shape", Balance: 5, Purchased: 5, Keys: []KeySpec{
		{Secret: "capped", Label: "my key", Limit: 2, LimitReset: "monthly", Usage: 0.5},
		{Secret: "mgmt", Management: true},
	}}}
	h := startSim(t, opts)
	chat := `{"model":"openai/gpt-4o","messages":[{"role":"user","content":"Say hi"}]}`
	stream := `{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"Say hi"}]}`
	tests := []struct {
		name, method, path, key, body string
		hdr                           map[string]string
		status                        int
		event                         int // for streams: which data event (-1 counts from the end); else unused
		want                          shape
	}{
		// First, before the answers below spend on the key.
		{"key", "GET", "/key", "capped", "", nil, 200, 0, shape{
			"data.label": `="my key"`, "data.limit": "=2", "data.limit_remaining": "=1.5", "data.limit_reset": `="monthly"`,
			"data.include_byok_in_limit": "=false", "data.usage": "=0.5", "data.usage_daily": "=0.5", "data.usage_weekly": "=0.5",
			"data.usage_monthly": "=0.5", "data.byok_usage": "=0", "data.byok_usage_daily": "=0", "data.byok_usage_weekly": "=0",
			"data.byok_usage_monthly": "=0", "data.is_free_tier": "=false", "data.is_management_key": "=false",
			"data.is_provisioning_key": "=false", "data.creator_user_id": `="user_shape"`, "data.expires_at": "null",
			"data.rate_limit.requests": "=-1", "data.rate_limit.interval": "string", "data.rate_limit.note": "string",
			"data.free_model_daily_requests.used": "=0", "data.free_model_daily_requests.limit": "=50",
			"data.free_model_daily_requests.remaining": "=50", "data.allowed_data_regions": "array",
			"data.organization_id": "null", "data.workspace_id": "null",
		}},
		{"chat completion", "POST", "/chat/completions", "capped", chat, nil, 200, 0, with(usageShape, shape{
			"id": "string", "object": `="chat.completion"`, "created": "int", "model": `="openai/gpt-4o"`,
			"provider": `="OpenAI"`, "system_fingerprint": "null",
			"choices.0.index": "=0", "choices.0.finish_reason": `="stop"`, "choices.0.native_finish_reason": `="stop"`,
			"choices.0.logprobs": "null", "choices.0.message.role": `="assistant"`,
			"choices.0.message.content": `="Hello from openai/gpt-4o: you said \"Say hi\""`,
			"choices.0.message.refusal": "null", "usage.cost": "=0.000075",
		})},
		{"first stream chunk", "POST", "/chat/completions", keyOK, stream, nil, 200, 0, shape{
			"id": "string", "object": `="chat.completion.chunk"`, "created": "int", "model": "string", "provider": "string",
			"system_fingerprint": "absent|string", "choices.0.delta.role": `="assistant"`, "choices.0.delta.content": "string",
			"choices.0.finish_reason": "null", "usage": "absent",
		}},
		{"usage chunk", "POST", "/chat/completions", keyOK, stream, nil, 200, -2, with(usageShape, shape{
			"object": `="chat.completion.chunk"`, "choices.0.finish_reason": `="stop"`, "choices.0.delta.content": `=""`,
		})},
		{"in-band stream error", "POST", "/chat/completions", keyOK, stream, map[string]string{HeaderFault: "inband=429"}, 200, 0, shape{
			"object": `="chat.completion.chunk"`, "error.code": "=429", "error.message": "string", "error.metadata": "absent|object",
			"choices.0.finish_reason": `="error"`, "choices.0.delta.content": `=""`,
		}},
		{"in-band error body", "POST", "/chat/completions", keyOK, chat, map[string]string{HeaderFault: "inband=503"}, 200, 0, shape{
			"error.code": "=503", "error.message": "string", "choices": "absent",
		}},
		{"models", "GET", "/models", keyOK, "", nil, 200, 0, shape{
			"data.0.id": `="openai/gpt-4o"`, "data.0.canonical_slug": "string", "data.0.name": "string", "data.0.created": "int",
			"data.0.description": "string", "data.0.context_length": "int",
			"data.0.architecture.modality": `="text->text"`, "data.0.architecture.input_modalities": `=["text"]`,
			"data.0.architecture.output_modalities": `=["text"]`, "data.0.architecture.tokenizer": "string",
			"data.0.architecture.instruct_type": "null|string",
			"data.0.pricing.prompt":             `="0.0000025"`, "data.0.pricing.completion": `="0.00001"`, "data.0.pricing.request": `="0"`,
			"data.0.pricing.image": `="0"`, "data.0.top_provider.context_length": "int",
			"data.0.top_provider.max_completion_tokens": "=16384", "data.0.top_provider.is_moderated": "bool",
			"data.0.per_request_limits": "null", "data.0.supported_parameters": "array", "data.0.default_parameters": "null",
			"data.0.supported_voices": "null", "data.0.links.details": "string", "links.next": "null", "total_count": "int",
			"data.7.id": `="meta-llama/llama-3.3-70b-instruct:free"`, "data.7.canonical_slug": `="meta-llama/llama-3.3-70b-instruct"`,
			"data.7.pricing.prompt": `="0"`, "data.7.architecture.instruct_type": `="llama3"`,
		}},
		{"embeddings", "POST", "/embeddings", "capped", `{"model":"openai/text-embedding-3-small","input":["a b","c"],"dimensions":4}`, nil, 200, 0, shape{
			"object": `="list"`, "model": "string", "id": "string", "data.0.object": `="embedding"`, "data.0.index": "=0",
			"data.0.embedding": "array", "data.0.embedding.3": "number", "data.0.embedding.4": "absent", "data.1.index": "=1",
			"usage.prompt_tokens": "=3", "usage.total_tokens": "=3", "usage.cost": "=0.00000006",
			"usage.cost_details.upstream_inference_prompt_cost": "number", "usage.cost_details.upstream_inference_completions_cost": "=0",
		}},
		{"embeddings in base64", "POST", "/embeddings", keyOK, `{"model":"m","input":"a","encoding_format":"base64","dimensions":3}`, nil, 200, 0, shape{
			"data.0.embedding": "string",
		}},
		{"response", "POST", "/responses", "capped", `{"model":"openai/gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"Say hi"}]}],"max_output_tokens":50}`, nil, 200, 0, shape{
			"id": "string", "object": `="response"`, "created_at": "int", "completed_at": "int", "status": `="completed"`,
			"model": `="openai/gpt-4o"`, "error": "null", "incomplete_details": "null", "instructions": "null",
			"max_output_tokens": "=50", "output.0.type": `="message"`, "output.0.id": "string", "output.0.status": `="completed"`,
			"output.0.role": `="assistant"`, "output.0.content.0.type": `="output_text"`,
			"output.0.content.0.text": `="Hello from openai/gpt-4o: you said \"Say hi\""`, "output.0.content.0.annotations": "=[]",
			"output_text": "string", "parallel_tool_calls": "bool", "tool_choice": `="auto"`, "tools": "=[]", "metadata": "object",
			"temperature": "null", "top_p": "null", "usage.input_tokens": "=2", "usage.output_tokens": "=7", "usage.total_tokens": "=9",
			"usage.cost": "=0.000075", "usage.input_tokens_details.cached_tokens": "=0", "usage.output_tokens_details.reasoning_tokens": "=0",
			"usage.cost_details.upstream_inference_input_cost": "number", "usage.cost_details.upstream_inference_output_cost": "number",
		}},
		{"key without a cap, old path", "GET", "/auth/key", keyOK, "", nil, 200, 0, shape{
			"data.limit": "null", "data.limit_remaining": "null", "data.limit_reset": "null", "data.usage": "number",
			"data.free_model_daily_requests.limit": "=1000", "data.creator_user_id": "string", "data.label": "string",
		}},
		{"credits with an inference key", "GET", "/credits", "capped", "", nil, 403, 0, shape{
			"error.code": "=403", "error.message": `="Only management keys can perform this operation"`,
		}},
		{"credits with a management key", "GET", "/credits", "mgmt", "", nil, 200, 0, shape{
			"data.total_credits": "=5", "data.total_usage": "number",
		}},
		{"management key on completions", "POST", "/chat/completions", "mgmt", chat, nil, 403, 0, shape{"error.code": "=403"}},
		{"unknown key", "POST", "/chat/completions", "nope", chat, nil, 401, 0, shape{
			"error.message": `="User not found."`, "error.code": "=401",
		}},
		{"generic 429", "POST", "/chat/completions", keyOK, chat, map[string]string{HeaderFault: "status=429"}, 429, 0, shape{
			"error.code": "=429", "error.message": `="Rate limit exceeded"`, "error.metadata.error_type": `="rate_limit_exceeded"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(tt.method, tt.path, tt.key, tt.body, tt.hdr)
			if r.status != tt.status || r.err != nil {
				t.Fatalf("status %d (%v), want %d: %s", r.status, r.err, tt.status, r.body)
			}
			body := r.body
			if strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
				evs := parseEvents(t, body)
				i := tt.event
				if i < 0 {
					i += len(evs)
				}
				body = []byte(evs[i])
			}
			checkShape(t, tt.name, body, tt.want)
		})
	}
}

// TestResponsesStream checks the Responses API's event stream: typed
// events with increasing sequence numbers, deltas that add up to the text,
// and response.completed with the usage and cost last.
func TestResponsesStream(t *testing.T) {
	t.Parallel()
	h := startSim(t, testOptions())
	r := h.do("POST", "/responses", keyOK, `{"model":"openai/gpt-4o","input":"Say hi","stream":true}`, nil)
	if r.status != 200 || !strings.HasPrefix(string(r.body), processing) {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var types []string
	var text strings.Builder
	var last map[string]any
	for i, ev := range parseEvents(t, r.body) {
		var e map[string]any
		if err := json.Unmarshal([]byte(ev), &e); err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}
		if e["sequence_number"] != float64(i) {
			t.Errorf("event %d has sequence_number %v", i, e["sequence_number"])
		}
		typ, _ := e["type"].(string)
		types = append(types, typ)
		if typ == "response.output_text.delta" {
			text.WriteString(e["delta"].(string))
		}
		last = e
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	if len(types) < 9 || strings.Join(types[:4], ",") != strings.Join(want, ",") || types[len(types)-1] != "response.completed" {
		t.Errorf("event types %v", types)
	}
	if text.String() != `Hello from openai/gpt-4o: you said "Say hi"` {
		t.Errorf("deltas add up to %q", text.String())
	}
	b, _ := json.Marshal(last)
	checkShape(t, "response.completed", b, shape{"response.status": `="completed"`, "response.usage.cost": "=0.000075", "response.output.0.content.0.text": "string"})
}

// TestMatches keeps the shape checker honest: each kind rejects the others.
func TestMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v       any
		present bool
		want    string
		ok      bool
	}{
		{nil, true, "null", true}, {nil, false, "null", false}, {nil, false, "absent", true},
		{"x", true, "string", true}, {"x", true, "number", false}, {1.0, true, "number", true},
		{1.5, true, "int", false}, {true, true, "=true", true}, {false, true, "=true", false},
		{[]any{}, true, "object|array", true}, {"a", true, `="b"`, false}, {nil, true, "absent", false},
	}
	for _, tt := range tests {
		if got := matches(tt.v, tt.present, tt.want); got != tt.ok {
			t.Errorf("matches(%v, %v, %q) = %v", tt.v, tt.present, tt.want, got)
		}
	}
}
