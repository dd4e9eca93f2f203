package secret

import "strings"

// HideUserinfo is raw as an error message may quote it: whatever stands
// before the last '@' is replaced by "…", except a scheme followed by a
// slash ("redis://", "redis:/"), which is kept so the operator sees the
// typo.
//
// It reads raw as written, not as url.Parse does, because the URLs it is
// for are the ones that failed to parse or to validate: a '#', '/' or '?'
// inside a password, or a scheme written "redis:/" or "redis:", makes
// url.Parse put the user info in the path, fragment or port, where
// (*url.URL).Redacted shows it. The user name goes too, since a token is
// often written there alone (https://TOKEN@host). hidden reports whether
// anything was replaced.
func HideUserinfo(raw string) (shown string, hidden bool) {
	at := strings.LastIndexByte(raw, '@')
	if at < 0 {
		return raw, false
	}
	head := ""
	if i := strings.IndexByte(raw[:at], ':'); i > 0 && isScheme(raw[:i]) && i+1 < at && raw[i+1] == '/' {
		j := i + 1
		for j < at && raw[j] == '/' {
			j++
		}
		head = raw[:j]
	}
	return head + "…" + raw[at:], true
}

// isScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' or '.').
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}
