package gateway

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
// Accept-Encoding, and its transport adds none), so that the redactor reads
// every byte a client gets, and the usage tap counts tokens without
// decoding anything. An upstream that encodes all the same gets its answer
// decoded here as it streams, when it used one gzip or deflate; an answer
// in any other coding (br, zstd, two codings) cannot be checked for keys
// and is withheld. Decoding streams: it holds one decoder's window, never
// the decoded answer.

// normalizeEncoding leaves resp unencoded: as it is, decoded, or withheld.
// Every Content-Encoding header counts, not only the first.
func normalizeEncoding(resp *http.Response) {
	vs, ok := resp.Header["Content-Encoding"]
	if !ok {
		return
	}
	var codings []string
	for _, v := range vs {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	delete(resp.Header, "Content-Encoding")
	switch {
	case len(codings) == 0:
		return
	case len(codings) == 1 && (codings[0] == "gzip" || codings[0] == "deflate"):
		if resp.Body == nil || resp.Body == http.NoBody {
			return
		}
		resp.Body = &decodingBody{src: resp.Body, enc: codings[0]}
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	default:
		resp.Header["Content-Encoding"] = vs
		if resp.StatusCode < 400 {
			resp.StatusCode, resp.Status = http.StatusBadGateway, ""
		}
		withhold(resp, "its Content-Encoding ("+strings.Join(codings, ", ")+") is not one keygate can read")
	}
}

// decodingBody decodes an upstream body as it is read. The decoder is made
// on the first read: making it reads the stream's header, which must not
// hold up the answer's status.
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
			b.err = errUndecodable
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.dec.Read(p)
	if err != nil && err != io.EOF {
		err = errUndecodable
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
		return nil, errUndecodable
	}
	// A zlib header: compression method 8, and the two bytes a multiple
	// of 31 (RFC 1950).
	if h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// errUndecodable words a broken encoded body without quoting its bytes.
var errUndecodable = errors.New("upstream answer does not decode as its Content-Encoding says")
