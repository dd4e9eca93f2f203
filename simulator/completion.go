package simulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	defaultChunks = 4
	maxEcho       = 80 // bytes of the last user message echoed back
)

// chatRequest is the part of an OpenAI chat completion request the
// simulator reads; other fields are ignored.
type chatRequest struct {
	Model               string          `json:"model"`
	Stream              bool            `json:"stream"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           int             `json:"max_tokens"`
	MaxCompletionTokens int             `json:"max_completion_tokens"`
	ResponseFormat      *responseFormat `json:"response_format"`
}

// maxTokens is the request's cap on output tokens, 0 when it sets none.
func (r *chatRequest) maxTokens() int {
	if r.MaxCompletionTokens > 0 {
		return r.MaxCompletionTokens
	}
	return max(r.MaxTokens, 0)
}

type chatMessage struct {
	Role    string      `json:"role"`
	Content messageText `json:"content"`
}

// messageText is a message's content: a string, null, or an array of
// content parts whose text parts are joined.
type messageText string

func (m *messageText) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) >= 2 && b[0] == '"' && simpleJSONString(b[1:len(b)-1]):
		*m = messageText(b[1 : len(b)-1])
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*m = messageText(s)
	case string(b) == "null":
		*m = ""
	case len(b) > 0 && b[0] == '[':
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &parts); err != nil {
			return err
		}
		texts := make([]string, 0, len(parts))
		for _, p := range parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		}
		*m = messageText(strings.Join(texts, " "))
	default:
		return errors.New("message content must be a string, null or an array of parts")
	}
	return nil
}

// simpleJSONString reports whether the inside of a JSON string literal is
// its own value: no escapes and valid UTF-8 (encoding/json has already
// checked that the literal is well formed).
func simpleJSONString(b []byte) bool {
	ascii := true
	for _, c := range b {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return ascii || utf8.Valid(b)
}

// completion is one simulated reply: everything its body is built from.
type completion struct {
	idBuf     [48]byte
	idLen     int
	created   int64
	model     string
	echo      string
	hasUser   bool
	prompt    int // prompt tokens
	words     int // completion tokens of the reply without padding
	pad       int // bytes of filler after the reply
	padTokens int
	usage     bool
	provider  string
	price     price
	flagged   bool   // the last user message asks for a moderation flag
	noise     uint64 // where processing comments go, drawn from the seed
	// limit, when above 0, is the words of the reply kept before the
	// padding: max_tokens cut the reply there (see capAt).
	limit int
	cut   bool // max_tokens cut the reply: finish_reason "length"
	// json, when on, wraps the reply in the JSON that response_format
	// asks for.
	json jsonShape
}

// capAt cuts the reply, padding included, to maxTokens tokens (words), as
// a model stops at max_tokens with finish_reason "length". Call it after
// fit: a cut reply is shorter than big= asked.
func (cp *completion) capAt(maxTokens int) {
	if maxTokens <= 0 || cp.completionTokens() <= maxTokens {
		return
	}
	cp.cut = true
	if cp.words >= maxTokens {
		cp.limit, cp.words = maxTokens, maxTokens
		cp.pad, cp.padTokens = 0, 0
		return
	}
	cp.padTokens = maxTokens - cp.words
	cp.pad = fillerBytes(cp.padTokens)
}

// finishReason is the reply's finish_reason: "length" when max_tokens cut
// it, else "stop".
func (cp *completion) finishReason() string {
	if cp.cut {
		return "length"
	}
	return "stop"
}

// flagWord in the last user message makes the moderation flag the prompt
// (403), as a directive-free way to try it from any client.
const flagWord = "sim:flagged"

func (s *Server) newCompletion(req *chatRequest, usage bool) completion {
	cp := completion{
		created: s.opts.Now().Unix(),
		model:   req.Model,
		usage:   usage,
	}
	cp.price, cp.provider = priceOf(req.Model)
	if rf := req.ResponseFormat; rf != nil {
		var schema json.RawMessage
		if rf.JSONSchema != nil {
			schema = rf.JSONSchema.Schema
		}
		cp.json = shapeOf(rf.Type, schema)
	}
	n := s.opts.Seed ^ mix64(s.ids.Add(1))
	cp.noise = mix64(n)
	id := append(cp.idBuf[:0], "gen-"...)
	id = strconv.AppendInt(id, cp.created, 10)
	id = append(id, '-')
	id = appendToken(id, n)
	cp.idLen = len(id)

	var pc wordCounter
	for i := range req.Messages {
		m := &req.Messages[i]
		pc.add(string(m.Content))
		pc.inWord = false
		if m.Role == "user" {
			cp.echo, cp.hasUser = string(m.Content), true
		}
	}
	cp.prompt = max(pc.n, 1)
	cp.flagged = strings.Contains(cp.echo, flagWord)
	cp.echo = excerpt(cp.echo, maxEcho)

	var wc wordCounter
	cp.eachPiece(wc.add)
	cp.words = wc.n
	return cp
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// appendToken appends 20 base62 characters drawn from x.
func appendToken(dst []byte, x uint64) []byte {
	y := mix64(x)
	for i := range 20 {
		if i == 10 {
			x = y
		}
		dst = append(dst, base62[x%62])
		x /= 62
	}
	return dst
}

func (cp *completion) id() []byte { return cp.idBuf[:cp.idLen] }

// eachPiece calls fn with the pieces of the reply text, in order, without
// building it: `Hello from <model>: you said "<echo>"`.
func (cp *completion) eachPiece(fn func(string)) {
	if cp.limit > 0 {
		w := wordLimit{left: cp.limit, fn: fn}
		fn = w.add
	}
	if cp.json.on() {
		fn(cp.json.open)
		if cp.json.inText {
			fn("Hello from ")
			fn(inJSONString(cp.model))
			if cp.hasUser {
				fn(`: you said \"`)
				fn(inJSONString(cp.echo))
				fn(`\"`)
			}
		}
		fn(cp.json.close)
		return
	}
	fn("Hello from ")
	fn(cp.model)
	if cp.hasUser {
		fn(`: you said "`)
		fn(cp.echo)
		fn(`"`)
	}
}

