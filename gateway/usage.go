package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/sse"
)

// maxUsageScan bounds how much of a plain JSON answer is kept whole to
// read its usage; of a larger one only the tail (usageTail) is kept.
const maxUsageScan = 256 << 10

// TokenCounter receives the token usage found in an upstream answer.
type TokenCounter interface {
	Tokens(keyID int, model string, prompt, completion int)
}

// CostCounter is a TokenCounter that also receives what an answer cost
// (OpenRouter's usage.cost, in USD credits).
type CostCounter interface {
	Cost(keyID int, model string, usd float64)
}

// MissCounter is a TokenCounter that also learns of an answer that ended
// without a usage object: cut before its end (a client gone, a connection
// lost), which upstream may still charge, so the key's budget is worth
// reading again soon.
type MissCounter interface {
	NoUsage(keyID int)
}

// usageTap watches an answer pass to the client and counts its tokens when
// it ends: the usage object of a JSON answer read to its end, or of the
// last SSE event that carries one (a stream cut after it counts too). It
// never holds data back from the client; parsing happens on
// Close, after the body was forwarded. On a stream it also hands every
// error event (after the relay's hold committed the answer) to late, which
// counts it against the key.
type usageTap struct {
	rc     io.ReadCloser
	stream bool
	buf    *bytes.Buffer // JSON: the answer so far, or its tail
	sp     *sse.Splitter // SSE: the events
	last   []byte        // SSE: the data of the last event with a usage field
	// opened is the usage of a Messages API stream's message_start: its
	// input tokens, which the final message_delta's may leave out.
	opened []byte
	eof    bool
	tail   bool // JSON: past maxUsageScan, buf keeps only the end
	// sniff: an SSE answer whose first byte past blanks is not read yet.
	// A '{' there makes it a JSON answer under an event-stream label (the
	// relay's hold passes such a body on as it came), read as JSON is.
	sniff bool
	// JSON: looked is set once the answer's first byte past blanks was
	// read; other, when it opened no object, which then holds no usage
	// and is not kept (a garbage or bomb answer held maxUsageScan each).
	looked, other bool
	// counter may be nil: the tap then only watches for late errors.
	counter TokenCounter
	late    relay.Late
	keyID   int
	model   string
}

var (
	tapBuffers   = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	tapSplitters = sync.Pool{New: func() any { return &sse.Splitter{Max: maxUsageScan} }}
)

// tapUsage wraps resp.Body so that counter (which may be nil) gets the
// answer's usage, if any, and a relay's stream its late error events.
func tapUsage(resp *http.Response, counter TokenCounter, keyID int, model string) {
	tapUsageIn(nil, resp, counter, keyID, model)
}

// tapUsageIn is tapUsage with the tap in t, which must outlive the body,
// or in a new one when t is nil.
func tapUsageIn(t *usageTap, resp *http.Response, counter TokenCounter, keyID int, model string) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	var stream bool
	switch ct := mediaType(resp.Header.Get("Content-Type")); {
	case strings.EqualFold(ct, "text/event-stream"):
		stream = true
	case counter == nil:
		return
	case strings.EqualFold(ct, "application/json"):
	default:
		return
	}
	// Answers reach the tap unencoded (normalizeEncoding): it never
	// decodes, so it holds at most maxUsageScan bytes of any answer
	// (2*usageTail of one that declares itself larger).
	if _, ok := resp.Header["Content-Encoding"]; ok {
		return
	}
	if t == nil {
		t = new(usageTap)
	}
	*t = usageTap{rc: resp.Body, stream: stream, counter: counter, keyID: keyID, model: model}
	if stream {
		t.late = relay.LateOf(resp)
		t.sp = tapSplitters.Get().(*sse.Splitter)
		t.sp.Reset()
		t.sniff = counter != nil
	} else {
		t.buf = tapBuffers.Get().(*bytes.Buffer)
		t.buf.Reset()
		t.tail = resp.ContentLength > maxUsageScan
	}
	resp.Body = t
}

