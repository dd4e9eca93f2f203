package gateway

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/secret"
)

// bearerWellFormed is the grammar access.Bearer documents, written out
// independently: the scheme "Bearer" in any ASCII case, one space, then a
// token after optional further spaces; surrounding white space is not part
// of the token, and a token must not be empty (RFC 6750: 1*b64token).
func bearerWellFormed(v string) (string, bool) {
	if len(v) < 7 || v[6] != ' ' {
		return "", false
	}
	for i, c := range []byte(v[:6]) {
		if c|0x20 != "bearer"[i] {
			return "", false
		}
	}
	tok := strings.TrimSpace(v[7:])
	return tok, tok != ""
}

// schemeCase spells "Bearer" with letter i upper case where bit i of bits
// is set.
func schemeCase(bits uint8) string {
	b := []byte("bearer")
	for i := range b {
		if bits&(1<<i) != 0 {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzBearerToken checks the client token parser. Properties, for any
// Authorization value v:
//
//   - access.Bearer never panics;
//   - it accepts v exactly when v is well formed ("Bearer", any case, a
//     space, a non-empty token): garbage, an empty token included, is
//     rejected, and a rejected value yields no token;
//   - an accepted token round-trips: scheme (any case) + one or more
//     spaces + token parses back to that very token;
//   - Server.authorized, with that token configured, lets v in exactly when
//     access.Bearer accepts it with the configured token.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []struct {
		v    string
		bits uint8
	}{
		{"Bearer sk-gw-0123456789", 0},
		{"bearer tok", 0x3f},
		{"BEARER   tok  ", 0x15},
		{"Bearer\ttok", 1},
		{"Bearertok", 2},
		{"Basic dXNlcjpwYXNz", 3},
		{"Bearer a b c", 4},
		{" Bearer tok", 5},
		{"Bearer \u00a0tok\u2003", 6},
		{"Beare tok", 7},
		{"Bearer tok\x00", 8},
		{"", 9},
		{"Bearer", 10},
	} {
		f.Add(s.v, s.bits)
	}
	f.Fuzz(func(t *testing.T, v string, bits uint8) {
		tok, ok := access.Bearer(v)
		want, wantOK := bearerWellFormed(v)
		if ok != wantOK || tok != want {
			t.Fatalf("access.Bearer(%q) = %q, %v; want %q, %v", v, tok, ok, want, wantOK)
		}
		if !ok {
			return
		}
		scheme := schemeCase(bits)
		for _, sp := range []string{" ", "   "} {
			if got, ok := access.Bearer(scheme + sp + tok); !ok || got != tok {
				t.Fatalf("token %q does not round-trip: %q parses to %q, %v", tok, scheme+sp+tok, got, ok)
			}
		}
		s := &Server{tokens: tokenDigests([]secret.Key{secret.New(tok)})}
		for _, h := range []string{v, scheme + " " + tok} {
			r := httptest.NewRequest("GET", "/keys", nil)
			r.Header.Set("Authorization", h)
			if !s.authorized(r) {
				t.Fatalf("Authorization %q refused with token %q configured", h, tok)
			}
		}
		other := &Server{tokens: tokenDigests([]secret.Key{secret.New(tok + "x")})}
		r := httptest.NewRequest("GET", "/keys", nil)
		r.Header.Set("Authorization", v)
		if other.authorized(r) {
			t.Fatalf("Authorization %q let in with only %q configured", v, tok+"x")
		}
	})
}
