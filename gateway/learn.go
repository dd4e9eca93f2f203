package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/metrics"
	"github.com/keygate/keygate/relay"
)

// inferencePaths are the upstream endpoints whose answers teach keygate
// about a key: a 401 or 429 of /models or of a path a client made up says
// nothing sure of the key, and must not let a client rest it.
var inferencePaths = [...]string{"/chat/completions", "/completions", "/responses", "/embeddings",
	"/messages", "/audio/", "/images/", "/moderations", "/rerank"}

// inference reports whether the passthrough path rest (after /v1) is an
// inference endpoint.
func inference(rest string) bool {
	for _, p := range inferencePaths {
		if rest == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(rest, p)) {
			return true
		}
	}
	return false
}

// ownedByAccount reports whether the passthrough path rest (after /v1) asks
// about one generation (GET /generation?id=, /generation/content,
// /generation/feedback): only the account that made it knows its id, and
// in a pool of several accounts rotation may pick another's key
// (relay.Call.Owned).
func ownedByAccount(rest string) bool {
	r, ok := strings.CutPrefix(rest, "/generation")
	return ok && (r == "" || r[0] == '/')
}

// freeModel reports whether model is a free variant, whose calls count
// against the account's free-model quota.
func freeModel(model string) bool { return strings.HasSuffix(model, ":free") }

// clientOf names who sent r, for the bound on the rests one client may
// cause: "t:" and its token's digest when tokens are set, else its IPv4
// address as it is, a part of RemoteAddr (no new string on every request;
// an IP address never starts with "t:"), or its IPv6 address's /64: one
// host picks any address of its /64 at will (privacy addresses), and a
// bound per address would bound nothing.
func clientOf(r *http.Request, tokens bool) string {
	if tokens {
		if tok, ok := access.Bearer(r.Header.Get("Authorization")); ok {
			return "t:" + tokenTag(tok)
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if strings.IndexByte(host, ':') >= 0 {
		if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
			if p, err := a.WithZone("").Prefix(64); err == nil {
				return p.String()
			}
		}
	}
	return host
}

// Spender takes what answers cost off the keys' budgets.
type Spender interface {
	// Spend takes usd, an answer's usage.cost, off k's figures.
	Spend(k *keyring.Key, model string, usd float64)
	// UseFree counts one free-model request of k's account.
	UseFree(k *keyring.Key)
	// PollSoon reads k's budget again soon: an answer on it ended
	// without its usage, which upstream may charge all the same.
	PollSoon(k *keyring.Key)
}

// tokenTag is a short digest of a client token: enough to tell clients
// apart, nothing to recover the token from.
func tokenTag(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:6])
}

// usageSink counts an answer's tokens in the metrics and takes its cost off
// the key's budget.
type usageSink struct {
	m     *metrics.Metrics
	spend Spender
	// relay gives the pool in force: the key of an answer that ends after
	// a reload is looked up there, and a removed key spends nothing.
	relay *relay.Relay
	// obs, when set, names the pool in force for the tokens: a reload
	// has it follow the new pool before the relay does, as the upstream
	// counts do, so that a call ending in between counts its tokens
	// where its upstream call counts.
	obs *Observer
}

// Tokens implements TokenCounter.
func (u *usageSink) Tokens(keyID int, model string, prompt, completion int) {
	if u.m != nil {
		u.m.Tokens(keyID, model, prompt, completion)
	}
}

// Cost implements CostCounter.
func (u *usageSink) Cost(keyID int, model string, usd float64) {
	if k := u.relay.Pool().ByID(keyID); k != nil {
		u.spend.Spend(k, model, usd)
	}
}

// TokensOf, CostOf and NoUsageOf implement keyedCounter: the answer's key
// is found in the pool in force by its secret, so that an answer that ends
// after a reload renumbered its key counts under the key's new id, and one
// whose id now names another secret (or none) counts for nobody.
func (u *usageSink) TokensOf(k *keyring.Key, model string, prompt, completion int) {
	if u.m == nil {
		return
	}
	var nk *keyring.Key
	if u.obs != nil {
		nk, _ = u.obs.inForce(k)
	} else {
		nk = u.relay.Pool().Find(k)
	}
	if nk != nil {
		u.m.Tokens(nk.ID, model, prompt, completion)
	}
}

// CostOf implements keyedCounter.
func (u *usageSink) CostOf(k *keyring.Key, model string, usd float64) {
	if nk := u.relay.Pool().Find(k); nk != nil {
		u.spend.Spend(nk, model, usd)
	}
}

// NoUsageOf implements keyedCounter.
func (u *usageSink) NoUsageOf(k *keyring.Key) {
	if nk := u.relay.Pool().Find(k); nk != nil {
		u.spend.PollSoon(nk)
	}
}

// NoUsage implements MissCounter.
func (u *usageSink) NoUsage(keyID int) {
	if k := u.relay.Pool().ByID(keyID); k != nil {
		u.spend.PollSoon(k)
	}
}
