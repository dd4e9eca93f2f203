package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// processing is the SSE comment OpenRouter sends while a provider works,
// before the first event and now and then between events; clients skip it.
const processing = ": OPENROUTER PROCESSING\n\n"

// holdTick is the gap between the comments of a hold= directive.
const holdTick = 250 * time.Millisecond

// appendStream appends the streamed reply as server-sent events, as
// OpenRouter sends them: a processing comment, one "chat.completion.chunk"
// per piece (the first with the role; now and then a comment before one), a
// chunk with an empty delta and finish_reason "stop", the usage chunk that
// repeats finish_reason, then "data: [DONE]". It returns the end offset (in
// dst) of each piece's event and of the tail (the rest, sent at once).
// Directives change it: badjson cuts the first event's JSON in half; nodata
// ends it after the comment; inband ends it with an error event after
// errorafter pieces (and no [DONE]).
func (cp *completion) appendStream(dst []byte, pieces []string, f *fault) ([]byte, []int) {
	ends := make([]int, 0, len(pieces)+1)
	dst = append(dst, processing...)
	if f.noData {
		return dst, append(ends, len(dst))
	}
	errAt := -1
	if f.inband != 0 {
		errAt = min(f.errAfter, len(pieces))
	}
	for i, p := range pieces {
		if i == errAt {
			break
		}
		if i > 0 && mix64(cp.noise+uint64(i))&3 == 0 {
			dst = append(dst, processing...)
		}
		start := len(dst)
		dst = append(dst, "data: "...)
		dst = cp.appendHead(dst, "chat.completion.chunk")
		dst = append(dst, `,"choices":[{"index":0,"delta":{`...)
		if i == 0 {
			dst = append(dst, `"role":"assistant",`...)
		}
		dst = append(dst, `"content":"`...)
		dst = appendEscaped(dst, p)
		dst = append(dst, `"},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}`...)
		if i == 0 && f.badJSON {
			dst = dst[:start+(len(dst)-start)/2]
		}
		dst = append(dst, "\n\n"...)
		ends = append(ends, len(dst))
	}
	if errAt >= 0 {
		dst = append(dst, "data: "...)
		dst = cp.appendHead(dst, "chat.completion.chunk")
		dst = append(dst, `,"error":{"code":`...)
		dst = strconv.AppendInt(dst, int64(f.inband), 10)
		dst = append(dst, `,"message":`...)
		dst = appendQuoted(dst, statusMessage(f.inband))
		dst = append(dst, `},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error","native_finish_reason":"error","logprobs":null}]}`+"\n\n"...)
		return dst, append(ends, len(dst))
	}
	dst = append(dst, "data: "...)
	dst = cp.appendHead(dst, "chat.completion.chunk")
	dst = append(dst, `,"choices":[{"index":0,"delta":{},`...)
	dst = cp.appendFinish(dst)
	dst = append(dst, `,"logprobs":null}]}`+"\n\n"...)
	if cp.usage {
		dst = append(dst, "data: "...)
		dst = cp.appendHead(dst, "chat.completion.chunk")
		dst = append(dst, `,"choices":[{"index":0,"delta":{"content":""},`...)
		dst = cp.appendFinish(dst)
		dst = append(dst, `,"logprobs":null}],`...)
		dst = cp.appendUsage(dst)
		dst = append(dst, "}\n\n"...)
	}
	dst = append(dst, "data: [DONE]\n\n"...)
	return dst, append(ends, len(dst))
}

// appendFinish appends a last chunk's finish_reason and
// native_finish_reason.
func (cp *completion) appendFinish(dst []byte) []byte {
	dst = append(dst, `"finish_reason":"`...)
	dst = append(dst, cp.finishReason()...)
	dst = append(dst, `","native_finish_reason":"`...)
	dst = append(dst, cp.finishReason()...)
	return append(dst, '"')
}

// sendStream streams the reply cp, once the account has admitted it. buf is
// scratch space.
func (c *call) sendStream(cp *completion, maxTokens int, buf *[]byte) {
	chunks := c.s.opts.Chunks
	if c.f.chunks > 0 {
		chunks = c.f.chunks
	}
	var ends []int
	build := func() int {
		*buf, ends = cp.appendStream((*buf)[:0], split(cp.content(), chunks), &c.f)
		return len(*buf)
	}
	cp.fit(c.f.big, build)
	cp.capAt(maxTokens)
	build()
	if !c.admit(cp, maxTokens) {
		return
	}
	c.generation(cp, true)
	c.writeEvents(*buf, ends)
}

// writeEvents sends a stream of server-sent events, body cut into segments
// at ends, flushed one by one with the chunk delay between them (not before
// the last), and the body's SHA-256 as a trailer. The hold= directive sends
// only processing comments for a while first. With reset or truncate the
// first segment is sent (its SHA-256 in a header; truncate also declares the
// whole Content-Length) and then the connection breaks.
func (c *call) writeEvents(body []byte, ends []int) {
	gap := c.s.opts.ChunkDelay
	if c.f.chunkDelaySet {
		gap = c.f.chunkDelay
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	cut := c.f.reset || c.f.truncate
	if cut {
		sum := sha256.Sum256(body[:ends[0]])
		h.Set(HeaderBodySHA256, hex.EncodeToString(sum[:]))
	} else {
		h.Set("Trailer", HeaderBodySHA256)
	}
	if c.f.truncate {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	if !c.wait() {
		return
	}
	c.writeHead(http.StatusOK)
	rc := http.NewResponseController(c.w)
	hs := sha256.New()
	if c.f.holdSet && !cut {
		for left := c.f.hold; left > 0; left -= holdTick {
			if _, err := c.w.Write([]byte(processing)); err != nil {
				return
			}
			hs.Write([]byte(processing))
			if err := rc.Flush(); err != nil || !c.pause(min(left, holdTick)) {
				return
			}
		}
	}
	start := 0
	for i, end := range ends {
		seg := body[start:end]
		start = end
		if _, err := c.w.Write(seg); err != nil {
			return
		}
		hs.Write(seg)
		if err := rc.Flush(); err != nil {
			return
		}
		if i == 0 && cut {
			c.abort(c.f.reset)
			return
		}
		if i < len(ends)-2 && !c.pause(gap) {
			return
		}
	}
	h.Set(HeaderBodySHA256, hex.EncodeToString(hs.Sum(nil)))
}
