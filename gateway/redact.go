package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// Upstream error answers may quote the key they were sent with ("Incorrect
// API key provided: sk-or-v1-…"). Every answer's bytes pass the client
// writer's redactor, which keeps their length; an error answer (status 400
// and up) is also read here, whole when it is short, so that its key shows
// in the same masked form as everywhere else ("sk-or-v1-…c0de") and its
// Content-Length is exact. Bodies are unencoded by now (normalizeEncoding).
const (
	// maxRedactWhole is the largest error body read whole.
	maxRedactWhole = 1 << 20
	// redactBatch is how much of a longer error body is gathered before
	// it is masked and passed on.
	redactBatch = 4 << 10
)

// redactErrorBody masks every pool key r knows in resp's headers and body,
// when it is an error answer.
func redactErrorBody(resp *http.Response, r *secret.Redactor) {
	if r == nil || resp.StatusCode < 400 {
		return
	}
	redactHeader(resp.Header, r)
	if resp.Body == nil || resp.Body == http.NoBody || (resp.Request != nil && resp.Request.Method == http.MethodHead) {
		// A HEAD answer has no body to mask, and keeps the length the
		// GET's would have.
		return
	}
	orig := resp.Body
	head, err := io.ReadAll(io.LimitReader(orig, maxRedactWhole+1))
	switch {
	case errors.Is(err, relay.ErrUndecodable):
		withhold(resp, "it does not decode as its Content-Encoding says")
	case err != nil:
		// Upstream broke off: pass on what came, masked, then the error.
		resp.Body = bodyOf(io.MultiReader(strings.NewReader(maskAccountIDs(r.Redact(string(head)))), errReader{err}), orig)
	case len(head) <= maxRedactWhole:
		setRedacted(resp, head, maskAccountIDs(r.Redact(string(head))), orig)
	default:
		resp.Body = &redactingReader{src: orig, r: r, pending: head}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
}

// redactHeader masks pool keys in every value of h. A value that changes
// gets a new slice: the old one may be shared (a constant of upstream's).
func redactHeader(h http.Header, r *secret.Redactor) {
	for name, vs := range h {
		var out []string
		for i, v := range vs {
			if red := r.Redact(v); red != v {
				if out == nil {
					out = slices.Clone(vs)
				}
				out[i] = red
			}
		}
		if out != nil {
			h[name] = out
		}
	}
}

// withhold replaces an error body keygate cannot check for keys by its own
// JSON error, with the same status.
func withhold(resp *http.Response, why string) {
	_ = resp.Body.Close()
	msg, _ := json.Marshal(apiError{Error: apiErrorBody{
		Message: "upstream answered " + strconv.Itoa(resp.StatusCode) +
			"; its body was withheld because it could not be checked for API keys: " + why,
		Type: "upstream_error",
		Code: resp.StatusCode,
	}})
	resp.Header.Del("Content-Encoding")
	resp.Header.Set("Content-Type", "application/json")
	setRedacted(resp, nil, string(msg), io.NopCloser(nil))
}

// setRedacted makes out resp's whole body. When out is the original head
// unchanged, those very bytes are sent and a Content-Length is set only if
// upstream declared one.
func setRedacted(resp *http.Response, head []byte, out string, closer io.Closer) {
	changed := head == nil || string(head) != out
	var rd io.Reader = strings.NewReader(out)
	if !changed {
		rd = bytes.NewReader(head)
	}
	if changed || resp.Header.Get("Content-Length") != "" {
		resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	}
	resp.ContentLength = int64(len(out))
	resp.Body = bodyOf(rd, closer)
}

// readCloser reads from one reader and closes another: the upstream body,
// which gives the key back when closed.
type readCloser struct {
	io.Reader
	io.Closer
}

func bodyOf(r io.Reader, c io.Closer) io.ReadCloser { return readCloser{r, c} }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// redactingReader masks keys in a body too long to read whole. It masks
// what it has read in batches of redactBatch bytes, and holds back a tail
// that may be a key cut between two reads until more comes.
type redactingReader struct {
	src     io.ReadCloser
	r       *secret.Redactor
	pending []byte // read, not yet masked
	out     []byte // masked, ready for the reader
	err     error
	buf     []byte
}

func (b *redactingReader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.buf == nil {
			b.buf = make([]byte, 32<<10)
		}
		n, err := b.src.Read(b.buf)
		b.pending = append(b.pending, b.buf[:n]...)
		if err != nil {
			b.err = err
			b.out, b.pending = []byte(maskAccountIDs(b.r.Redact(string(b.pending)))), nil
			continue
		}
		if len(b.pending) >= redactBatch {
			// A "user_id" member the batch's end cuts waits for the
			// rest of its value, as a cut key does.
			out, used := b.r.RedactPrefix(string(b.pending[:accountHold(b.pending)]))
			b.out = []byte(maskAccountIDs(out))
			b.pending = append(b.pending[:0], b.pending[used:]...)
		}
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

func (b *redactingReader) Close() error { return b.src.Close() }

// maxAccountHold bounds what accountHold keeps back: an account id is
// short, and a body that never closes the string is passed on.
const maxAccountHold = 4 << 10

// accountHold is where in b a "user_id" member starts that the end of b
// may cut (its name, or its string value, unfinished), so that
// maskAccountIDs sees it whole with what follows; len(b) when none.
func accountHold(b []byte) int {
	const member = `"user_id"`
	from := max(0, len(b)-maxAccountHold)
	for n := min(len(member)-1, len(b)-from); n > 0; n-- {
		if bytes.HasSuffix(b, []byte(member[:n])) {
			return len(b) - n
		}
	}
	i := bytes.LastIndex(b[from:], []byte(member))
	if i < 0 {
		return len(b)
	}
	i += from
	k := skipSpace(b, i+len(member))
	if k < len(b) && b[k] == ':' {
		k = skipSpace(b, k+1)
	}
	if k >= len(b) || b[k] == '"' && skipString(b, k) < 0 {
		return i
	}
	return len(b)
}