// content is the reply text with its padding, as one string.
func (cp *completion) content() string {
	var b []byte
	cp.eachPiece(func(s string) { b = append(b, s...) })
	return string(appendFiller(b, cp.pad))
}

// appendHead appends the opening of a reply object: id, provider, model,
// object and created.
func (cp *completion) appendHead(dst []byte, object string) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, cp.id()...)
	dst = append(dst, `","provider":`...)
	dst = appendQuoted(dst, cp.provider)
	dst = append(dst, `,"model":`...)
	dst = appendQuoted(dst, cp.model)
	dst = append(dst, `,"object":"`...)
	dst = append(dst, object...)
	dst = append(dst, `","created":`...)
	return strconv.AppendInt(dst, cp.created, 10)
}

// completionTokens counts the reply's tokens, padding included.
func (cp *completion) completionTokens() int { return cp.words + cp.padTokens }

// cost is what the reply costs, in nano-USD, and its prompt and completion
// parts.
func (cp *completion) cost() (total, prompt, completion int64) {
	return cp.price.cost(cp.prompt, cp.completionTokens())
}

// appendUsage appends OpenRouter's usage object, cost included.
func (cp *completion) appendUsage(dst []byte) []byte {
	completion := cp.completionTokens()
	total, pc, cc := cp.cost()
	dst = append(dst, `"usage":{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(cp.prompt), 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, int64(completion), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(cp.prompt+completion), 10)
	dst = append(dst, `,"cost":`...)
	dst = appendUSD(dst, total)
	dst = append(dst, `,"is_byok":false,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"cost_details":{"upstream_inference_cost":null,"upstream_inference_prompt_cost":`...)
	dst = appendUSD(dst, pc)
	dst = append(dst, `,"upstream_inference_completions_cost":`...)
	dst = appendUSD(dst, cc)
	return append(dst, `},"completion_tokens_details":{"reasoning_tokens":0,"image_tokens":0}}`...)
}

// appendBody appends the non-streamed reply (object "chat.completion").
func (cp *completion) appendBody(dst []byte) []byte {
	dst = cp.appendHead(dst, "chat.completion")
	dst = append(dst, `,"system_fingerprint":null,"choices":[{"logprobs":null,"finish_reason":"`...)
	dst = append(dst, cp.finishReason()...)
	dst = append(dst, `","native_finish_reason":"`...)
	dst = append(dst, cp.finishReason()...)
	dst = append(dst, `","index":0,"message":{"role":"assistant","content":"`...)
	cp.eachPiece(func(s string) { dst = appendEscaped(dst, s) })
	dst = appendFiller(dst, cp.pad)
	dst = append(dst, `","refusal":null,"reasoning":null}}]`...)
	if cp.usage {
		dst = append(dst, ',')
		dst = cp.appendUsage(dst)
	}
	return append(dst, '}')
}

// fit sets the padding so that build makes a body of exactly size bytes,
// or leaves none if the reply is already that large. The padding's tokens
// are estimated once and then held, so the length is linear in the padding.
func (cp *completion) fit(size int, build func() int) {
	if size <= 0 {
		return
	}
	cp.pad, cp.padTokens = 0, 0
	cp.padTokens = fillerWords(max(size-build(), 0))
	cp.pad = max(size-build(), 0)
	if cp.pad == 0 {
		cp.padTokens = 0
	}
}

// getRequest returns an empty chatRequest, reusing a pooled one's messages.
func (s *Server) getRequest() *chatRequest {
	req, _ := s.reqs.Get().(*chatRequest)
	if req == nil {
		return &chatRequest{Messages: make([]chatMessage, 0, 4)}
	}
	msgs := req.Messages[:cap(req.Messages)]
	clear(msgs)
	*req = chatRequest{Messages: msgs[:0]}
	return req
}

func (s *Server) putRequest(req *chatRequest) {
	if cap(req.Messages) <= 64 {
		s.reqs.Put(req)
	}
}

// serveCompletion answers POST /chat/completions.
func (c *call) serveCompletion() {
	bp, ok := c.readRequestBody()
	defer c.s.putBuf(bp)
	if !ok {
		return
	}
	body := *bp
	req := c.s.getRequest()
	defer c.s.putRequest(req)
	if err := json.Unmarshal(body, req); err != nil {
		c.sendError(http.StatusBadRequest, "invalid JSON body: "+err.Error(), hint{})
		return
	}
	if req.Model == "" {
		c.sendError(http.StatusBadRequest, "model is required", hint{})
		return
	}
	c.model = req.Model
	if !c.modelDirectives(req.Model) {
		return
	}
	if req.Model == "x/broken" || strings.HasPrefix(req.Model, "x/missing") {
		c.sendError(http.StatusNotFound, "model not found", hint{})
		return
	}
	if c.refuseByDirective(req.Model) {
		return
	}
	cp := c.s.newCompletion(req, !c.f.noUsage && c.f.inband == 0)
	if cp.flagged {
		c.sendRefusal(moderation403(c.ks.acct.id, cp.model, cp.provider, cp.echo))
		return
	}
	if req.Stream && !c.f.jsonStream {
		c.sendStream(&cp, req.maxTokens(), bp)
		return
	}
	ctype := "application/json"
	if c.f.jsonStream {
		ctype = "text/event-stream"
	}
	if c.f.inband != 0 {
		if c.admit(&cp, req.maxTokens()) {
			c.sendBody(http.StatusOK, ctype, inbandBody(c.f.inband))
		}
		return
	}
	cp.fit(c.f.big, func() int {
		*bp = cp.appendBody((*bp)[:0])
		return len(*bp)
	})
	cp.capAt(req.maxTokens())
	*bp = cp.appendBody((*bp)[:0])
	if c.admit(&cp, req.maxTokens()) {
		c.generation(&cp, false)
		c.sendBody(http.StatusOK, ctype, *bp)
	}
}

// modelDirectives reads the directives of a "sim/<directives>" model name
// into c.f, after the header's, on every inference endpoint; on a bad list
// it answers 400 and reports false.
func (c *call) modelDirectives(model string) bool {
	list, ok := strings.CutPrefix(model, "sim/")
	if !ok {
		return true
	}
	if err := parseDirectives(list, &c.f); err != nil {
		c.sendError(http.StatusBadRequest, err.Error(), hint{})
		return false
	}
	return true
}

// generation names the answer's generation in X-Generation-Id, as
// OpenRouter does on every endpoint (OPENROUTER.md 4), and keeps it for
// GET /generation.
func (c *call) generation(cp *completion, streamed bool) {
	c.w.Header()["X-Generation-Id"] = []string{string(cp.id())}
	c.s.gens.keep(cp, c.ks.acct, streamed)
}

// refuseByDirective answers the error a directive asks for, before the
// account's rules are applied (so it costs nothing and counts against no
// quota), and reports whether it did.
func (c *call) refuseByDirective(model string) bool {
	_, provider := priceOf(model)
	user := c.ks.acct.id
	var r *refusal
	switch {
	case c.f.status >= 400:
		c.sendStatus(c.f.status, c.f.errorHint())
		return true
	case c.f.moderation:
		r = moderation403(user, model, provider, "(flagged by directive)")
	case c.f.guardrail:
		r = guardrail403(user, model)
	case c.f.provider429:
		r = provider429(user, model, provider, c.f.wait())
	case c.f.inFlight:
		r = inFlight402(user, c.f.wait())
	default:
		return false
	}
	c.sendRefusal(r)
	return true
}

// admit applies the account's and key's rules to the reply cp, charging
// its cost (nothing for an in-band error), or answers the refusal and
// reports false.
func (c *call) admit(cp *completion, maxTokens int) bool {
	q := ask{model: cp.model, price: cp.price, prompt: cp.prompt, maxTokens: maxTokens}
	if c.f.inband == 0 {
		q.cost, _, _ = cp.cost()
	}
	if r := c.ks.admit(c.s.opts.Now(), &q); r != nil {
		c.sendRefusal(r)
		return false
	}
	return true
}

// inbandBody is a 200's body that carries an error instead of a reply.
func inbandBody(code int) []byte {
	return newRefusal(code, statusMessage(code), nil, "").body
}
