package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/sse"
)

// runEvent is one server-sent event of a streamed /run.
type runEvent struct {
	name string
	data []byte
}

// runDelta is a delta event's data: a piece of one model's answer.
type runDelta struct {
	Index   int    `json:"index"`
	Model   string `json:"model"`
	Content string `json:"content"`
}

// runModelDone is a model_done event's data: the model's entry of the
// final document, without its output, and with its index.
type runModelDone struct {
	Index    int    `json:"index"`
	Model    string `json:"model"`
	Status   string `json:"status"`
	Duration string `json:"duration"`
	KeyID    *int   `json:"key_id"`
	Usage    *usage `json:"usage,omitempty"`
	// FinishReason is runResult's.
	FinishReason string `json:"finish_reason,omitempty"`
	Error        string `json:"error,omitempty"`
}

// maxRunErrorBody bounds the error answer a streamed model call reads.
const maxRunErrorBody = 64 << 10

// runStream answers a valid /run request with "stream": true: every model
// at once, each on its own key, its deltas forwarded as they arrive, then
// its model_done, and at the end the document the request would have got
// unstreamed. Each model's call streams upstream, so the relay's hold lets
// it go on to another key until its first data event.
//
// The model goroutines never write to the client: they hand their events
// to this handler's goroutine over a channel, and it writes and flushes
// them one by one. A slow client so holds up no model's upstream read
// beyond the channel's room, and a write that fails cancels every call.
func (s *Server) runStream(c echo.Context, req *runRequest) error {
	r, w := c.Request(), c.Response()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	client := r.WithContext(ctx)
	st := s.runStrategy(req)
	start := time.Now()
	log := s.o.Logger
	logRunStart(log, len(req.Models), st)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &runWriter{w: w, cancel: cancel}
	out.flush()

	calls, results := s.leaseModels(r, req, st, func(i int, res *runResult) { out.write(modelDoneEvent(i, res)) })

	events := make(chan runEvent, 4*len(req.Models))
	var wg sync.WaitGroup
	running := 0
	budget := &runBudget{}
	for i := range calls {
		if calls[i].First.Key == nil {
			continue
		}
		running++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.leave()
			send := func(ev runEvent) {
				select {
				case events <- ev:
				case <-ctx.Done():
				}
			}
			results[i] = s.streamModel(client, req, i, &calls[i], budget, send)
			// Always delivered: the handler counts them to know the end.
			events <- modelDoneEvent(i, &results[i])
		}()
	}
	// While every model is silent (a reasoning model thinking, a stream
	// held for its first event) a comment goes out now and then, as
	// OpenRouter sends its own: proxies and clients that cut an idle
	// connection (60 s at nginx's and AWS load balancers' defaults) would
	// cut the /run. Only after a tick with nothing written.
	keepAlive := time.NewTicker(s.o.RunKeepAlive)
	defer keepAlive.Stop()
	for running > 0 {
		select {
		case ev := <-events:
			if ev.name == "model_done" {
				running--
			}
			out.write(ev)
		case <-keepAlive.C:
			if !out.wrote {
				out.raw(keepAliveComment)
			}
			out.wrote = false
		}
	}
	wg.Wait()

	doc := runSummary(log, req, st, results, start)
	data, err := json.Marshal(doc)
	if err != nil {
		data = []byte(`{"error":"encoding the answer failed"}`)
	}
	out.write(runEvent{name: "done", data: data})
	return nil
}

// runStrategy is the key rotation of a /run request.
func (s *Server) runStrategy(req *runRequest) keyring.Strategy {
	if req.RandomKey == nil {
		return s.o.Strategy
	}
	if *req.RandomKey {
		return s.strategies.random
	}
	return s.strategies.roundRobin
}

func modelDoneEvent(i int, res *runResult) runEvent {
	data, _ := json.Marshal(runModelDone{Index: i, Model: res.Model, Status: res.Status, Duration: res.Duration,
		KeyID: res.KeyID, Usage: res.Usage, FinishReason: res.FinishReason, Error: res.Error})
	return runEvent{name: "model_done", data: data}
}

