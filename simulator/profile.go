package simulator

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Profile is how one key behaves. The zero value is a key that is always
// healthy. The checks run in field order: Status first, then the rate-limit
// window, then the server-error share; the first that fires answers the
// request, before any per-request directive is looked at.
type Profile struct {
	// Status, when non-zero, is the answer to every request with this key,
	// with an OpenAI-style error body: 401 for a revoked key, 402 for one
	// without credit, 403 for a forbidden one. Any status from 400 to 599
	// works (others count as 0); a 429 carries the RateLimitReset hint.
	Status int

	// RateLimitEvery and RateLimitBurst make the key answer 429 in bursts:
	// of each window of RateLimitEvery requests (counted per key, from the
	// first request or the last Reset), the first RateLimitBurst get 429.
	// Every 20 with Burst 3 answers requests 0-2, 20-22, ... with 429.
	// RateLimitEvery 0 (the default) disables it; a burst as long as the
	// window limits every request.
	RateLimitEvery int
	RateLimitBurst int
	// RateLimitReset is the form of the hint on this key's 429s (default
	// HintRetryAfter).
	RateLimitReset ResetHint
	// RetryAfter is the wait the hint announces (default 1s).
	RetryAfter time.Duration

	// ServerErrorRate is the share, from 0 to 1, of requests answered with
	// ServerErrorStatus. Which requests fail follows from Options.Seed, the
	// key and the request's number, so a test sees the same pattern on
	// every run (default 0).
	ServerErrorRate float64
	// ServerErrorStatus is the status of those failures (default 500; 502
	// simulates a provider behind the upstream failing; values outside
	// 400-599 count as 500).
	ServerErrorStatus int
}

// ResetHint is the form in which a 429 (or any status, by directive) tells
// when to come back.
type ResetHint int

const (
	// HintRetryAfter sends "Retry-After: <delta seconds>", rounded up.
	HintRetryAfter ResetHint = iota
	// HintHTTPDate sends "Retry-After: <HTTP date>", Now plus the wait,
	// rounded up to the second.
	HintHTTPDate
	// HintRateLimitReset sends OpenRouter's "X-RateLimit-Reset: <epoch
	// milliseconds>" with X-RateLimit-Limit and X-RateLimit-Remaining: 0.
	HintRateLimitReset
	// HintNone sends no hint, so the client falls back to its own cooldown.
	HintNone
)

var hintNames = [...]string{
	HintRetryAfter:     "retry-after",
	HintHTTPDate:       "http-date",
	HintRateLimitReset: "ratelimit-reset",
	HintNone:           "none",
}

// String returns the directive spelling of h ("retry-after", "http-date",
// "ratelimit-reset" or "none").
func (h ResetHint) String() string {
	if h >= 0 && int(h) < len(hintNames) {
		return hintNames[h]
	}
	return "ResetHint(" + strconv.Itoa(int(h)) + ")"
}

// hint is a reset hint to put on an error reply; the zero value sends none.
type hint struct {
	set   bool
	form  ResetHint
	after time.Duration
	limit int
}

const defaultRetryAfter = time.Second

// setHeaders writes the hint's headers, counting the wait from now.
func (h hint) setHeaders(hd http.Header, now time.Time) {
	if !h.set {
		return
	}
	switch h.form {
	case HintRetryAfter:
		secs := (h.after + time.Second - 1) / time.Second
		hd.Set("Retry-After", strconv.FormatInt(int64(secs), 10))
	case HintHTTPDate:
		at := now.Add(h.after)
		if t := at.Truncate(time.Second); !t.Equal(at) {
			at = t.Add(time.Second)
		}
		hd.Set("Retry-After", at.UTC().Format(http.TimeFormat))
	case HintRateLimitReset:
		limit := h.limit
		if limit <= 0 {
			limit = 20
		}
		hd.Set("X-RateLimit-Limit", strconv.Itoa(limit))
		hd.Set("X-RateLimit-Remaining", "0")
		hd.Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(h.after).UnixMilli(), 10))
	}
}

// keyState is a key's profile and its counters; the counters are atomics so
// that the hot path takes no lock.
type keyState struct {
	profile  Profile
	hash     uint64
	requests atomic.Int64
	reads    atomic.Int64 // GET /key and /credits calls
	byStatus [600]atomic.Int64
	acct     *account
	bud      budget // guarded by acct.mu
	// revoked is set by Revoke: the key answers 401 from then on, as a
	// Profile.Status of 401 makes it from the start.
	revoked atomic.Bool
}

func newKeyState(key string, p Profile) *keyState {
	if p.RetryAfter <= 0 {
		p.RetryAfter = defaultRetryAfter
	}
	if !isErrorStatus(p.Status) {
		p.Status = 0
	}
	if !isErrorStatus(p.ServerErrorStatus) {
		p.ServerErrorStatus = http.StatusInternalServerError
	}
	return &keyState{profile: p, hash: fnv64(key)}
}

// decide applies the profile to the key's request number n (from 0) and
// returns the status to answer with, or 0 to go on.
func (k *keyState) decide(n, seed uint64) (int, hint) {
	if k.revoked.Load() {
		return http.StatusUnauthorized, hint{}
	}
	p := &k.profile
	if p.Status != 0 {
		if p.Status == http.StatusTooManyRequests {
			return p.Status, k.rateLimitHint()
		}
		return p.Status, hint{}
	}
	if p.RateLimitEvery > 0 && n%uint64(p.RateLimitEvery) < uint64(max(p.RateLimitBurst, 0)) {
		return http.StatusTooManyRequests, k.rateLimitHint()
	}
	if p.ServerErrorRate > 0 && unitFloat(mix64(seed^k.hash^mix64(n))) < p.ServerErrorRate {
		return p.ServerErrorStatus, hint{}
	}
	return 0, hint{}
}

func (k *keyState) rateLimitHint() hint {
	p := &k.profile
	return hint{set: true, form: p.RateLimitReset, after: p.RetryAfter, limit: p.RateLimitEvery}
}

// record counts a reply status for the key.
func (k *keyState) record(status int) {
	if status >= 0 && status < len(k.byStatus) {
		k.byStatus[status].Add(1)
	}
}

func isErrorStatus(code int) bool { return code >= 400 && code <= 599 }

// statusMessage is the error message for a simulated failure status.
func statusMessage(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "User not found."
	case http.StatusPaymentRequired:
		return "Insufficient credits"
	case http.StatusForbidden:
		return "Key is disabled"
	case http.StatusNotFound:
		return "model not found"
	case http.StatusTooManyRequests:
		return "Rate limit exceeded"
	case http.StatusBadGateway:
		return "Provider returned error"
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Simulated error " + strconv.Itoa(status)
}

// mix64 is the splitmix64 finalizer: a cheap, well-spread hash of x.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unitFloat maps x to [0, 1).
func unitFloat(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// fnv64 is FNV-1a over s, without allocating.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
