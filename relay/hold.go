package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/sse"
)

// ErrClosedBeforeData is the error of an attempt whose stream ended before
// its first data event: a network error of that attempt, which goes on to
// another key.
var ErrClosedBeforeData = errors.New("upstream stream ended before any data")

// errClientLeft is the cause of an attempt whose client left while its
// answer was being judged (the stream hold, an error answer's body).
var errClientLeft = errors.New("client went away before the answer was judged")

// Stream failover reasons, as Observer.StreamFailover names them.
const (
	FailoverErrorEvent       = "error_event"
	FailoverClosedBeforeData = "closed_before_data"
	// FailoverReadError: reading the held stream failed (a reset, upstream
	// silent past UPSTREAM_TIMEOUT) before any data.
	FailoverReadError = "read_error"
	// FailoverHoldTimeout is no failover: the answer was committed with
	// only comments held, and is counted beside them.
	FailoverHoldTimeout = "hold_timeout"
)

// holdOutcome is what the stream hold saw before it let an answer go.
type holdOutcome uint8

const (
	// holdNone: not a held stream.
	holdNone holdOutcome = iota
	// holdData: the first data event came; committed.
	holdData
	// holdError: the first data event is an error object.
	holdError
	// holdClosed: the stream ended before any data event.
	holdClosed
	// holdBroken: reading the stream failed before any data event.
	holdBroken
	// holdTimeout: STREAM_HOLD_TIMEOUT passed with only comments; committed.
	holdTimeout
	// holdFull: holdLimit's bytes came without a data event; committed.
	holdFull
	// holdGone: the client went away during the hold, or while an error
	// answer's body was read.
	holdGone
)

// holdMax bounds what the hold keeps before it commits anyway, beyond
// what the request's opening events may echo of it (holdLimit).
const holdMax = 64 << 10

// holdLimit bounds what the hold keeps of a stream whose request body is
// size bytes: holdMax, and twice the body more, since the Responses API's
// response.created and response.in_progress each echo the request's
// instructions and tools, which an agent's request makes tens of KiB
// long, and an error may still follow them before any output. The body
// is in memory already; a stream whose events say something is not held
// past its first.
func holdLimit(size int64) int { return holdMax + 2*int(size) }

// holdChunk is the hold buffer's first size: small, since every stream in
// its hold keeps one; a larger first event grows it, doubling. It is a
// peek buffer (peekBuffers), which the body gives back when it has passed
// the held bytes on.
const holdChunk = peekSize

// Committer sends a held stream's answer to its client when
// STREAM_HOLD_TIMEOUT passes with only comments, so that no client or proxy
// in between gives up on a silent answer. A call's request context carries
// it under CommitterKey; the passthrough's does, POST /run's streamed form,
// which has nothing to write then, does not.
type Committer interface {
	// CommitHeld runs at most once, on a timer's goroutine, while the
	// call's goroutine waits on upstream and writes nothing: it sends
	// resp's status and headers and held (the bytes that came, comments),
	// and flushes them. It must not read resp.Body nor resp.Trailer (the
	// transport fills in the trailers in the Read under way), nor keep
	// held: trailer is a copy of what resp.Trailer declared before the
	// body was read. The answer the call then returns goes on after held.
	CommitHeld(resp *http.Response, trailer http.Header, held []byte)
}

// CommitterKey is the context key of a call's Committer.
type CommitterKey struct{}

// holdState is one stream hold's state, shared by the reading goroutine and the
// timeout's callback under mu. The reader holds mu whenever it is not
// waiting in a read, so the callback commits only while a read waits, and
// a lock is held across a client write on the timeout path only.
type holdState struct {
	mu sync.Mutex
	// buf is what came so far.
	buf []byte
	// committed: the timeout passed; sent bytes of buf went to the client.
	committed bool
	sent      int
	// over: the hold ended before its timeout, which then does nothing.
	over bool
	resp *http.Response
	// trailer is resp.Trailer as declared, copied before the first read.
	trailer http.Header
	ctx     context.Context
}

