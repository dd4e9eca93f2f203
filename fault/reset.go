package fault

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxHint bounds a reset hint from upstream, so that a garbled header cannot
// bench a key for years. A day covers daily quotas.
const MaxHint = 24 * time.Hour

// ParseRetryAfter reads a Retry-After value, delta seconds or an HTTP date,
// as a wait from now. ok is false for garbage, for waits that are not
// positive, and for waits over MaxHint.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if c := v[0]; c >= '0' && c <= '9' {
		secs, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, false
		}
		return bounded(time.Duration(secs) * time.Second)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return bounded(t.Sub(now))
}

// ParseRateLimitReset reads an X-RateLimit-Reset value as a wait from now.
// OpenRouter sends epoch milliseconds; epoch seconds are accepted too (a value
// below 10^12). ok is false for garbage and for instants not in the future.
func ParseRateLimitReset(v string, now time.Time) (d time.Duration, ok bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	var at time.Time
	switch {
	case n >= 1e12 && n < 1e15:
		at = time.UnixMilli(n)
	case n >= 1e9 && n < 1e12:
		at = time.Unix(n, 0)
	default:
		return 0, false
	}
	return bounded(at.Sub(now))
}

// ResetHint is the wait a 429's headers ask for: Retry-After first, then
// X-RateLimit-Reset. ok is false when neither gives a usable value.
func ResetHint(h http.Header, now time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		if d, ok := ParseRetryAfter(v, now); ok {
			return d, true
		}
	}
	if v := h.Get("X-RateLimit-Reset"); v != "" {
		return ParseRateLimitReset(v, now)
	}
	return 0, false
}

func bounded(d time.Duration) (time.Duration, bool) {
	if d <= 0 || d > MaxHint {
		return 0, false
	}
	return d, true
}
