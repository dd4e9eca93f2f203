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
	Model    string        `json:"model"`
	Stream   bool          `json:"stream"`
	Messages []chatMessage `json:"messages"`
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
}

func (s *Server) newCompletion(req *chatRequest, usage bool) completion {
	cp := completion{
		created: s.opts.Now().Unix(),
		model:   req.Model,
		usage:   usage,
	}
	id := append(cp.idBuf[:0], "gen-"...)
	id = strconv.AppendInt(id, cp.created, 10)
	id = append(id, '-')
	id = appendToken(id, s.opts.Seed^mix64(s.ids.Add(1)))
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

func (cp *completion) appendHead(dst []byte, object string) []byte {
	dst = append(dst, `{"id":"`...)
	dst = append(dst, cp.id()...)
	dst = append(dst, `","object":"`...)
	dst = append(dst, object...)
	dst = append(dst, `","created":`...)
	dst = strconv.AppendInt(dst, cp.created, 10)
	dst = append(dst, `,"model":`...)
	return appendQuoted(dst, cp.model)
}

func (cp *completion) appendUsage(dst []byte) []byte {
	completion := cp.words + cp.padTokens
	dst = append(dst, `"usage":{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(cp.prompt), 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, int64(completion), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(cp.prompt+completion), 10)
	return append(dst, '}')
}

// appendBody appends the non-streamed reply (object "chat.completion").
func (cp *completion) appendBody(dst []byte) []byte {
	dst = cp.appendHead(dst, "chat.completion")
	dst = append(dst, `,"choices":[{"index":0,"message":{"role":"assistant","content":"`...)
	cp.eachPiece(func(s string) { dst = appendEscaped(dst, s) })
	dst = appendFiller(dst, cp.pad)
	dst = append(dst, `"},"finish_reason":"stop"}]`...)
	if cp.usage {
		dst = append(dst, ',')
		dst = cp.appendUsage(dst)
	}
	return append(dst, '}')
}

// appendStream appends the streamed reply as server-sent events, as OpenAI
// sends them: one "chat.completion.chunk" per piece (the first with the
// role), a chunk with an empty delta and finish_reason "stop", a chunk with
// no choices and the usage, then "data: [DONE]". It returns the end offset
// (in dst) of each piece's event and of the tail (the rest, sent at once).
// With badJSON the first event's JSON is cut in half.
func (cp *completion) appendStream(dst []byte, pieces []string, badJSON bool) ([]byte, []int) {
	ends := make([]int, 0, len(pieces)+1)
	for i, p := range pieces {
		start := len(dst)
		dst = append(dst, "data: "...)
		dst = cp.appendHead(dst, "chat.completion.chunk")
		dst = append(dst, `,"choices":[{"index":0,"delta":{`...)
		if i == 0 {
			dst = append(dst, `"role":"assistant",`...)
		}
		dst = append(dst, `"content":"`...)
		dst = appendEscaped(dst, p)
		dst = append(dst, `"},"finish_reason":null}]}`...)
		if i == 0 && badJSON {
			dst = dst[:start+(len(dst)-start)/2]
		}
		dst = append(dst, "\n\n"...)
		ends = append(ends, len(dst))
	}
	dst = append(dst, "data: "...)
	dst = cp.appendHead(dst, "chat.completion.chunk")
	dst = append(dst, `,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n"...)
	if cp.usage {
		dst = append(dst, "data: "...)
		dst = cp.appendHead(dst, "chat.completion.chunk")
		dst = append(dst, `,"choices":[],`...)
		dst = cp.appendUsage(dst)
		dst = append(dst, "}\n\n"...)
	}
	dst = append(dst, "data: [DONE]\n\n"...)
	return dst, append(ends, len(dst))
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
	if list, ok := strings.CutPrefix(req.Model, "sim/"); ok {
		if err := parseDirectives(list, &c.f); err != nil {
			c.sendError(http.StatusBadRequest, err.Error(), hint{})
			return
		}
	}
	if req.Model == "x/broken" || strings.HasPrefix(req.Model, "x/missing") {
		c.sendError(http.StatusNotFound, "model not found", hint{})
		return
	}
	if c.f.status >= 400 {
		c.sendError(c.f.status, statusMessage(c.f.status), c.f.errorHint())
		return
	}

	cp := c.s.newCompletion(req, !c.f.noUsage)
	if req.Stream {
		c.sendStream(&cp, bp)
		return
	}
	cp.fit(c.f.big, func() int {
		*bp = cp.appendBody((*bp)[:0])
		return len(*bp)
	})
	*bp = cp.appendBody((*bp)[:0])
	c.sendBody(http.StatusOK, "application/json", *bp)
}
