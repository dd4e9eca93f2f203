package relay

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strings"
)

// keygate asks upstream for unencoded answers (it sends no
// Accept-Encoding, and its transport adds none). An upstream that encodes
// a 200 JSON or event-stream answer all the same, in one gzip or deflate,
// gets it decoded here, before it is judged: the stream hold and the check
// for a JSON error object read what the client will, so that a key's fault
// in a compressed answer still goes on to another key. Other answers are
// decoded by the gateway (or withheld there, in a coding it cannot read).

// ErrUndecodable is the read error of a body that does not decode as its
// Content-Encoding says; it words the break without quoting its bytes.
var ErrUndecodable = errors.New("upstream answer does not decode as its Content-Encoding says")

// Codings lists the content codings h declares, lower case, identity left
// out. Every Content-Encoding header counts, not only the first.
func Codings(h http.Header) []string {
	var codings []string
	for _, v := range h["Content-Encoding"] {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	return codings
}

// Decodes reports whether DecodingBody reads the coding enc.
func Decodes(enc string) bool { return enc == "gzip" || enc == "deflate" }

// DecodingBody is src decoded from enc (gzip, or deflate) as it is read. The
// decoder is made on the first read: making it reads the stream's header,
// which must not hold up the answer's status.
func DecodingBody(src io.ReadCloser, enc string) io.ReadCloser {
	return &decodingBody{src: src, enc: enc}
}

// decodeAhead decodes a 200 JSON or event-stream answer of one gzip or
// deflate coding as wb reads it, and says so in resp's headers.
func decodeAhead(resp *http.Response, wb *watchedBody) {
	if _, ok := resp.Header["Content-Encoding"]; !ok || wb.rc == http.NoBody || !(isJSON(resp.Header) || eventStreamType(resp.Header)) {
		return
	}
	codings := Codings(resp.Header)
	switch {
	case len(codings) == 0:
		delete(resp.Header, "Content-Encoding")
	case len(codings) == 1 && Decodes(codings[0]):
		wb.rc = DecodingBody(wb.rc, codings[0])
		delete(resp.Header, "Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
	}
}

type decodingBody struct {
	src io.ReadCloser
	enc string
	dec io.Reader
	err error
}

func (b *decodingBody) Read(p []byte) (int, error) {
	if b.dec == nil && b.err == nil {
		if b.enc == "gzip" {
			b.dec, b.err = gzip.NewReader(b.src)
		} else {
			b.dec, b.err = inflater(b.src)
		}
		if b.err != nil {
			b.err = ErrUndecodable
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.dec.Read(p)
	if err != nil && err != io.EOF {
		err = ErrUndecodable
	}
	return n, err
}

func (b *decodingBody) Close() error { return b.src.Close() }

// inflater reads a deflate body: zlib-wrapped, as RFC 9110 says, or raw
// DEFLATE, which many servers send instead (browsers take both).
func inflater(src io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(src, 64)
	h, err := br.Peek(2)
	if err != nil && len(h) < 2 {
		return nil, ErrUndecodable
	}
	// A zlib header: compression method 8, and the two bytes a multiple
	// of 31 (RFC 1950).
	if h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}
