// Package access decides who a request to the status page or the admin API
// is: nobody, a client (a GATEWAY_API_KEYS token) or the operator (the
// ADMIN_TOKEN). Tokens are kept as SHA-256 digests and compared in constant
// time, so neither a token nor its length shows in timing.
package access

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/keygate/keygate/secret"
)

// Guard holds the token digests. A zero-value Guard knows no token: the page
// is open and the admin API is off.
type Guard struct {
	clients  [][sha256.Size]byte
	admin    [sha256.Size]byte
	hasAdmin bool
}

// New builds a Guard from the client tokens (empty: the page needs no token)
// and the admin token (zero: /admin/* is off). Zero client tokens are
// skipped.
func New(clients []secret.Key, admin secret.Key) *Guard {
	g := &Guard{admin: admin.Digest(), hasAdmin: !admin.IsZero()}
	for _, c := range clients {
		if !c.IsZero() {
			g.clients = append(g.clients, c.Digest())
		}
	}
	return g
}

// AdminEnabled reports whether an admin token is set; without one /admin/*
// does not exist.
func (g *Guard) AdminEnabled() bool { return g.hasAdmin }

// TokenRequired reports whether the page needs a token: it does whenever
// the gateway has client tokens.
func (g *Guard) TokenRequired() bool { return len(g.clients) > 0 }

// Admin reports whether r carries the admin token. Client tokens never
// match, whatever they are.
func (g *Guard) Admin(r *http.Request) bool {
	tok, ok := Bearer(r.Header.Get("Authorization"))
	if !ok || !g.hasAdmin {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(g.admin[:], sum[:]) == 1
}

// Viewer reports whether r may see the pool's status: anyone when no client
// token is set, else a request carrying a client token or the admin token.
func (g *Guard) Viewer(r *http.Request) bool {
	if !g.TokenRequired() {
		return true
	}
	tok, ok := Bearer(r.Header.Get("Authorization"))
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	match := 0
	for i := range g.clients {
		match |= subtle.ConstantTimeCompare(g.clients[i][:], sum[:])
	}
	if g.hasAdmin {
		match |= subtle.ConstantTimeCompare(g.admin[:], sum[:])
	}
	return match == 1
}

// Bearer returns the token of an "Authorization: Bearer <token>" value. The
// scheme is case-insensitive (RFC 7235) and may be followed by more than one
// space; the token itself is compared exactly.
func Bearer(v string) (string, bool) {
	scheme, token, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
