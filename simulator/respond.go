package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// call is one request being answered.
type call struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	ks    *keyState // nil until the key is checked
	f     fault
	model string
	read  bool // a budget read: not counted in the key's ByStatus
}

var errBodyTooLarge = errors.New("request body too large")

// readBody appends the request body to buf, up to maxRequestBody.
func readBody(r *http.Request, buf []byte) ([]byte, error) {
	if r.Body == nil {
		return buf, nil
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > maxRequestBody {
			return buf, errBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// readRequestBody reads the request body into a pooled buffer, which the
// caller gives back with putBuf. ok is false when the body could not be read
// and an error answer was sent.
func (c *call) readRequestBody() (bp *[]byte, ok bool) {
	bp = c.s.getBuf()
	body, err := readBody(c.r, (*bp)[:0])
	*bp = body
	if err != nil {
		c.sendBodyError(err)
		return bp, false
	}
	return bp, true
}

func (c *call) sendBodyError(err error) {
	if errors.Is(err, errBodyTooLarge) {
		c.sendError(http.StatusRequestEntityTooLarge, err.Error(), hint{})
		return
	}
	c.sendError(http.StatusBadRequest, "reading request body: "+err.Error(), hint{})
}

// sendError answers with an OpenAI-style error body,
// {"error":{"message":"...","code":<status>}}, and the reset hint h.
func (c *call) sendError(status int, msg string, h hint) {
	b := make([]byte, 0, 64+len(msg))
	b = append(b, `{"error":{"message":`...)
	b = appendQuoted(b, msg)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, "}}"...)
	h.setHeaders(c.w.Header(), c.s.opts.Now())
	c.sendBody(status, "application/json", b)
}

// sendStatus answers with the error body of a status that a Profile or a
// directive asks for (codeBody) and the reset hint h.
func (c *call) sendStatus(status int, h hint) {
	h.setHeaders(c.w.Header(), c.s.opts.Now())
	c.sendBody(status, "application/json", codeBody(status))
}

func (c *call) sendMethodNotAllowed(allow string) {
	c.w.Header().Set("Allow", allow)
	c.sendError(http.StatusMethodNotAllowed, "method not allowed", hint{})
}

// sendPlainError answers a request that reached no endpoint.
func (c *call) sendPlainError(status int, msg string) {
	c.sendError(status, msg, hint{})
}

// wait holds the reply for the latency, and reports false if the client
// went away meanwhile. When the server is closing it aborts the handler, so
// that the client sees a broken connection rather than an empty reply.
func (c *call) wait() bool {
	d := c.s.latency(c.model)
	if c.f.delaySet {
		d = c.f.delay
	}
	return c.pause(d)
}

func (c *call) pause(d time.Duration) bool {
	if c.s.sleep(c.r, d) {
		return true
	}
	if c.s.closing.Load() {
		panic(http.ErrAbortHandler)
	}
	return false
}

func (c *call) writeHead(status int) {
	if c.ks != nil && !c.read {
		c.ks.record(status)
	}
	c.w.WriteHeader(status)
}

// sendBody sends a body known in full, with its Content-Length and SHA-256
// headers, after the latency. The badjson, reset and truncate directives
// apply here: badjson cuts the body in half; reset and truncate send the
// first half (the header's SHA-256 is of those bytes, Content-Length of the
// whole) and then break the connection.
func (c *call) sendBody(status int, contentType string, body []byte) {
	if c.f.badJSON {
		body = body[:len(body)/2]
	}
	cut := c.f.reset || c.f.truncate
	sent := body
	if cut {
		sent = body[:len(body)/2]
	}
	sum := sha256.Sum256(sent)
	var hx [64]byte
	hex.Encode(hx[:], sum[:])

	vals := make([]string, 3)
	vals[0], vals[1], vals[2] = contentType, strconv.Itoa(len(body)), string(hx[:])
	h := c.w.Header()
	h["Content-Type"] = vals[0:1:1]
	h["Content-Length"] = vals[1:2:2]
	h[HeaderBodySHA256] = vals[2:3:3]
	if !c.wait() {
		return
	}
	c.writeHead(status)
	if _, err := c.w.Write(sent); err != nil {
		return
	}
	if cut {
		c.abort(c.f.reset)
	}
}

// abort breaks the connection after flushing what was written: with a TCP
// reset when rst is set, else with a plain close (so a declared
// Content-Length is left unmet). Where the connection cannot be taken over
// (HTTP/2), the handler aborts, which resets the stream.
func (c *call) abort(rst bool) {
	rc := http.NewResponseController(c.w)
	_ = rc.Flush()
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
