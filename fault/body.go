package fault

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
)

// errorBody is what Classify reads of an error object.
type errorBody struct {
	code           int
	message        []byte
	limitSource    string
	reason         string
	providerName   bool
	providerCode   bool
	retryAfter     int
	rateLimitReset string
	// rateLimitHeaders: metadata.headers echoes OpenRouter's own
	// X-RateLimit-* headers (a platform limit's 429).
	rateLimitHeaders bool
	userID           string
}

type wireError struct {
	Error *struct {
		Code     json.RawMessage `json:"code"`
		Message  string          `json:"message"`
		UserID   string          `json:"user_id"`
		Metadata *struct {
			LimitSource  string          `json:"limit_source"`
			Reason       string          `json:"reason"`
			ProviderName json.RawMessage `json:"provider_name"`
			ProviderCode json.RawMessage `json:"provider_code"`
			RetryAfter   json.RawMessage `json:"retry_after_seconds"`
			Headers      map[string]any  `json:"headers"`
		} `json:"metadata"`
	} `json:"error"`
	UserID string `json:"user_id"`
}

// parseError reads an OpenAI/OpenRouter error object, {"error": {...}}. ok
// is false when body is not one.
func parseError(body []byte) (e errorBody, ok bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return e, false
	}
	var w wireError
	if json.Unmarshal(body, &w) != nil || w.Error == nil {
		return e, false
	}
	e.code = codeOf(w.Error.Code)
	e.message = []byte(w.Error.Message)
	e.userID = w.UserID
	if e.userID == "" {
		e.userID = w.Error.UserID
	}
	if len(e.userID) > 128 {
		e.userID = ""
	}
	if md := w.Error.Metadata; md != nil {
		e.limitSource = md.LimitSource
		e.reason = md.Reason
		e.providerName = present(md.ProviderName)
		e.providerCode = present(md.ProviderCode)
		if n, err := strconv.ParseFloat(string(md.RetryAfter), 64); err == nil && n > 0 && n < 1e6 {
			e.retryAfter = int(n + 0.999)
		}
		for name, v := range md.Headers {
			s := headerValue(v)
			switch http2Canonical(name) {
			case "X-Ratelimit-Limit", "X-Ratelimit-Remaining":
				e.rateLimitHeaders = e.rateLimitHeaders || s != ""
			case "X-Ratelimit-Reset":
				e.rateLimitReset = s
				e.rateLimitHeaders = e.rateLimitHeaders || s != ""
			case "Retry-After":
				if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 1e6 && e.retryAfter == 0 {
					e.retryAfter = n
				}
			}
		}
	}
	return e, true
}

// codeOf reads an error code given as a number or a numeric string; other
// codes (OpenAI's "invalid_api_key") are 0.
func codeOf(raw json.RawMessage) int {
	s := string(bytes.Trim(raw, `"`))
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 {
		return 0
	}
	return n
}

func present(raw json.RawMessage) bool {
	s := string(bytes.TrimSpace(raw))
	return s != "" && s != "null" && s != `""`
}

func headerValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// http2Canonical folds a header name as net/http canonicalises it, enough
// for the names compared here.
func http2Canonical(name string) string {
	b := []byte(name)
	upper := true
	for i, c := range b {
		switch {
		case upper && c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

var affordRE = regexp.MustCompile(`can only afford (\d{1,12})`)

// affordable reads M of "… but can only afford M …".
func affordable(msg []byte) (int, bool) { return number(affordRE, msg) }

// promptLimitRE is the key-cap refusal of a prompt the cap's remainder
// cannot pay for: "Prompt tokens limit exceeded: 230799 > 91442".
var promptLimitRE = regexp.MustCompile(`Prompt tokens limit exceeded: \d{1,12} > (\d{1,12})`)

// promptAffordable is the number of prompt tokens a "Prompt tokens limit
// exceeded: P > Q" message says the key's cap can pay for (Q).
func promptAffordable(msg []byte) (int, bool) { return number(promptLimitRE, msg) }

// number is the number re's first group matched in msg.
func number(re *regexp.Regexp, msg []byte) (int, bool) {
	m := re.FindSubmatch(msg)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(string(m[1]))
	return n, err == nil
}

// MaybeError reports whether the first bytes of a 200 JSON answer may be an
// error object: they hold an "error" key. Inside JSON strings quotes are
// escaped, so the bare `"error"` sequence appears only as a key; the caller
// then reads up to MaxBody and lets Classify decide. A normal answer's first
// bytes rarely hold it, so a 200 is almost never read ahead of the client.
func MaybeError(prefix []byte) bool {
	return bytes.Contains(prefix, []byte(`"error"`))
}