// timeout commits the answer with what came, through the request's
// Committer if it has one.
func (h *holdState) timeout() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.over {
		return
	}
	h.committed = true
	if c, ok := h.ctx.Value(CommitterKey{}).(Committer); ok {
		c.CommitHeld(h.resp, h.trailer, h.buf)
		h.sent = len(h.buf)
	}
}

// holdStream reads a streamed 200 until its first complete data event, at
// most r.hold and holdLimit's bytes, keeping every byte so that the client
// gets them once, in order, when the answer is committed. It reads in the
// caller's goroutine: at the timeout a timer commits the answer (see
// Committer) while the read waits, and the hold ends when that read
// returns; what it brought follows as a committed stream. A timer costs no
// goroutine unless it fires.
func (r *Relay) holdStream(resp *http.Response, wb *watchedBody, now time.Time) fault.Verdict {
	bp := peekBuffers.Get().(*[]byte)
	h := &holdState{buf: (*bp)[:0], resp: resp, ctx: wb.ctx}
	if len(resp.Trailer) > 0 {
		h.trailer = resp.Trailer.Clone()
	}
	limit := holdLimit(wb.reqBody.Size())
	var sp sse.Splitter
	sp.Max = limit
	h.mu.Lock()
	timer := time.AfterFunc(r.hold, h.timeout)
	// end leaves the hold before its timeout; h.mu is held.
	end := func() {
		h.over = true
		h.mu.Unlock()
		timer.Stop()
	}
	release := func() {
		if bp != nil {
			peekBuffers.Put(bp)
		}
	}
	commit := func(o holdOutcome) fault.Verdict {
		wb.head, wb.peek, wb.hold = h.buf, bp, o
		return fault.Verdict{Status: resp.StatusCode}
	}
	// decide ends the hold on its first data event, the read that brought
	// it having met err; the hold is over (end).
	decide := func(ev sse.Event, err error) fault.Verdict {
		// On a blind call an error without an HTTP code is the
		// fetched resource's state (judgeObject): the stream stands.
		if v, body, isErr := streamError(resp.Header, ev.Data, now); isErr && !(wb.blind && v.Uncoded) {
			wb.errBody, wb.hold = body, holdError
			release()
			return v
		}
		if err != nil {
			wb.headErr = err
		}
		return commit(holdData)
	}
	for {
		buf := h.buf
		if cap(buf)-len(buf) < holdChunk/4 {
			if cap(buf) >= limit {
				end()
				return commit(holdFull)
			}
			grown := make([]byte, len(buf), min(2*cap(buf), limit))
			copy(grown, buf)
			release()
			buf, bp = grown, nil
			h.buf = buf
		}
		room := buf[len(buf):cap(buf)]
		h.mu.Unlock()
		n, err := wb.rc.Read(room)
		h.mu.Lock()
		piece := room[:n]
		h.buf = buf[:len(buf)+n]
		if n > 0 {
			r.watch.Touch(&wb.entry)
		}
		if h.committed {
			// Committed at the timeout while this read waited: what
			// the client did not get yet follows as the body.
			h.mu.Unlock()
			wb.head, wb.peek, wb.hold = h.buf[h.sent:], bp, holdTimeout
			if err != nil {
				wb.headErr = wb.readErr(err)
			}
			if len(wb.head) == 0 {
				wb.head = nil
				wb.releasePeek()
			}
			return fault.Verdict{Status: resp.StatusCode}
		}
		for ev, rest, ok := sp.Next(piece); ok; ev, rest, ok = sp.Next(rest) {
			if opening(ev) {
				// The Responses API's opening events say nothing yet:
				// held as comments are, for an error may follow them.
				continue
			}
			end()
			return decide(ev, err)
		}
		if err != nil {
			end()
			if data := wholeJSON(h.buf); data != nil && errors.Is(err, io.EOF) && !clientGone(wb) {
				// A JSON answer where an event stream was announced (some
				// OpenAI-compatible servers answer so whatever was asked):
				// judged as the same answer labelled application/json is,
				// an error object answered as itself; anything else goes
				// to the client as it came.
				if v := judgeObject(resp.Header, data, wb.blind, now); v.Status != http.StatusOK {
					wb.errBody, wb.hold = bytes.Clone(data), holdError
					release()
					return v
				}
				wb.headErr = err
				return commit(holdData)
			}
			if errors.Is(err, io.EOF) && !clientGone(wb) {
				// The stream ended in an event without its blank line:
				// that event is its first, as the usage tap and /run
				// read it too, when it is whole (a JSON value), not cut.
				if ev, ok := sp.End(); ok && !opening(ev) && json.Valid(ev.Data) {
					return decide(ev, err)
				}
			}
			release()
			switch {
			case clientGone(wb):
				wb.hold = holdGone
			case errors.Is(err, io.EOF):
				wb.hold = holdClosed
			default:
				wb.hold = holdBroken
			}
			return fault.Verdict{Status: http.StatusBadGateway, Scope: fault.Upstream}
		}
	}
}

