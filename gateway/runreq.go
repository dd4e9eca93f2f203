package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// runRequest is a decoded, valid POST /run body.
type runRequest struct {
	// Prompt is the user message; with Messages, the text of the last
	// user message among them.
	Prompt string
	// Messages is the client's OpenAI chat messages array, sent as it is
	// instead of one user message built from Prompt; nil with a prompt.
	Messages json.RawMessage
	// Stream asks for the answer as server-sent events.
	Stream bool
	Models []string
	// RandomKey is nil when the client left the choice to KEY_ROTATION.
	RandomKey *bool
	// Params are extra chat-completion fields, merged into every call.
	Params map[string]json.RawMessage
	// shared is the chat body without its model, "{...}" (buildShared),
	// built for a stream when sharedStream.
	shared       []byte
	sharedStream bool
}

// gatewayOwned are chat-completion fields /run sets itself; params cannot
// override them.
var gatewayOwned = [...]string{"model", "messages", "stream"}

// isGatewayOwned reports whether a params field names a gateway-owned one.
// Names are compared folded: decoders such as Go's encoding/json match
// field names case-insensitively ("Model", "ſtream"), and a folded twin
// sorted after the gateway's own field would override it.
func isGatewayOwned(name string) bool {
	for _, f := range gatewayOwned {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	return false
}

// decodeRunRequest validates a /run body. Its errors name the field at
// fault and are meant for the client as they are.
func decodeRunRequest(body []byte, maxModels int) (*runRequest, error) {
	// A UTF-8 byte order mark is forgiven, as RFC 8259 allows: Windows
	// tools write one at the start of a file (PowerShell's Out-File and
	// Set-Content -Encoding UTF8, older Notepad), and curl -d @file sends
	// it, where the request was refused as not a JSON object.
	body = bytes.TrimSpace(bytes.TrimPrefix(body, utf8BOM))
	if len(body) == 0 {
		return nil, errors.New(`request body is empty: want a JSON object with "prompt" and "models"`)
	}
	// Go's decoder would take bytes that are not UTF-8 as U+FFFD, and
	// the models would get a prompt with its accents gone: Windows
	// PowerShell sends a body as ISO-8859-1 unless told the charset.
	if !utf8.Valid(body) {
		return nil, errors.New(`request body is not UTF-8, as JSON must be: send it UTF-8 encoded (from PowerShell: -ContentType 'application/json; charset=utf-8')`)
	}
	// Checked, not decoded: into a struct without fields the decoder
	// skips every value without a copy. Decoded into a map, and arrays
	// decoded before their length was checked, a body of MAX_BODY_BYTES
	// made of many small entries took 30 to 40 times its size in memory
	// before it was refused.
	if err := json.Unmarshal(body, &struct{}{}); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) || body[0] != '{' {
			return nil, errors.New(`request body must be a JSON object with "prompt" and "models"`)
		}
		return nil, fmt.Errorf("request body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if body[0] != '{' {
		return nil, errors.New(`request body must be a JSON object with "prompt" and "models"`)
	}
	fields := runFieldsOf(body)
	req := &runRequest{}

	raw, ok := present(fields, "prompt")
	msgs, withMessages := present(fields, "messages")
	switch {
	case ok && withMessages:
		return nil, errors.New(`give "prompt" or "messages", not both`)
	case withMessages:
		if err := req.decodeMessages(msgs); err != nil {
			return nil, err
		}
	case !ok:
		return nil, errors.New(`"prompt" is required: the message to send to every model (or "messages", an OpenAI chat messages array)`)
	default:
		if json.Unmarshal(raw, &req.Prompt) != nil || raw[0] != '"' {
			return nil, errors.New(`"prompt" must be a string`)
		}
		if strings.TrimSpace(req.Prompt) == "" {
			return nil, errors.New(`"prompt" must not be empty`)
		}
	}

	if raw, ok = present(fields, "stream"); ok {
		if json.Unmarshal(raw, &req.Stream) != nil {
			return nil, errors.New(`"stream" must be true or false`)
		}
	}

	raw, ok = present(fields, "models")
	if !ok {
		return nil, errors.New(`"models" is required: an array of model names, like ["openai/gpt-4o"]`)
	}
	if raw[0] != '[' {
		return nil, errors.New(`"models" must be an array of model names`)
	}
	switch n := jsonLen(raw); {
	case n == 0:
		return nil, errors.New(`"models" must not be empty`)
	case n > maxModels:
		return nil, fmt.Errorf(`"models" has %d entries; at most %d are allowed (RUN_MAX_MODELS)`, n, maxModels)
	}
	var models []json.RawMessage
	if json.Unmarshal(raw, &models) != nil {
		return nil, errors.New(`"models" must be an array of model names`)
	}
	req.Models = make([]string, len(models))
	for i, m := range models {
		if len(m) == 0 || m[0] != '"' || json.Unmarshal(m, &req.Models[i]) != nil {
			return nil, fmt.Errorf(`"models[%d]" must be a string`, i)
		}
		if strings.TrimSpace(req.Models[i]) == "" {
			return nil, fmt.Errorf(`"models[%d]" must not be empty`, i)
		}
		// A model id is printed whole in each of its call's console
		// lines: one of megabytes would write them many times over.
		if len(req.Models[i]) > maxModelName {
			return nil, fmt.Errorf(`"models[%d]" is %d bytes long; a model name has at most %d`, i, len(req.Models[i]), maxModelName)
		}
		// A model id is printed in console lines: a newline in it would
		// forge a line of its own.
		if strings.ContainsFunc(req.Models[i], unicode.IsControl) {
			return nil, fmt.Errorf(`"models[%d]" must not contain control characters`, i)
		}
		// Nor invisible ones: a zero-width space pasted with an id, or a
		// bidi override that shows it as another, would name a model the
		// user cannot see.
		if j := strings.IndexFunc(req.Models[i], invisible); j >= 0 {
			r, _ := utf8.DecodeRuneInString(req.Models[i][j:])
			return nil, fmt.Errorf(`"models[%d]" must not contain invisible characters (U+%04X)`, i, r)
		}
		// No model id has blanks around it, and upstream's "not a valid
		// model ID" quotes one pasted with them without showing them.
		if strings.TrimSpace(req.Models[i]) != req.Models[i] {
			return nil, fmt.Errorf(`"models[%d]" has blanks around it: %q`, i, req.Models[i])
		}
	}

	if raw, ok = present(fields, "random_key"); ok {
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return nil, errors.New(`"random_key" must be true or false`)
		}
		req.RandomKey = &b
	}

	if raw, ok = present(fields, "params"); ok {
		if raw[0] != '{' {
			return nil, errors.New(`"params" must be a JSON object of chat-completion fields, like {"temperature": 0.7}`)
		}
		if n := jsonLen(raw); n > maxParams {
			return nil, fmt.Errorf(`"params" has %d fields; at most %d are allowed`, n, maxParams)
		}
		if json.Unmarshal(raw, &req.Params) != nil {
			return nil, errors.New(`"params" must be a JSON object of chat-completion fields, like {"temperature": 0.7}`)
		}
		for f := range req.Params {
			if isGatewayOwned(f) {
				delete(req.Params, f)
			}
		}
	}
	return req, nil
}

