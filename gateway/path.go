package gateway

import (
	"errors"
	"net/url"
	"strings"
)

// errBadPath is returned for a passthrough path that would leave the base.
var errBadPath = errors.New("path must not contain . or .. segments")

// mapPath maps the client's /v1/<rest>?<query> (or /api/v1/<rest>?<query>)
// onto base: <base>/<rest>?<query>. A rest with "." or ".." segments, in
// plain or percent-encoded form, is refused: it could climb out of the base
// path.
func mapPath(base *url.URL, in *url.URL) (url.URL, error) {
	prefix := v1Prefix(in.EscapedPath())
	rest, ok := strings.CutPrefix(in.Path, prefix)
	if prefix == "" || !ok || (rest != "" && rest[0] != '/') {
		return url.URL{}, errBadPath
	}
	if hasDotSegment(rest) || strings.Contains(rest, "\\") {
		return url.URL{}, errBadPath
	}
	out := *base
	out.Path = base.Path + rest
	// Escaped, both the base's escapes (a %2F in OPENROUTER_BASE_URL) and
	// the client's are kept. When neither path has escapes of its own
	// (RawPath is empty), the escaped path is the default encoding of
	// Path and needs no second string.
	out.RawPath = ""
	if base.RawPath != "" || in.RawPath != "" {
		rawRest, ok := strings.CutPrefix(in.EscapedPath(), prefix)
		if !ok {
			return url.URL{}, errBadPath
		}
		out.RawPath = base.EscapedPath() + rawRest
	}
	out.RawQuery = in.RawQuery
	out.Fragment = ""
	out.RawFragment = ""
	return out, nil
}

// hasDotSegment reports whether a decoded path has a "." or ".." segment.
func hasDotSegment(p string) bool {
	for len(p) > 0 {
		var seg string
		seg, p, _ = strings.Cut(p, "/")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
