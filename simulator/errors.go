package simulator

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// refusal is an error answer decided before any reply is built: its status,
// its headers and its body, in OpenRouter's shapes (OPENROUTER.md 1.5-1.6).
type refusal struct {
	status int
	header [][2]string
	body   []byte
}

// errorObject is OpenRouter's error object, {"code", "message",
// "metadata"}; the body around it may carry the account's user_id.
type errorObject struct {
	Code     int            `json:"code"`
	Message  string         `json:"message"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

type errorEnvelope struct {
	Error  errorObject `json:"error"`
	UserID string      `json:"user_id,omitempty"`
}

func newRefusal(status int, msg string, meta map[string]any, userID string) *refusal {
	b, err := json.Marshal(errorEnvelope{Error: errorObject{Code: status, Message: msg, Metadata: meta}, UserID: userID})
	if err != nil {
		panic(err) // strings, numbers and maps of them always marshal
	}
	return &refusal{status: status, body: b}
}

func (r *refusal) with(name, value string) *refusal {
	r.header = append(r.header, [2]string{name, value})
	return r
}

// Remedy URLs of OpenRouter's 402 messages.
const (
	creditsURL = "https://openrouter.ai/settings/credits"
	keysURL    = "https://openrouter.ai/settings/keys"
)

// afford402 is the pre-authorisation refusal: the request asked for up to
// asked tokens, the key or the account can pay for only afford. keyLimit
// tells which one binds: the key's cap (openrouter_key_limit) or the
// account's balance (openrouter_credits).
func afford402(userID string, asked, afford int64, keyLimit bool) *refusal {
	msg := "This request requires more credits, or fewer max_tokens. You requested up to " +
		strconv.FormatInt(asked, 10) + " tokens, but can only afford " + strconv.FormatInt(afford, 10) + ". "
	meta := map[string]any{"provider_name": nil}
	switch {
	case keyLimit:
		msg += "To increase, visit " + keysURL + " and create a key with a higher monthly limit"
		meta["limit_source"] = "openrouter_key_limit"
		meta["reason"] = "key_limit_exceeded"
		meta["remedy_hint"] = "Wait for the key's limit_reset, or raise the key's limit."
	case afford > 0:
		msg += "To increase, visit " + creditsURL + " and add more credits"
		meta["limit_source"] = "openrouter_credits"
		meta["reason"] = "weight_exceeds_budget"
		meta["remedy_hint"] = "Lower max_tokens, or add credits."
	default:
		msg += "To increase, visit " + creditsURL + " and add more credits"
		meta["limit_source"] = "openrouter_credits"
		meta["reason"] = "insufficient_credits"
		meta["remedy_hint"] = "Add credits."
	}
	return newRefusal(http.StatusPaymentRequired, msg, meta, userID)
}

// promptLimit402 is the key cap's refusal of a prompt that costs more than
// the cap has left (OPENROUTER.md 1.5, the key-cap variant): prompt tokens
// asked, and how many the remainder pays for.
func promptLimit402(userID string, prompt, afford int64) *refusal {
	msg := "Prompt tokens limit exceeded: " + strconv.FormatInt(prompt, 10) + " > " + strconv.FormatInt(afford, 10) +
		". To increase, visit " + keysURL + " and create a key with a higher monthly limit"
	return newRefusal(http.StatusPaymentRequired, msg, map[string]any{
		"provider_name": nil,
		"limit_source":  "openrouter_key_limit",
		"reason":        "key_limit_exceeded",
		"remedy_hint":   "Send a shorter prompt, or raise the key's limit.",
	}, userID)
}

// inFlight402 is the transient refusal of the in-flight spending budget.
func inFlight402(userID string, after time.Duration) *refusal {
	secs := waitSeconds(after)
	return newRefusal(http.StatusPaymentRequired,
		"Too many paid requests are in flight for this account's balance. Retry shortly, or add credits at "+creditsURL+".",
		map[string]any{
			"limit_source": "openrouter_in_flight_budget",
			"reason":       "in_flight_budget_exhausted",
			"remedy_hint":  "Retry after the Retry-After delay.",
		}, userID).with("Retry-After", strconv.FormatInt(secs, 10))
}

// freeQuota429 is OpenRouter's own 429 for the free-model quotas, with the
// X-RateLimit headers both as headers and echoed in error.metadata.headers.
func freeQuota429(userID string, perDay, highTier bool, limit int64, resetMillis int64) *refusal {
	var msg string
	meta := map[string]any{"provider_name": nil}
	switch {
	case !perDay:
		msg = "Rate limit exceeded: free-models-per-min. "
	case highTier:
		msg = "Rate limit exceeded: free-models-per-day-high-balance. "
		meta["limit_source"] = "openrouter_free_tier_daily"
	default:
		msg = "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day"
		meta["limit_source"] = "openrouter_free_tier_daily"
	}
	lim, reset := strconv.FormatInt(limit, 10), strconv.FormatInt(resetMillis, 10)
	meta["headers"] = map[string]string{"X-RateLimit-Limit": lim, "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
	return newRefusal(http.StatusTooManyRequests, msg, meta, userID).
		with("X-RateLimit-Limit", lim).with("X-RateLimit-Remaining", "0").with("X-RateLimit-Reset", reset)
}

// provider429 is a 429 passed on from the provider behind OpenRouter: about
// the model, not the key; Retry-After only, no X-RateLimit headers.
func provider429(userID, model, provider string, after time.Duration) *refusal {
	secs := strconv.FormatInt(waitSeconds(after), 10)
	return newRefusal(http.StatusTooManyRequests,
		model+" is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations",
		map[string]any{
			"raw":                 model + " is temporarily rate-limited upstream.",
			"provider_name":       provider,
			"provider_code":       "429",
			"retry_after_seconds": waitSeconds(after),
			"headers":             map[string]string{"Retry-After": secs},
		}, userID).with("Retry-After", secs)
}

// moderation403 is the refusal of a prompt the moderation flagged.
func moderation403(userID, model, provider, flagged string) *refusal {
	return newRefusal(http.StatusForbidden,
		model+" requires moderation on "+provider+". Your input was flagged for \"harassment\". No credits were charged.",
		map[string]any{
			"reasons":       []string{"harassment"},
			"flagged_input": excerpt(flagged, 100),
			"provider_name": provider,
			"model_slug":    model,
		}, userID)
}

// guardrail403 is the refusal of a request that a workspace guardrail blocks.
func guardrail403(userID, model string) *refusal {
	return newRefusal(http.StatusForbidden,
		"Request blocked by a guardrail of your workspace: "+model+" is not in the allowed models.",
		map[string]any{"reason": "guardrail_blocked", "model_slug": model}, userID)
}

// forbidden403 refuses inference with a management key, and /credits with
// an inference key.
func forbidden403(msg string) *refusal { return newRefusal(http.StatusForbidden, msg, nil, "") }

// codeBody is the body of an error answer with status code asked for by a
// directive: OpenRouter's documented generic body for 429, the plain
// {"error":{"message","code"}} for the rest.
func codeBody(code int) []byte {
	if code == http.StatusTooManyRequests {
		return []byte(`{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}}`)
	}
	b := make([]byte, 0, 64)
	b = append(b, `{"error":{"message":`...)
	b = appendQuoted(b, statusMessage(code))
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, "}}"...)
}

// waitSeconds is d in whole seconds, rounded up, at least 1.
func waitSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

// sendRefusal answers with r.
func (c *call) sendRefusal(r *refusal) {
	h := c.w.Header()
	for _, kv := range r.header {
		h.Set(kv[0], kv[1])
	}
	c.sendBody(r.status, "application/json", r.body)
}