var utf8BOM = []byte("\xef\xbb\xbf")

// maxParams bounds the fields of /run's params: a chat completion has a
// few dozen, and each is a map entry and an encoded field of every
// model's body.
const maxParams = 256

// runFields are the top-level fields of a /run body.
var runFields = [...]string{"prompt", "messages", "stream", "models", "random_key", "params"}

// runFieldsOf returns the /run fields of body, a valid JSON object, as
// json.Unmarshal into a map would: the last of each name, escaped keys
// read, values copied (the body is not kept). Other fields are skipped,
// not copied: a body of many unknown fields costs no map entry each.
func runFieldsOf(body []byte) map[string]json.RawMessage {
	fields := make(map[string]json.RawMessage, len(runFields))
	members(body, func(key, value []byte) bool {
		for _, f := range runFields {
			if keyIs(key, f) {
				fields[f] = bytes.Clone(value)
				break
			}
		}
		return true
	})
	return fields
}

// present returns a field's raw value; JSON null counts as absent.
func present(fields map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := fields[name]
	if !ok || len(raw) == 0 || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// buildShared encodes, once per /run, everything of the chat-completion
// body but the model: the messages (the prompt, escaped, or the client's
// messages), the params, and whether it streams (a stream asks for its
// usage chunk unless params set stream_options themselves; a plain call
// drops theirs). Every model's body is its model and these bytes.
func (r *runRequest) buildShared(stream bool) error {
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	body := make(map[string]any, len(r.Params)+3)
	for k, v := range r.Params {
		body[k] = v
	}
	if r.Messages != nil {
		body["messages"] = r.Messages
	} else {
		body["messages"] = []message{{Role: "user", Content: r.Prompt}}
	}
	body["stream"] = stream
	switch _, set := body["stream_options"]; {
	case !stream:
		// A plain call takes none: OpenAI and others refuse
		// stream_options beside "stream": false (400), and /run sets
		// stream itself, so params shared with streamed /runs hold it.
		delete(body, "stream_options")
	case !set:
		body["stream_options"] = streamUsage
	}
	shared, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding the chat body: %w", err)
	}
	r.shared, r.sharedStream = shared, stream
	return nil
}

