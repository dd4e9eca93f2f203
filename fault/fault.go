// Package fault decides whose fault an upstream answer is: the key's, its
// account's, the request's, the model's provider's, or upstream's. It reads
// the status, OpenRouter's error metadata (limit_source, reason,
// provider_name), the X-RateLimit-* and Retry-After headers and, only where
// nothing else tells, the message. It is a pure function of its input: the
// relay acts on the verdict, the breakers keep the rests.
//
// OpenRouter's rules (see shared/OPENROUTER.md): a 403 is about the request
// (moderation, guardrail), a provider's 429 about the model, free-model and
// credit limits about the account, a key's credit cap about the key.
package fault

import (
	"bytes"
	"net/http"
	"time"
)

// Scope says whose fault an answer is.
type Scope uint8

// Scopes.
const (
	// None: success, or an answer that is nobody's fault keygate tracks
	// (a 400, a 404).
	None Scope = iota
	// Key: this key; it rests and the call goes on to another key.
	Key
	// Account: every key of the key's account; the call goes on to a key
	// of another account.
	Account
	// Request: the request itself (moderation, a size this account cannot
	// afford); no key rests.
	Request
	// Provider: the model's provider behind OpenRouter; no key rests and
	// the answer goes back as it is.
	Provider
	// Upstream: 5xx, timeouts, network errors; nobody rests.
	Upstream
)

// String names the scope as /keys and logs show it.
func (s Scope) String() string {
	switch s {
	case Key:
		return "key"
	case Account:
		return "account"
	case Request:
		return "request"
	case Provider:
		return "provider"
	case Upstream:
		return "upstream"
	}
	return "none"
}

// Reason is why a key or account rests; it is the metrics' `reason` label.
type Reason uint8

// Reasons, as keygate_key_cooldowns_total labels them.
const (
	NoReason Reason = iota
	// Auth: 401, the key is revoked or unknown.
	Auth
	// RateLimit: a 429 of the key or a per-minute limit of the account.
	RateLimit
	// KeyLimit: the key's own credit cap is spent.
	KeyLimit
	// Credits: the account's balance cannot pay.
	Credits
	// FreeQuota: the account's free-model requests for the day are used.
	FreeQuota
	// InFlightBudget: the account's in-flight spending budget is held by
	// requests still running.
	InFlightBudget
	numReasons
)

// NumReasons is the number of reasons, NoReason included, for tables
// indexed by Reason.
const NumReasons = int(numReasons)

// String names the reason as metrics label it.
func (r Reason) String() string {
	switch r {
	case Auth:
		return "auth"
	case RateLimit:
		return "rate_limit"
	case KeyLimit:
		return "key_limit"
	case Credits:
		return "credits"
	case FreeQuota:
		return "free_quota"
	case InFlightBudget:
		return "in_flight_budget"
	}
	return "none"
}

// Verdict is what an upstream answer says about the key that got it.
type Verdict struct {
	// Status is the status the verdict stands for: the HTTP status, or the
	// code of an error object inside a 200.
	Status int
	Scope  Scope
	Reason Reason
	// Retry: send the request again on another key (of another account
	// for Account scope and for Afford).
	Retry bool
	// Until is when the rest should end, from X-RateLimit-Reset or
	// Retry-After, capped by what the reason allows; zero when upstream
	// gave no usable hint.
	Until time.Time
	// Afford is the number of tokens the account can still afford, from a
	// 402 "can only afford M" with M > 0; 0 otherwise. With Reason
	// KeyLimit it is a nearly dry cap's M (below NearlyDry).
	Afford int
	// OnKey: Afford is what the key's own cap can pay for, not the
	// account; the call goes on to any other key.
	OnKey bool
	// Large: Afford is about the request's prompt, not its max_tokens (a
	// large request's 402, Sized; "Prompt tokens limit exceeded"): what
	// it notes binds large requests (LargeRequest bytes or more) only.
	Large bool
	// UserID is the account id an error body named (top-level user_id).
	UserID string
	// FreeOnly: the limit counts against the account's free-model calls
	// only (free-models-per-min, free-models-per-day): those stop, its
	// paid calls go on.
	FreeOnly bool
	// Parsed: the body was an error object keygate could read; when false
	// the verdict comes from the status alone.
	Parsed bool
	// Uncoded: a 200's error object had no HTTP error status for a code,
	// and Status says 502 of upstream. On a path that fetches resources
	// rather than answers, such an object is the resource's own field (a
	// failed response fetched by id), and the caller keeps the 200.
	Uncoded bool
	// Model is the model of the call the answer was for, when the caller
	// knows it (Classify leaves it empty): console lines name it.
	Model string
	// Spared: the answer blamed the key or its account but the pool
	// learnt nothing from it (a call to a path that teaches nothing of
	// keys, or a client over its CLIENT_REST_SHARE), so it is not counted
	// as the key's failure. Set by the relay; Classify leaves it false.
	Spared bool
	// Polled: the verdict was read from the key's figures (a cap found
	// spent by GET /key or by the spend counted since), not from an
	// answer; Status is the answer it stands for, which no call got, so
	// console lines word it apart.
	Polled bool
}