func (t *usageTap) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 {
		got := p[:n]
		if t.sniff {
			got = got[t.sniffJSON(got):]
		}
		if !t.stream && !t.looked {
			if i := skipSpace(got, 0); i < len(got) {
				t.looked, t.other = true, got[i] != '{'
			}
		}
		switch {
		case t.stream:
			t.scanEvents(got)
		case t.other:
		case t.tail || t.buf.Len()+len(got) > maxUsageScan:
			t.tail = true
			t.keepTail(got)
		default:
			t.buf.Write(got)
		}
	}
	if err == io.EOF && !t.eof {
		t.eof = true
		if t.stream && t.sp.Pending() {
			t.endEvent()
		}
	}
	return n, err
}

// sniffJSON turns a stream tap into a JSON one when p's first byte past
// blanks opens an object: no event stream starts so (a line opens with a
// field name or a colon), and the splitter would find no data in it. It
// returns where the JSON starts in p (0 when it stays a stream), so that
// blanks before it count nowhere, however the answer was cut into reads.
func (t *usageTap) sniffJSON(p []byte) int {
	i := skipSpace(p, 0)
	if i == len(p) {
		return 0
	}
	t.sniff = false
	if p[i] != '{' {
		return 0
	}
	// What the splitter saw so far was blanks only.
	t.sp.Reset()
	tapSplitters.Put(t.sp)
	t.sp, t.stream = nil, false
	t.buf = tapBuffers.Get().(*bytes.Buffer)
	t.buf.Reset()
	return i
}

// endEvent takes the usage of an event the stream ended before its blank
// line: SSE readers drop such an event, but upstream billed what it says.
// It goes to no late fault, which a client never saw either.
// An event too long to keep is read for the usage its tail holds, as
// scanEvents reads one that a blank line ends.
func (t *usageTap) endEvent() {
	skipped := t.sp.Skipped
	if ev, ok := t.sp.End(); ok && bytes.Contains(ev.Data, []byte(`"usage"`)) {
		t.last = append(t.last[:0], ev.Data...)
	}
	if t.sp.Skipped != skipped && t.buf != nil {
		t.tailEvent()
	}
}

// scanEvents keeps the data of the last SSE event that mentions usage, and
// passes error events to late. An event longer than maxUsageScan is
// skipped whole, however it was split between reads, but for the usage
// object its tail holds (tailUsage).
func (t *usageTap) scanEvents(p []byte) {
	skipped := t.sp.Skipped
	for ev, rest, ok := t.sp.Next(p); ok; ev, rest, ok = t.sp.Next(rest) {
		if bytes.Contains(ev.Data, []byte(`"usage"`)) {
			t.last = append(t.last[:0], ev.Data...)
			if len(t.opened) == 0 && bytes.Contains(ev.Data, []byte(`"message_start"`)) {
				t.opened = append(t.opened[:0], topLevel(topLevel(ev.Data, "message"), "usage")...)
			}
		}
		t.late.Event(ev.Data)
	}
	if t.sp.Skipped == skipped && !t.sp.Long() && t.sp.Kept() <= maxUsageScan-usageTail {
		if t.buf != nil {
			// A tail begun of an event that stayed short.
			t.buf.Reset()
		}
		return
	}
	// An event too long to keep: the Responses API's response.completed
	// repeats the whole response beside its usage, which comes near its
	// end. Its tail is kept, and read once the event is over. The tail is
	// begun usageTail before the splitter finds the event long (and drops
	// what it kept), so that it holds the end that came before.
	if t.buf == nil {
		t.buf = tapBuffers.Get().(*bytes.Buffer)
		t.buf.Reset()
	}
	t.keepTail(p)
	if t.sp.Skipped != skipped {
		t.tailEvent()
	}
}

// tailEvent takes the usage object of the tail kept of an event too long
// to keep whole, now over, and forgets the tail.
func (t *usageTap) tailEvent() {
	if u := tailUsage(t.buf.Bytes()); u != nil {
		t.last = append(append(append(t.last[:0], `{"usage":`...), u...), '}')
	}
	t.buf.Reset()
}