// chatBody builds the chat-completion request for one model, not streamed.
func (r *runRequest) chatBody(model string) ([]byte, error) { return r.chatBodyStream(model, false) }

// chatBodyStream builds the chat-completion request for one model, asking
// for a stream or not, from the shared part (built here if it was not yet,
// or was built for the other form).
func (r *runRequest) chatBodyStream(model string, stream bool) ([]byte, error) {
	if r.shared == nil || r.sharedStream != stream {
		if err := r.buildShared(stream); err != nil {
			return nil, err
		}
	}
	m, err := json.Marshal(model)
	if err != nil {
		return nil, fmt.Errorf("encoding the model name: %w", err)
	}
	body := make([]byte, 0, len(`{"model":,`)+len(m)+len(r.shared))
	body = append(body, `{"model":`...)
	body = append(body, m...)
	body = append(body, ',')
	return append(body, r.shared[1:]...), nil
}

// bodySize is the size of the body chatBodyStream builds for model, in the
// form the shared part was built for (buildShared first).
func (r *runRequest) bodySize(model string) int {
	m, err := json.Marshal(model)
	if err != nil {
		return len(r.shared)
	}
	return len(`{"model":,`) + len(m) + len(r.shared) - 1
}

var streamUsage = json.RawMessage(`{"include_usage":true}`)

// invisible reports a format character (zero-width, bidi) or a line or
// paragraph separator.
func invisible(r rune) bool {
	return r >= 0x80 && (unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp))
}

// maxModelName bounds a /run model name, in bytes: model ids are tens of
// characters ("meta-llama/llama-3.3-70b-instruct:free").
const maxModelName = 256

// maxMessages bounds a /run messages array.
const maxMessages = 1024

// decodeMessages checks a messages array (objects with a string role) and
// takes the text of its last user message as the prompt.
func (r *runRequest) decodeMessages(raw json.RawMessage) error {
	if raw[0] != '[' {
		return errors.New(`"messages" must be an array of chat messages, like [{"role":"user","content":"hi"}]`)
	}
	switch n := jsonLen(raw); {
	case n == 0:
		return errors.New(`"messages" must not be empty`)
	case n > maxMessages:
		return fmt.Errorf(`"messages" has %d entries; at most %d are allowed`, n, maxMessages)
	}
	// Into structs, not maps: the decoder skips a message's other fields
	// without a copy (one message of many small fields took 16 times the
	// body in a map).
	var msgs []struct {
		Role    json.RawMessage `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &msgs) != nil {
		return errors.New(`"messages" must be an array of chat messages, like [{"role":"user","content":"hi"}]`)
	}
	roles := make([]string, len(msgs))
	for i, m := range msgs {
		if len(m.Role) == 0 || m.Role[0] != '"' || json.Unmarshal(m.Role, &roles[i]) != nil || roles[i] == "" {
			return fmt.Errorf(`"messages[%d]" must be an object with a "role"`, i)
		}
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if roles[i] == "user" {
			r.Prompt = contentText(msgs[i].Content)
			break
		}
	}
	r.Messages = raw
	return nil
}

// contentText is the text of a message's content: a string, or the text
// parts of an array of content parts, joined by newlines.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	// Part by part, by their members, not decoded into a slice of them:
	// a content of many small parts took ten times the body so. As the
	// decoder reads them: keys case aside, a null part empty, a part or
	// a field of another type failing the whole.
	var b strings.Builder
	n, bad := 0, len(raw) == 0 || raw[0] != '['
	elements(raw, func(p []byte) bool {
		if p[0] != '{' {
			bad = string(p) != "null"
			return !bad
		}
		var typ, text []byte
		members(p, func(key, value []byte) bool {
			switch {
			case keyFold(key, "type"):
				typ = value
			case keyFold(key, "text"):
				text = value
			}
			return true
		})
		for _, v := range [...][]byte{typ, text} {
			if len(v) > 0 && v[0] != '"' && string(v) != "null" {
				bad = true
				return false
			}
		}
		if len(typ) > 0 && typ[0] == '"' && keyIs(typ, "text") {
			if n > 0 {
				b.WriteByte('\n')
			}
			n++
			if len(text) > 0 && text[0] == '"' {
				b.WriteString(unquote(text))
			}
		}
		return true
	})
	if bad {
		return ""
	}
	return b.String()
}

// maxTokens is the most tokens the request's params ask for, 0 when they
// do not say.
func (r *runRequest) maxTokens() int {
	for _, name := range [...]string{"max_tokens", "max_completion_tokens"} {
		if n, err := strconv.Atoi(string(r.Params[name])); err == nil && n > 0 {
			return n
		}
	}
	return 0
}