// Learns reports whether the verdict rests a key or an account.
func (v Verdict) Learns() bool { return v.Scope == Key || v.Scope == Account }

// Caps on reset hints by reason: a per-day quota may rest until the next
// UTC midnight, anything else for minutes at most, so that a hostile or
// garbled header cannot bench a key for long.
const (
	MaxDayHint    = 25 * time.Hour
	MaxMinuteHint = 15 * time.Minute
)

// NearlyDry is the number of tokens below which a key whose cap "can only
// afford M" counts as spent: it rests until its cap resets rather than
// being tried, and refused, by every request.
const NearlyDry = 1000

// MaxBody is how much of an error body Classify needs; callers read at most
// this much.
const MaxBody = 16 << 10

// Classify judges one upstream answer: its status, headers and (the first
// MaxBody bytes of) its body, which may be nil. For a 200, body is the
// answer's first bytes or its first stream event's data; a 200 whose body is
// not an error object is None, and one whose error object has no HTTP
// error status for a code ("server_error", none, 200) is a 502 of
// upstream: no answer came, and passed on as a 200 it would read to an SDK
// as an empty completion.
func Classify(status int, h http.Header, body []byte, now time.Time) Verdict {
	e, parsed := parseError(body)
	uncoded := false
	if status == http.StatusOK {
		if !parsed {
			return Verdict{Status: status}
		}
		status = e.code
		if status < 400 {
			status = http.StatusBadGateway
			uncoded = true
		}
	}
	v := Verdict{Status: status, Parsed: parsed, Uncoded: uncoded, UserID: e.userID}
	switch {
	case status == http.StatusUnauthorized:
		v.Scope, v.Reason, v.Retry = Key, Auth, true
	case status == http.StatusPaymentRequired:
		classify402(&v, &e, h, now)
	case status == http.StatusForbidden:
		// Moderation, guardrails, permissions: the request, whichever key
		// sent it.
		v.Scope = Request
	case status == http.StatusTooManyRequests:
		classify429(&v, &e, h, now)
	case status >= 500 || status == 0:
		v.Scope = Upstream
	}
	return v
}

// LargeRequest is the request body size from which a 402 saying the
// account or the key's cap can afford nothing may be the request's own
// doing: OpenRouter refuses a prompt that alone costs more than what is
// left, and a client can make a prompt as large as it likes.
const LargeRequest = 64 << 10

// Sized is v for a request whose body was n bytes: a 402 that would rest
// an account for its credits, or a key for its cap, answered to a large
// request, is taken as the request's (Afford 1 and Large: the call goes on
// to another account, or key, and large calls prefer others for a while,
// smaller ones not); nothing rests. A small request still rests them, so a spent account
// is learned all the same.
func (v Verdict) Sized(n int) Verdict {
	if n < LargeRequest || v.Status != http.StatusPaymentRequired {
		return v
	}
	switch v.Reason {
	case Credits:
		v.Scope, v.Reason, v.Afford, v.Large = Request, NoReason, 1, true
	case KeyLimit:
		v.Scope, v.Reason, v.Afford, v.OnKey, v.Large = Request, NoReason, 1, true, true
	}
	return v
}

