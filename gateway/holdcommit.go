package gateway

import (
	"net/http"

	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/sse"
)

// CommitHeld implements relay.Committer: at STREAM_HOLD_TIMEOUT the
// stream's status and headers, and the comments held so far, go to the
// client as the proxy would send them, flushed, while upstream is still
// silent. The proxy then writes the rest of the body after them; its own
// header write finds them sent (clientWriter writes a final status once).
// The held bytes also prime the usage tap's splitter, which so reads the
// body from where the client's copy of it is; held blanks alone leave the
// tap as it starts, still looking for a JSON answer's '{'.
func (ex *exchange) CommitHeld(resp *http.Response, trailer http.Header, held []byte) {
	w := ex.w
	// The final status goes out now: after the 1xx answers written so
	// far, and with no more to come.
	ex.info.end()
	normalizeEncoding(resp)
	answerHead(w.Header(), resp, trailer)
	w.WriteHeader(resp.StatusCode)
	if len(held) > 0 {
		_, _ = w.Write(held)
	}
	_ = flushWriter(w)
	if skipSpace(held, 0) == len(held) {
		return
	}
	sp := tapSplitters.Get().(*sse.Splitter)
	sp.Reset()
	for _, rest, ok := sp.Next(held); ok; _, rest, ok = sp.Next(rest) {
	}
	ex.heldTap = sp
}

// resumeTap hands a stream's usage tap, if resp.Body is one, the splitter
// that read what the hold's timeout sent ahead of the body. The answer is
// a stream then, whatever its body starts with: the held bytes were SSE.
func resumeTap(resp *http.Response, sp *sse.Splitter) {
	if t, ok := resp.Body.(*usageTap); ok && t.sp != nil {
		tapSplitters.Put(t.sp)
		t.sp, t.sniff = sp, false
		return
	}
	sp.Reset()
	tapSplitters.Put(sp)
}

var _ relay.Committer = (*exchange)(nil)
