package simulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// responsesRequest is the part of an OpenAI Responses API request the
// simulator reads.
type responsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    *string         `json:"instructions"`
	MaxOutputTokens int             `json:"max_output_tokens"`
	Stream          bool            `json:"stream"`
	Text            *textFormat     `json:"text"`
}

// messages reads "input" (a string, or an array of message items whose
// content is a string or input_text parts) as chat messages.
func (r *responsesRequest) messages() ([]chatMessage, error) {
	var text string
	if err := json.Unmarshal(r.Input, &text); err == nil {
		return []chatMessage{{Role: "user", Content: messageText(text)}}, nil
	}
	var items []chatMessage
	if err := json.Unmarshal(r.Input, &items); err != nil || len(items) == 0 {
		return nil, errors.New("input must be a string or a non-empty array of input items")
	}
	return items, nil
}

// serveResponses answers POST /responses, the OpenAI Responses API (the
// Vercel AI SDK's default OpenAI provider calls it): the same reply, price
// and rules as a chat completion, as a "response" object, or with
// "stream": true as its typed events (response.created ...
// response.output_text.delta ... response.completed).
func (c *call) serveResponses() {
	bp, ok := c.readRequestBody()
	defer c.s.putBuf(bp)
	if !ok {
		return
	}
	var req responsesRequest
	if err := json.Unmarshal(*bp, &req); err != nil {
		c.sendError(http.StatusBadRequest, "invalid JSON body: "+err.Error(), hint{})
		return
	}
	msgs, err := req.messages()
	if req.Model == "" {
		err = errors.New("model is required")
	}
	if err != nil {
		c.sendError(http.StatusBadRequest, err.Error(), hint{})
		return
	}
	c.model = req.Model
	if !c.modelDirectives(req.Model) || c.refuseByDirective(req.Model) {
		return
	}
	chat := chatRequest{Model: req.Model, Messages: msgs}
	if req.Text != nil && req.Text.Format != nil {
		chat.ResponseFormat = &responseFormat{Type: req.Text.Format.Type}
		chat.ResponseFormat.JSONSchema = &struct {
			Schema json.RawMessage `json:"schema"`
		}{req.Text.Format.Schema}
	}
	cp := c.s.newCompletion(&chat, true)
	if cp.flagged {
		c.sendRefusal(moderation403(c.ks.acct.id, cp.model, cp.provider, cp.echo))
		return
	}
	if c.f.big > 0 {
		cp.pad = c.f.big
		cp.padTokens = fillerWords(cp.pad)
	}
	maxTokens := max(req.MaxOutputTokens, 0)
	cp.capAt(maxTokens)
	if !c.admit(&cp, maxTokens) {
		return
	}
	if !req.Stream {
		if c.f.inband != 0 {
			c.sendBody(http.StatusOK, "application/json", inbandBody(c.f.inband))
			return
		}
		c.sendJSON(c.responseObject(&cp, &req, true))
		return
	}
	body, ends := c.responseEvents(&cp, &req)
	c.writeEvents(body, ends)
}