func classify402(v *Verdict, e *errorBody, h http.Header, now time.Time) {
	v.Retry = true
	switch {
	case !v.Parsed:
		// Nothing to go on: the key, as the first round did.
		v.Scope, v.Reason = Key, KeyLimit
	case e.limitSource == "openrouter_in_flight_budget" || e.reason == "in_flight_budget_exhausted":
		v.Scope, v.Reason = Account, InFlightBudget
		v.Until = hintUntil(h, e, now, MaxMinuteHint)
	case e.limitSource == "openrouter_key_limit" || (e.limitSource == "" && keyLimitMessage(e.message)):
		m, ok := affordable(e.message)
		prompt := false
		if !ok {
			// A prompt larger than what the cap has left: a smaller one
			// still fits.
			m, ok = promptAffordable(e.message)
			prompt = ok
		}
		if ok && m >= NearlyDry {
			// The key's cap still pays for smaller requests: this one is
			// too big for it, which a client can choose to make. A
			// prompt's refusal says nothing of max_tokens: it binds
			// large requests only.
			v.Scope, v.Afford = Request, m
			v.OnKey, v.Large = true, prompt
			return
		}
		// Nearly dry: the key's, once its GET /key shows the cap as good
		// as spent; M stays for the case it does not (budget.Poller's
		// confirmation notes it then, as for a larger M).
		v.Scope, v.Reason = Key, KeyLimit
		if ok && m > 0 {
			v.Afford, v.OnKey, v.Large = m, true, prompt
		}
	default:
		m, ok := affordable(e.message)
		if ok && m > 0 {
			v.Scope, v.Afford = Request, m
			return
		}
		// "can only afford 0": the account has nothing left, whatever
		// reason names the refusal (OpenRouter's pre-authorisation
		// gives weight_exceeds_budget for any M).
		if !ok && e.reason == "weight_exceeds_budget" {
			v.Scope, v.Afford = Request, 1
			return
		}
		v.Scope, v.Reason = Account, Credits
	}
}

func classify429(v *Verdict, e *errorBody, h http.Header, now time.Time) {
	perDay := e.limitSource == "openrouter_free_tier_daily" || bytes.Contains(e.message, []byte("free-models-per-day"))
	perMin := bytes.Contains(e.message, []byte("free-models-per-min"))
	switch {
	case perDay || perMin || ((rateLimitHeaders(h) || e.rateLimitHeaders) && !providerMarked(e)):
		// OpenRouter's own platform limit: the account's.
		v.Scope, v.Reason, v.Retry, v.FreeOnly = Account, RateLimit, true, perDay || perMin
		limit := MaxMinuteHint
		if perDay {
			v.Reason, limit = FreeQuota, MaxDayHint
		}
		v.Until = hintUntil(h, e, now, limit)
	case providerMarked(e):
		// The model's, behind one provider: nothing rests, but its hint
		// goes back to the client (a 200's error event carries it only in
		// its metadata, which SDKs do not read).
		v.Scope = Provider
		v.Until = hintUntil(h, e, now, MaxMinuteHint)
	default:
		v.Scope, v.Reason, v.Retry = Key, RateLimit, true
		v.Until = hintUntil(h, e, now, MaxMinuteHint)
	}
}

// rateLimitHeaders reports whether h holds one of OpenRouter's own
// X-RateLimit-Limit, -Remaining or -Reset headers (other OpenAI-compatible
// APIs name theirs X-Ratelimit-Limit-Requests and the like).
func rateLimitHeaders(h http.Header) bool {
	return h.Get("X-RateLimit-Reset") != "" || h.Get("X-RateLimit-Limit") != "" || h.Get("X-RateLimit-Remaining") != ""
}

// providerMarked reports whether a 429 names the provider behind OpenRouter
// as its source.
func providerMarked(e *errorBody) bool {
	return e.providerName || e.providerCode ||
		bytes.Contains(e.message, []byte("rate-limited upstream")) ||
		bytes.HasPrefix(e.message, []byte("High demand for "))
}

// keyLimitMessage reports whether a 402's message points at the key's own
// limit rather than the account's credits.
func keyLimitMessage(msg []byte) bool {
	return bytes.Contains(msg, []byte("settings/keys")) || bytes.Contains(msg, []byte("key limit")) ||
		bytes.Contains(msg, []byte("Key limit"))
}

// hintUntil is when the rest of a hint should end: X-RateLimit-Reset, then
// Retry-After (header, or the copy in error.metadata), capped at limit from
// now. Zero when none is usable.
func hintUntil(h http.Header, e *errorBody, now time.Time, limit time.Duration) time.Time {
	d, ok := time.Duration(0), false
	if v := h.Get("X-RateLimit-Reset"); v != "" {
		d, ok = ParseRateLimitReset(v, now)
	}
	if !ok && e.rateLimitReset != "" {
		d, ok = ParseRateLimitReset(e.rateLimitReset, now)
	}
	if !ok {
		if v := h.Get("Retry-After"); v != "" {
			d, ok = ParseRetryAfter(v, now)
		}
	}
	if !ok && e.retryAfter > 0 {
		d, ok = time.Duration(e.retryAfter)*time.Second, true
	}
	if !ok || d <= 0 {
		return time.Time{}
	}
	return now.Add(min(d, limit))
}