// wholeJSON is b without its surrounding blanks when that is a JSON
// object (by its first and last bytes), else nil.
func wholeJSON(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil
	}
	return b
}

// isEventStream reports whether an answer is a server-sent event stream the
// hold can read: text/event-stream, not encoded (decodeAhead decoded it).
func isEventStream(h http.Header) bool {
	enc := h.Get("Content-Encoding")
	return eventStreamType(h) && (enc == "" || strings.EqualFold(enc, "identity"))
}

// eventStreamType reports whether h declares text/event-stream.
func eventStreamType(h http.Header) bool {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// openingEvents are the events that open a stream before any output or
// error: the Responses API's (OpenAI's and OpenRouter's /responses send
// response.created first, then an error event when the key has no quota:
// bifrost #5395) and the Anthropic Messages API's (/messages: message_start
// and then an error when the call fails before content, litellm #38610),
// so the hold looks past them.
var openingEvents = [...]string{"response.created", "response.in_progress", "response.queued",
	"response.output_item.added", "response.content_part.added",
	"message_start", "content_block_start", "ping"}

// opening reports whether ev opens a stream and says nothing yet: one of
// openingEvents, by its event: name or, without one, by its data's
// "type"; or a chat chunk that only names the assistant's role (OpenAI's
// and OpenRouter's first chunk, content ""), after which an error may
// still come before the first token.
func opening(ev sse.Event) bool {
	if len(ev.Name) > 0 {
		for _, name := range openingEvents {
			if string(ev.Name) == name {
				return true
			}
		}
		return addedEvent(ev.Name)
	}
	if bytes.Contains(ev.Data, []byte(`"type":"`)) {
		for _, name := range openingEvents {
			if bytes.Contains(ev.Data, []byte(`"type":"`+name+`"`)) {
				return true
			}
		}
		// The event's own type: the items and parts inside it are
		// typed too, never as "response.*".
		if i := bytes.Index(ev.Data, []byte(`"type":"response.`)); i >= 0 {
			v := ev.Data[i+len(`"type":"`):]
			if j := bytes.IndexByte(v, '"'); j >= 0 && addedEvent(v[:j]) {
				return true
			}
		}
	}
	return roleOnly(ev.Data)
}

// addedEvent reports whether name is one of the Responses API's events
// that add an output item or an empty part to it
// (response.output_item.added, response.content_part.added,
// response.reasoning_summary_part.added …): nothing is said yet.
func addedEvent(name []byte) bool {
	return bytes.HasPrefix(name, []byte("response.")) && bytes.HasSuffix(name, []byte(".added"))
}

// roleOnly reports whether data is a chat chunk that says nothing but the
// assistant's role: one choice, no finish_reason, and a delta whose other
// fields are empty ("", null, [], {}); no usage, no error. It decodes only
// data that names the role, which of a stream's events only its first
// does.
func roleOnly(data []byte) bool {
	if !bytes.Contains(data, []byte(`"role":"assistant"`)) {
		return false
	}
	var c struct {
		Choices []struct {
			Delta        map[string]json.RawMessage `json:"delta"`
			FinishReason json.RawMessage            `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &c) != nil || len(c.Choices) != 1 || !emptyJSON(c.Usage) || !emptyJSON(c.Error) ||
		!emptyJSON(c.Choices[0].FinishReason) {
		return false
	}
	for name, v := range c.Choices[0].Delta {
		if name != "role" && !emptyJSON(v) {
			return false
		}
	}
	return string(c.Choices[0].Delta["role"]) == `"assistant"`
}

// emptyJSON reports whether v is absent or an empty value: null, "", [] or
// {}.
func emptyJSON(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case "", "null", `""`, "[]", "{}":
		return true
	}
	return false
}

// genericStreamError is the answer of a stream whose first event said it
// failed without an error object.
var genericStreamError = []byte(`{"error":{"message":"upstream stream ended in error","type":"upstream_error","code":502}}`)

// streamError reads one event's data: whether it is an error (a top-level
// error object, or choices[0].finish_reason "error" with no content; on
// the Responses API an "error" event or response.failed), its verdict by
// the fault table, and the JSON error answer that stands for it. An error
// whose code is not an HTTP status counts as a 502 of upstream, Uncoded.
func streamError(h http.Header, data []byte, now time.Time) (v fault.Verdict, body []byte, ok bool) {
	if !fault.MaybeError(data) {
		return fault.Verdict{}, nil, false
	}
	var w struct {
		Error   json.RawMessage `json:"error"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Delta        struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
		// The Responses API's: {"type":"error","code":…,"message":…}, or
		// {"type":"response.failed","response":{"error":{…}}}; the
		// Messages API's: {"type":"error","error":{…}}.
		Type     string `json:"type"`
		Response struct {
			Error json.RawMessage `json:"error"`
		} `json:"response"`
	}
	if json.Unmarshal(data, &w) != nil {
		return fault.Verdict{}, nil, false
	}
	switch w.Type {
	case "error":
		// The Responses API's error is the event itself; the Messages
		// API's ({"type":"error","error":{…}}) is inside it.
		if len(w.Error) == 0 || w.Error[0] != '{' {
			w.Error = data
		}
	case "response.failed":
		w.Error = w.Response.Error
	}
	hasErr := len(w.Error) > 0 && w.Error[0] == '{'
	finErr := len(w.Choices) > 0 && w.Choices[0].FinishReason == "error" && w.Choices[0].Delta.Content == ""
	if !hasErr && !finErr && w.Type != "response.failed" {
		return fault.Verdict{}, nil, false
	}
	judged := data
	if w.Type == "error" || w.Type == "response.failed" {
		// Judged as the chat form's error object, which it matches.
		judged = nil
		if hasErr {
			judged = append(append(append(judged, `{"error":`...), w.Error...), '}')
		}
	}
	v = fault.Classify(http.StatusOK, h, judged, now)
	if v.Status == http.StatusOK {
		v = fault.Verdict{Status: http.StatusBadGateway, Scope: fault.Upstream, Parsed: hasErr, Uncoded: true}
	}
	body = genericStreamError
	if hasErr {
		body = make([]byte, 0, len(w.Error)+10)
		body = append(append(append(body, `{"error":`...), w.Error...), '}')
	}
	return v, body, true
}

// asErrorAnswer turns an answer whose 200 carried an error object (a JSON
// body, or a held stream's first event) into the ordinary JSON error answer
// of the error's status, so that clients and SDKs raise their usual error.
// Other answers are left alone. A wait the error hinted at (v.Until, from
// its metadata) becomes the answer's Retry-After when it has none.
func asErrorAnswer(resp *http.Response, v fault.Verdict, now time.Time) *http.Response {
	if resp.StatusCode != http.StatusOK || v.Status < 400 || v.Status > 599 {
		return resp
	}
	wb, ok := resp.Body.(*watchedBody)
	if !ok {
		return resp
	}
	resp.StatusCode = v.Status
	resp.Status = strconv.Itoa(v.Status) + " " + http.StatusText(v.Status)
	if wait := v.Until.Sub(now); wait > 0 && resp.Header.Get("Retry-After") == "" {
		resp.Header.Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	}
	if wb.hold != holdError {
		return resp // a JSON body, its status now the error's
	}
	// The stream is over for the client: its error event is the answer.
	up := wb.rc
	wb.rc = http.NoBody
	_ = up.Close()
	wb.head, wb.headErr, wb.done = wb.errBody, io.EOF, true
	h := resp.Header
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(wb.errBody)))
	h.Del("Content-Encoding")
	// The stream's trailers will never come: a JSON answer announces none.
	resp.Trailer = nil
	resp.ContentLength = int64(len(wb.errBody))
	resp.TransferEncoding = nil
	resp.Uncompressed = false
	return resp
}