// responseObject is the Responses API object for cp, completed (with its
// output and usage) or, for the first events of a stream, in progress.
func (c *call) responseObject(cp *completion, req *responsesRequest, done bool) map[string]any {
	var maxOut any
	if req.MaxOutputTokens > 0 {
		maxOut = req.MaxOutputTokens
	}
	o := map[string]any{
		"id": "resp_" + string(cp.id()), "object": "response", "created_at": cp.created,
		"completed_at": nil, "status": "in_progress", "error": nil, "incomplete_details": nil,
		"instructions": req.Instructions, "max_output_tokens": maxOut, "model": cp.model,
		"output": []any{}, "parallel_tool_calls": true, "previous_response_id": nil,
		"reasoning": nil, "store": false, "temperature": nil, "top_p": nil,
		"frequency_penalty": nil, "presence_penalty": nil, "metadata": map[string]string{},
		"text": map[string]any{"format": map[string]string{"type": "text"}}, "tool_choice": "auto",
		"tools": []any{}, "truncation": "disabled", "usage": nil,
	}
	if !done {
		return o
	}
	text := cp.content()
	total, pc, cc := cp.cost()
	if c.f.inband != 0 {
		total, pc, cc = 0, 0, 0
	}
	out := cp.completionTokens()
	o["status"], o["completed_at"] = "completed", cp.created
	if cp.cut {
		// Cut at max_output_tokens, as OpenAI's Responses API tells it.
		o["status"], o["completed_at"] = "incomplete", nil
		o["incomplete_details"] = map[string]string{"reason": "max_output_tokens"}
	}
	o["output"] = []any{messageItem(cp, text, true)}
	o["output_text"] = text
	o["usage"] = map[string]any{
		"input_tokens": cp.prompt, "input_tokens_details": map[string]int{"cached_tokens": 0},
		"output_tokens": out, "output_tokens_details": map[string]int{"reasoning_tokens": 0},
		"total_tokens": cp.prompt + out, "cost": json.RawMessage(appendUSD(nil, total)), "is_byok": false,
		"cost_details": map[string]any{
			"upstream_inference_cost":        nil,
			"upstream_inference_input_cost":  json.RawMessage(appendUSD(nil, pc)),
			"upstream_inference_output_cost": json.RawMessage(appendUSD(nil, cc)),
		},
	}
	return o
}

// messageItem is the output item holding the reply text.
func messageItem(cp *completion, text string, done bool) map[string]any {
	it := map[string]any{"type": "message", "id": "msg_" + string(cp.id()), "role": "assistant", "status": "in_progress", "content": []any{}}
	if done {
		it["status"] = "completed"
		if cp.cut {
			it["status"] = "incomplete"
		}
		it["content"] = []any{textPart(text)}
	}
	return it
}

func textPart(text string) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}
}

// responseEvents builds the Responses API event stream of cp, cut into
// segments as writeEvents sends them: the opening events with the first
// delta, one delta each, then the closing events. The inband directive puts
// an "error" event after errorafter deltas and ends there; nodata ends after
// the processing comment.
func (c *call) responseEvents(cp *completion, req *responsesRequest) ([]byte, []int) {
	chunks := c.s.opts.Chunks
	if c.f.chunks > 0 {
		chunks = c.f.chunks
	}
	itemID := "msg_" + string(cp.id())
	seq := 0
	var b []byte
	ev := func(typ string, fields map[string]any) {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		data, err := json.Marshal(fields)
		if err != nil {
			panic(err) // maps of strings, numbers and slices always marshal
		}
		b = append(b, "event: "+typ+"\ndata: "...)
		b = append(b, data...)
		b = append(b, "\n\n"...)
	}
	loc := func(m map[string]any) map[string]any {
		m["item_id"], m["output_index"], m["content_index"] = itemID, 0, 0
		return m
	}
	b = append(b, processing...)
	if c.f.noData {
		return b, []int{len(b)}
	}
	ev("response.created", map[string]any{"response": c.responseObject(cp, req, false)})
	ev("response.in_progress", map[string]any{"response": c.responseObject(cp, req, false)})
	ev("response.output_item.added", map[string]any{"output_index": 0, "item": messageItem(cp, "", false)})
	ev("response.content_part.added", loc(map[string]any{"part": textPart("")}))
	var ends []int
	text := cp.content()
	for i, piece := range split(text, chunks) {
		if c.f.inband != 0 && i == c.f.errAfter {
			break
		}
		ev("response.output_text.delta", loc(map[string]any{"delta": piece, "logprobs": []any{}}))
		ends = append(ends, len(b))
	}
	if c.f.inband != 0 {
		ev("error", map[string]any{"code": strconv.Itoa(c.f.inband), "message": statusMessage(c.f.inband), "param": nil})
		return b, append(ends, len(b))
	}
	ev("response.output_text.done", loc(map[string]any{"text": text, "logprobs": []any{}}))
	ev("response.content_part.done", loc(map[string]any{"part": textPart(text)}))
	ev("response.output_item.done", map[string]any{"output_index": 0, "item": messageItem(cp, text, true)})
	last := "response.completed"
	if cp.cut {
		last = "response.incomplete"
	}
	ev(last, map[string]any{"response": c.responseObject(cp, req, true)})
	return b, append(ends, len(b))
}
