package gateway

import (
	"strings"

	"github.com/keygate/keygate/breaker"
)

// maskAccountIDs replaces the value of every "user_id" member of an error
// body with its account's label, the 8 hex digits keygate names accounts
// by everywhere: a pool account's id is the operator's, not a client's to
// learn (GET /v1/key is refused for it too). OpenRouter puts it at the
// top of some error bodies. Other text is left byte for byte.
func maskAccountIDs(s string) string {
	const member = `"user_id"`
	if !strings.Contains(s, member) {
		return s
	}
	body := []byte(s)
	var b strings.Builder
	at := 0 // body[:at] is written
	for from := 0; ; {
		i := strings.Index(s[from:], member)
		if i < 0 {
			break
		}
		i += from
		from = i + len(member)
		k := skipSpace(body, from)
		if k >= len(body) || body[k] != ':' {
			continue
		}
		k = skipSpace(body, k+1)
		if k >= len(body) || body[k] != '"' {
			continue
		}
		end := skipString(body, k) // just past the closing quote
		if end < 0 {
			break
		}
		b.WriteString(s[at : k+1])
		b.WriteString(breaker.AccountLabel(s[k+1 : end-1]))
		at, from = end-1, end
	}
	if at == 0 {
		return s
	}
	b.WriteString(s[at:])
	return b.String()
}
