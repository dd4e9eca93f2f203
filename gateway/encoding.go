package gateway

import (
	"net/http"
	"strings"

	"github.com/keygate/keygate/relay"
)

// keygate asks upstream for unencoded answers (it sends no
// Accept-Encoding, and its transport adds none), so that the redactor reads
// every byte a client gets, and the usage tap counts tokens without
// decoding anything. An upstream that encodes all the same gets its answer
// decoded as it streams (a 200 JSON or event stream by the relay, before
// it is judged; others here), when it used one gzip or deflate; an answer
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
	codings := relay.Codings(resp.Header)
	delete(resp.Header, "Content-Encoding")
	switch {
	case len(codings) == 0:
		return
	case len(codings) == 1 && relay.Decodes(codings[0]):
		if resp.Body == nil || resp.Body == http.NoBody {
			return
		}
		resp.Body = relay.DecodingBody(resp.Body, codings[0])
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
