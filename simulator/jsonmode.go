package simulator

import (
	"bytes"
	"encoding/json"
	"slices"
)

// responseFormat is a chat request's "response_format": {"type":
// "json_object"}, or {"type": "json_schema", "json_schema": {"schema"}}.
type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

// textFormat is a Responses API request's "text": {"format": {"type",
// "schema"}}.
type textFormat struct {
	Format *struct {
		Type   string          `json:"type"`
		Schema json.RawMessage `json:"schema"`
	} `json:"format"`
}

// jsonShape is how a JSON-mode reply wraps the reply text: open, the text
// as a JSON string's inside (when inText), close. The zero shape is a
// plain-text reply.
type jsonShape struct {
	open, close string
	inText      bool
}

func (j jsonShape) on() bool { return j.open != "" }

// shapeOf is the JSON shape of a reply to typ with schema: an object that
// holds the reply text in its first string property (for json_object, in
// "reply"), every property given a value of its type, so that a client
// parsing the reply against its schema (the openai SDKs' parse helpers)
// accepts it, as a model in OpenRouter's structured-output mode answers.
func shapeOf(typ string, schema json.RawMessage) jsonShape {
	switch typ {
	case "json_object":
		return jsonShape{open: `{"reply":"`, close: `"}`, inText: true}
	case "json_schema":
	default:
		return jsonShape{}
	}
	var s map[string]any
	if json.Unmarshal(schema, &s) != nil {
		s = map[string]any{}
	}
	var b bytes.Buffer
	split := -1
	writeInstance(&b, s, 0, &split)
	if split < 0 {
		// No string to hold the text: the instance alone.
		return jsonShape{open: b.String()}
	}
	out := b.String()
	return jsonShape{open: out[:split], close: out[split:], inText: true}
}

// writeInstance writes a minimal JSON value of schema s; the first string
// value met is where the reply text goes: *split is set to the offset
// inside its quotes (it stays -1 while none is met).
func writeInstance(b *bytes.Buffer, s map[string]any, depth int, split *int) {
	if v, ok := s["const"]; ok {
		writeJSON(b, v)
		return
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		writeJSON(b, e[0])
		return
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := s[k].([]any); ok && len(alts) > 0 {
			if alt, ok := alts[0].(map[string]any); ok {
				writeInstance(b, alt, depth+1, split)
				return
			}
		}
	}
	typ, _ := s["type"].(string)
	if ts, ok := s["type"].([]any); ok {
		for _, t := range ts {
			if t, ok := t.(string); ok && t != "null" {
				typ = t
				break
			}
		}
	}
	props, _ := s["properties"].(map[string]any)
	if typ == "" && props != nil {
		typ = "object"
	}
	switch {
	case typ == "string":
		b.WriteByte('"')
		if *split < 0 {
			*split = b.Len()
		}
		b.WriteByte('"')
	case typ == "integer" || typ == "number":
		b.WriteByte('0')
	case typ == "boolean":
		b.WriteString("false")
	case typ == "array":
		b.WriteString("[]")
	case typ == "object" && depth < 16:
		b.WriteByte('{')
		names := make([]string, 0, len(props))
		for n := range props {
			names = append(names, n)
		}
		slices.Sort(names)
		for i, n := range names {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, n)
			b.WriteByte(':')
			p, _ := props[n].(map[string]any)
			writeInstance(b, p, depth+1, split)
		}
		b.WriteByte('}')
	case typ == "object":
		b.WriteString("{}")
	default:
		b.WriteString("null")
	}
}

func writeJSON(b *bytes.Buffer, v any) {
	j, err := json.Marshal(v)
	if err != nil {
		j = []byte("null")
	}
	b.Write(j)
}

// inJSONString is s as the inside of a JSON string literal.
func inJSONString(s string) string {
	j, _ := json.Marshal(s)
	return string(j[1 : len(j)-1])
}