// Late counts the error events a committed stream carries against its
// key: the gateway's stream readers call Event with each event's data.
// The zero Late counts nothing.
type Late struct {
	rl     *Relay
	key    *keyring.Key
	header http.Header
	client string
	blind  bool
	// size is the call's request body length: a late 402 is judged by
	// it as the answer's head was (fault.Verdict.Sized).
	size int
}

// LateOf is the Late of an answer the relay returned; call it before
// wrapping resp.Body.
func LateOf(resp *http.Response) Late {
	if wb, ok := resp.Body.(*watchedBody); ok && wb.rl != nil {
		return Late{rl: wb.rl, key: wb.key, header: resp.Header, client: wb.client, blind: wb.blind, size: int(wb.reqBody.Size())}
	}
	return Late{}
}

// Event judges one event's data of the stream and, when it is an error
// (an error object, or finish_reason "error"), counts it against the key
// by the fault table, without retry: the answer was committed. It reports
// whether the event was an error. Cheap for events that are not.
func (l Late) Event(data []byte) bool {
	if l.rl == nil || !fault.MaybeError(data) {
		return false
	}
	v, _, ok := streamError(l.header, data, l.rl.breakers.Now())
	if !ok || (l.blind && v.Uncoded) {
		return false // on a blind call, the resource's state (judgeObject)
	}
	v = v.Sized(l.size)
	l.rl.lateFault(l.key, v, l.client, l.blind)
	return true
}