// keepAliveComment is that comment, which SSE readers skip.
var keepAliveComment = []byte(": keep-alive\n\n")

// runWriter writes a streamed /run's events; once a write fails it writes
// no more and cancels the model calls.
type runWriter struct {
	w      http.ResponseWriter
	cancel context.CancelFunc
	failed bool
	// wrote: an event went out since the last keep-alive tick.
	wrote bool
	buf   []byte
}

func (o *runWriter) write(ev runEvent) {
	o.buf = append(append(append(append(o.buf[:0], "event: "...), ev.name...), "\ndata: "...), ev.data...)
	o.buf = append(o.buf, "\n\n"...)
	o.raw(o.buf)
	o.wrote = true
}

// raw writes p as it is, and flushes it.
func (o *runWriter) raw(p []byte) {
	if o.failed {
		return
	}
	if _, err := o.w.Write(p); err != nil {
		o.failed = true
		o.cancel()
		return
	}
	o.flush()
}

func (o *runWriter) flush() {
	if err := http.NewResponseController(o.w).Flush(); err != nil {
		o.failed = true
		o.cancel()
	}
}

// streamModel makes one model's streamed chat completion, sending its
// deltas as they come, and returns its entry.
func (s *Server) streamModel(client *http.Request, req *runRequest, index int, call *relay.Call, budget *runBudget, send func(runEvent)) runResult {
	model := call.Model
	start := time.Now()
	res := s.streamCompletion(client, req, index, call, budget, send)
	d := time.Since(start)
	res.Model, res.Duration = model, seconds(d)
	if call.Key != nil {
		id := call.Key.ID
		res.KeyID = &id
	}
	s.logDone(&res, d)
	return res
}

func (s *Server) streamCompletion(client *http.Request, req *runRequest, index int, call *relay.Call, budget *runBudget, send func(runEvent)) runResult {
	resp, failed := s.sendChat(client, req, call, true)
	if failed != nil {
		return *failed
	}
	ctx := client.Context()
	late := relay.LateOf(resp)
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxRunErrorBody))
		return runResult{Status: "error", Error: "upstream " + strconv.Itoa(resp.StatusCode) + ": " + s.upstreamMessage(data)}
	}
	acc := streamAnswer{message: s.errorMessage}
	// What all models' answers may total, as for the plain form.
	body := budgetReader{r: resp.Body, b: budget}
	d := deltas{s: s, send: func(content string) { send(deltaEvent(index, call.Model, content)) }}
	err := acc.read(body, eventStream(resp.Header), late, d.add)
	d.end()
	s.charge(call, acc.usage, acc.cost)
	if err != nil {
		return runResult{Status: "error", Error: describeCallError(ctx, err), Usage: acc.usage}
	}
	return s.streamed(&acc)
}

// read gathers an answer, giving its content to delta as it comes: as a
// stream when it is announced as one, unless its body is one JSON object
// (some OpenAI-compatible servers answer whole whatever was asked, or say
// an error so), and whole otherwise, as one delta.
func (a *streamAnswer) read(body io.Reader, stream bool, late relay.Late, delta func(string)) error {
	if stream {
		br := bufio.NewReader(body)
		if !jsonFirst(br) {
			return a.stream(br, late, delta)
		}
		body = br
	}
	if err := a.whole(body, late); err != nil {
		return err
	}
	if a.out.Len() > 0 {
		delta(a.out.String())
	}
	return nil
}

// jsonFirst reports whether what br holds starts, past blanks, with a
// JSON object's '{' (an event stream starts with a field or a comment).
func jsonFirst(br *bufio.Reader) bool {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return false
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		_ = br.UnreadByte()
		return c == '{'
	}
}

// streamed is the entry of a model whose answer acc gathered to its end.
func (s *Server) streamed(acc *streamAnswer) runResult {
	if acc.failure != "" {
		return runResult{Status: "error", Error: acc.failure, Usage: acc.usage}
	}
	// A refusal or tool calls may come beside an empty content, as a
	// stream's first chunk often carries one.
	if !acc.content || acc.out.Len() == 0 && (acc.refusal.Len() > 0 || acc.tools) {
		return runResult{Status: "error", Error: s.noMessage(acc.refusal.String(), acc.tools), Usage: acc.usage}
	}
	return runResult{Status: "success", Output: s.redact(acc.out.String()), Usage: acc.usage, FinishReason: s.finishReason(acc.reason)}
}

