package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/secret"
)

// Upstream error answers may quote the key they were sent with ("Incorrect
// API key provided: sk-or-v1-…"). The passthrough masks pool keys in every
// error answer (status 400 and up) before the client gets it; an answer
// that quotes no key goes out byte for byte as it came. Successful answers
// are not read: they are the hot path, and a provider has no reason to
// quote the key in them.
const (
	// maxRedactWhole is the largest error body read whole: it keeps an
	// exact Content-Length, and a gzip'ed one can be looked into.
	maxRedactWhole = 1 << 20
	// redactHold is what is held back between reads of a longer error
	// body, so that a key split across reads is still found. Keys longer
	// than this are not masked in such bodies.
	redactHold = 4 << 10
	// maxGunzip bounds a gzip'ed error body once decoded.
	maxGunzip = 8 << 20
)

// redactErrorBody replaces resp's body, when it is an error answer, by one
// in which every pool key r knows is masked.
func redactErrorBody(resp *http.Response, r *secret.Redactor) {
	if r == nil || resp.StatusCode < 400 || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	orig := resp.Body
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	plain := enc == "" || enc == "identity"
	head, err := io.ReadAll(io.LimitReader(orig, maxRedactWhole+1))
	switch {
	case err != nil:
		// Upstream broke off: pass on what came, masked, then the error.
		resp.Body = bodyOf(io.MultiReader(strings.NewReader(r.Redact(string(head))), errReader{err}), orig)
	case len(head) <= maxRedactWhole && plain:
		setRedacted(resp, head, r.Redact(string(head)), orig)
	case len(head) <= maxRedactWhole && enc == "gzip":
		text, ok := gunzip(head)
		if out := r.Redact(text); ok && out != text {
			resp.Header.Del("Content-Encoding")
			setRedacted(resp, nil, out, orig)
			return
		}
		setRedacted(resp, head, string(head), orig)
	case plain:
		resp.Body = &redactingReader{src: orig, r: r, pending: head}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	default:
		// Large and encoded some other way: nothing to look into.
		resp.Body = bodyOf(io.MultiReader(bytes.NewReader(head), orig), orig)
	}
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

func gunzip(b []byte) (string, bool) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return "", false
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxGunzip+1))
	if err != nil || len(out) > maxGunzip {
		return "", false
	}
	return string(out), true
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

// redactingReader masks keys in a body too long to read whole: it holds
// back the last redactHold bytes read until more come, so that a key cut
// between two reads is masked whole.
type redactingReader struct {
	src     io.ReadCloser
	r       *secret.Redactor
	pending []byte // read, masked as far as seen, not yet handed out
	out     []byte // ready for the reader
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
			b.out, b.pending = []byte(b.r.Redact(string(b.pending))), nil
			continue
		}
		if len(b.pending) > 2*redactHold {
			red := b.r.Redact(string(b.pending))
			cut := len(red) - redactHold
			b.out, b.pending = []byte(red[:cut]), append(b.pending[:0], red[cut:]...)
		}
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

func (b *redactingReader) Close() error { return b.src.Close() }