// lateFault acts on a fault that came after its answer was committed (an
// error event in mid-stream): the key or its account rests as the fault
// table says (long rests confirmed by GET /key first, as for any fault),
// and the failure is counted; nothing is retried. The bounds of settle
// hold: a blind call's fault rests nothing, and one client's rests are
// bounded by CLIENT_REST_SHARE, or a client could bench the pool with
// errors sent after a first chunk.
func (r *Relay) lateFault(k *keyring.Key, v fault.Verdict, client string, blind bool) {
	if lr, nk := r.inForce(k); lr != nil {
		// Kept by a reload since the stream began: the pool in force
		// learns it.
		r, k = lr, nk
	}
	if v.UserID != "" {
		r.breakers.SetAccount(k, v.UserID)
	}
	if v.Learns() {
		v.Spared = !r.learn(k, v, client, blind) || blind
	}
	r.obs.Judged(k, v)
}

// learn rests k or its account for a key or account fault v that no
// trial of r's breakers stands for (a late fault, or one of a call begun
// on an older snapshot), within settle's bounds; it reports false when
// client's share of rests was used up, and nothing rests.
func (r *Relay) learn(k *keyring.Key, v fault.Verdict, client string, blind bool) bool {
	if blind {
		if r.confirm != nil && v.Reason == fault.Auth {
			v.Spared = true // only the key's own GET /key may rest it
			r.confirm.Confirm(k, v)
		}
		return true
	}
	if client != "" && r.bounded(v) && !r.limiter.allow(client, r.restSlots(k, v), r.breakers.Now(), r.resting) {
		return false
	}
	if r.confirm != nil && needsConfirm(v) {
		// Held, not rested yet: the confirmation counts and tells it.
		r.breakers.RestKey(k, v.Reason, v.Status, r.breakers.Now().Add(r.confirmHold))
		r.confirm.Confirm(k, v)
		return true
	}
	r.restFor(k, v, func() time.Duration { return r.breakers.Confirmed(k, v) }, nil)
	if r.confirm != nil && (v.Status == http.StatusPaymentRequired || v.Status == http.StatusTooManyRequests) {
		r.confirm.PollNow(k)
	}
	return true
}