// deltaEvent is a delta event of content, masked already.
func deltaEvent(index int, model, content string) runEvent {
	data, _ := json.Marshal(runDelta{Index: index, Model: model, Content: content})
	return runEvent{name: "delta", data: data}
}

// deltas masks one model's streamed content as one text: what may start a
// key is held back until the pieces after it tell, so that a key an
// upstream sends a few characters at a time is masked too, and the deltas
// joined are the done document's output.
type deltas struct {
	s    *Server
	send func(content string)
	held string
}

// add masks and sends what of content (after the text held) is final.
func (d *deltas) add(content string) {
	text := d.held + content
	out, n := text, len(text)
	if r := d.s.o.Redactor; r != nil {
		out, n = r.RedactPrefix(text)
	}
	d.held = text[n:]
	if out != "" {
		d.send(out)
	}
}

// end masks and sends the text still held.
func (d *deltas) end() {
	if d.held != "" {
		d.send(d.s.redact(d.held))
		d.held = ""
	}
}

// streamAnswer gathers one model's streamed answer.
type streamAnswer struct {
	out     strings.Builder
	content bool // a message came (possibly empty)
	// finished: a chunk said why the answer ended (finish_reason), so
	// that a stream ending after it is whole even without its [DONE].
	finished bool
	// reason is the last finish_reason given.
	reason string
	usage  *usage
	cost   float64
	// refusal and tools are what came in place of a message.
	refusal strings.Builder
	tools   bool
	// failure is the error an error event carried, worded by message
	// (Server.errorMessage).
	failure string
	message func([]byte) string
}