func (t *usageTap) Close() error {
	err := t.rc.Close()
	if t.buf == nil && t.sp == nil {
		return err
	}
	if t.counter != nil {
		var raw []byte
		switch {
		case !t.eof && !t.stream, t.other:
			// A JSON answer cut short: its usage never came; or one
			// that is no object, which has none.
		case t.stream:
			raw = eventUsage(bytes.TrimSpace(t.last))
		case t.tail:
			// Only the last usageTail bytes: what is read must not
			// depend on how the answer was cut into reads.
			b := t.buf.Bytes()
			raw = lastUsage(b[max(0, len(b)-usageTail):])
		default:
			raw = topLevel(t.buf.Bytes(), "usage")
		}
		if !t.count(raw) {
			if mc, ok := t.counter.(MissCounter); ok {
				mc.NoUsage(t.keyID)
			}
		}
	}
	if t.sp != nil {
		t.sp.Reset()
		tapSplitters.Put(t.sp)
	}
	if t.buf != nil && t.buf.Cap() <= maxUsageScan {
		tapBuffers.Put(t.buf)
	}
	t.buf, t.sp = nil, nil
	return err
}

// eventUsage is the usage object of a stream event's data: top-level in
// a chat completion chunk, under "response" in the Responses API's
// response.completed (its response.created has a null one there).
func eventUsage(data []byte) []byte {
	if raw := topLevel(data, "usage"); len(raw) > 0 && raw[0] == '{' {
		return raw
	}
	return topLevel(topLevel(data, "response"), "usage")
}

// count hands the tokens and the cost of the usage object raw (nil when
// the answer had none) to the counter; false when raw is no object.
func (t *usageTap) count(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	var v [len(usageFields)][]byte
	topLevels(raw, usageFields[:], v[:])
	if v[0] == nil && v[3] == nil && len(t.opened) > 0 && t.opened[0] == '{' {
		// A Messages API stream: the input tokens were told at its start.
		var o [len(usageFields)][]byte
		topLevels(t.opened, usageFields[:], o[:])
		v[3] = o[3]
	}
	// Chat completions name the counts prompt and completion, the
	// Responses API input and output.
	if v[0] == nil {
		v[0] = v[3]
	}
	if v[1] == nil {
		v[1] = v[4]
	}
	prompt, ok1 := countOf(v[0])
	completion, ok2 := countOf(v[1])
	if ok1 && ok2 && (prompt > 0 || completion > 0) {
		t.counter.Tokens(t.keyID, t.model, prompt, completion)
	}
	if cc, ok := t.counter.(CostCounter); ok {
		if usd, ok := costOf(v[2]); ok {
			cc.Cost(t.keyID, t.model, usd)
		}
	}
	return true
}

// mediaType is a Content-Type without its parameters, as sent (compare it
// folded). mime.ParseMediaType would allocate a map on every answer.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.TrimSpace(ct)
}

// eventStream reports whether h declares a text/event-stream answer.
func eventStream(h http.Header) bool {
	return strings.EqualFold(mediaType(h.Get("Content-Type")), "text/event-stream")
}

// usageFields are the fields of a usage object the tap reads, in one scan:
// the counts as chat completions name them, the cost, and the counts as
// the Responses API names them.
var usageFields = [...]string{"prompt_tokens", "completion_tokens", "cost", "input_tokens", "output_tokens"}

// countOf reads the raw JSON value of a token count (topLevels' form)
// without decoding it; an absent (nil) or null value is 0. ok is false
// when the value is not a count (a non-negative integer).
func countOf(raw []byte) (n int, ok bool) {
	if raw == nil || string(raw) == "null" {
		return 0, true
	}
	if len(raw) == 0 || len(raw) > 15 {
		return 0, false
	}
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// usageCost reads a usage object's cost, a non-negative number.
func usageCost(usage []byte) (float64, bool) {
	return costOf(topLevel(usage, "cost"))
}

// costOf reads a raw JSON value as usageCost does.
func costOf(raw []byte) (float64, bool) {
	if len(raw) == 0 || len(raw) > 32 || raw[0] == '-' {
		return 0, false
	}
	usd, err := strconv.ParseFloat(string(raw), 64)
	return usd, err == nil && usd > 0
}