// chunk is what /run reads of a chat-completion chunk or answer.
type chunk struct {
	Choices []struct {
		// Index tells the choices of "n" > 1 apart; /run shows the
		// first (index 0, or none given), as a whole answer's
		// choices[0].
		Index        *int            `json:"index"`
		Delta        said            `json:"delta"`
		Message      said            `json:"message"`
		FinishReason string          `json:"finish_reason"`
		Error        json.RawMessage `json:"error"`
	} `json:"choices"`
	Usage *usage          `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// said is what /run reads of a message or a delta: its text, or in its
// place a refusal (OpenAI's structured outputs) or tool calls.
type said struct {
	Content   *content        `json:"content"`
	Refusal   string          `json:"refusal"`
	ToolCalls json.RawMessage `json:"tool_calls"`
}

// tools reports whether s calls tools.
func (s *said) tools() bool { return len(s.ToolCalls) > 0 && string(s.ToolCalls) != "null" }

// content is a message's or delta's text: a string, or an array of
// content parts, the text of its "text" parts, as some OpenAI-compatible
// APIs answer (Mistral's reasoning models: a "thinking" part, then "text"
// parts); /run called such an answer invalid JSON.
type content string

func (c *content) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '[' {
		return json.Unmarshal(b, (*string)(c))
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("content parts: %w", err)
	}
	var text strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			text.WriteString(p.Text)
		}
	}
	*c = content(text.String())
	return nil
}

// failed reports whether a whole answer (not a stream's chunk) is an
// error, whatever text came with it: a 200 may carry an error met while
// the model wrote (OpenRouter: choices[0].error, finish_reason "error"),
// or an error object past what the relay peeked at.
func (c *chunk) failed() bool {
	return isObject(c.Error) || len(c.Choices) > 0 && (c.Choices[0].FinishReason == "error" || isObject(c.Choices[0].Error))
}

// cutShort is the error entry of a stream that ended mid-answer.
const cutShort = "upstream stream ended before the answer was complete"

// stream reads an SSE answer to its end or to [DONE]; an error event (an
// error object, or finish_reason "error") ends it as a failure, and late
// counts it against the key. An event that does not decode, or outgrows
// the answers' bound, fails the model as the same answer whole would:
// none is dropped without a word. A stream that ends with neither [DONE]
// nor a finish_reason was cut short (a connection closed mid-answer that
// looked like an end): a failure, as the same answer whole cut short is.
func (a *streamAnswer) stream(body io.Reader, late relay.Late, delta func(string)) error {
	sp := sse.Splitter{Max: maxRunAnswers}
	buf := make([]byte, 4<<10)
	for {
		n, err := body.Read(buf)
		for ev, rest, ok := sp.Next(buf[:n]); ok; ev, rest, ok = sp.Next(rest) {
			if a.event(ev.Data, late, delta, err == io.EOF) {
				return nil
			}
		}
		if err == io.EOF {
			// The last event still counts without its blank line.
			if ev, ok := sp.End(); ok && a.event(ev.Data, late, delta, true) {
				return nil
			}
		}
		if sp.Skipped > 0 {
			a.failure = "upstream response too large"
			return nil
		}
		if err == io.EOF {
			if !a.finished {
				a.failure = cutShort
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// event takes one event of the stream and reports whether the answer ends
// there; last: the stream ended in the read that brought it.
func (a *streamAnswer) event(data []byte, late relay.Late, delta func(string), last bool) bool {
	if bytes.Equal(data, []byte("[DONE]")) {
		return true
	}
	if late.Event(data) {
		a.failure = "upstream stream error: " + a.message(data)
		return true
	}
	if !a.take(data, delta) {
		a.failure = "upstream returned invalid JSON"
		if last {
			// Most likely the event the stream was cut in.
			a.failure = cutShort
		}
		return true
	}
	if a.out.Len() > maxRunAnswers {
		a.failure = "upstream response too large"
		return true
	}
	return false
}

// whole reads a JSON answer given instead of a stream; an error in it is
// counted against the key by late, as in a stream.
func (a *streamAnswer) whole(body io.Reader, late relay.Late) error {
	data, err := io.ReadAll(io.LimitReader(body, maxRunAnswers+1))
	if err != nil {
		return err
	}
	var c chunk
	if json.Unmarshal(data, &c) != nil {
		a.failure = "upstream returned invalid JSON"
		return nil
	}
	a.usage = c.Usage
	a.cost, _ = usageCost(topLevel(data, "usage"))
	if c.failed() {
		late.Event(data)
		a.failure = "upstream error: " + a.message(data)
		return nil
	}
	if len(c.Choices) > 0 {
		m := &c.Choices[0].Message
		if m.Content != nil {
			a.out.WriteString(string(*m.Content))
			a.content = true
		}
		a.refusal.WriteString(m.Refusal)
		a.tools = m.tools()
		a.reason = c.Choices[0].FinishReason
	}
	return nil
}

// take adds a chunk's delta to the answer; false when it does not decode.
func (a *streamAnswer) take(data []byte, delta func(string)) bool {
	var c chunk
	if json.Unmarshal(data, &c) != nil {
		return false
	}
	// The first choice alone: a stream of "n" > 1 sends the others'
	// deltas in chunks of their own, which joined to it would mix the
	// answers.
	first := c.Choices[:0]
	for _, ch := range c.Choices {
		if ch.Index == nil || *ch.Index == 0 {
			first = append(first, ch)
			break
		}
	}
	c.Choices = first
	if len(c.Choices) > 0 && c.Choices[0].FinishReason != "" {
		a.finished = true
		a.reason = c.Choices[0].FinishReason
	}
	if len(c.Choices) > 0 {
		a.refusal.WriteString(c.Choices[0].Delta.Refusal)
		a.tools = a.tools || c.Choices[0].Delta.tools()
	}
	if len(c.Choices) > 0 && c.Choices[0].Delta.Content != nil {
		a.content = true
		if text := string(*c.Choices[0].Delta.Content); text != "" {
			a.out.WriteString(text)
			delta(text)
		}
	}
	if c.Usage != nil {
		a.usage = c.Usage
		a.cost, _ = usageCost(topLevel(data, "usage"))
	}
	return true
}
