package fault

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 1, 15, 4, 5, 0, time.UTC)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestClassify(t *testing.T) {
	midnight := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	nextMin := now.Truncate(time.Minute).Add(time.Minute)
	tests := []struct {
		name   string
		status int
		h      http.Header
		body   string
		want   Verdict
	}{
		{"success", 200, nil, `{"id":"x","choices":[]}`, Verdict{Status: 200}},
		{"401 user not found", 401, nil, `{"error":{"message":"User not found.","code":401}}`,
			Verdict{Status: 401, Scope: Key, Reason: Auth, Retry: true, Parsed: true}},
		{"401 unparsable", 401, nil, `<html>`, Verdict{Status: 401, Scope: Key, Reason: Auth, Retry: true}},
		{"402 key limit by source", 402, nil, `{"error":{"code":402,"message":"Key limit exceeded","metadata":{"limit_source":"openrouter_key_limit"}}}`,
			Verdict{Status: 402, Scope: Key, Reason: KeyLimit, Retry: true, Parsed: true}},
		{"402 key limit by message", 402, nil, `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit"}}`,
			Verdict{Status: 402, Scope: Key, Reason: KeyLimit, Retry: true, Parsed: true}},
		{"402 key cap can afford a smaller request", 402, nil, `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 65536 tokens, but can only afford 5000. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit","metadata":{"limit_source":"openrouter_key_limit"}}}`,
			Verdict{Status: 402, Scope: Request, Retry: true, Parsed: true, Afford: 5000, OnKey: true}},
		{"402 key cap: the prompt alone is over what it has left", 402, nil, `{"error":{"code":402,"message":"Prompt tokens limit exceeded: 230799 > 91442. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher limit"}}`,
			Verdict{Status: 402, Scope: Request, Retry: true, Parsed: true, Afford: 91442, OnKey: true, Large: true}},
		{"402 key cap: prompt limit, as Go's encoder escapes it", 402, nil, `{"error":{"code":402,"message":"Prompt tokens limit exceeded: 3002 \u003e 1666. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit","metadata":{"limit_source":"openrouter_key_limit","provider_name":null,"reason":"key_limit_exceeded"}},"user_id":"user_c"}`,
			Verdict{Status: 402, Scope: Request, Retry: true, Parsed: true, Afford: 1666, OnKey: true, Large: true, UserID: "user_c"}},
		{"402 key cap: prompt limit, nearly dry", 402, nil, `{"error":{"code":402,"message":"Prompt tokens limit exceeded: 5000 > 40.","metadata":{"limit_source":"openrouter_key_limit"}}}`,
			Verdict{Status: 402, Scope: Key, Reason: KeyLimit, Retry: true, Parsed: true, Afford: 40, OnKey: true, Large: true}},
		{"402 key cap nearly dry", 402, nil, `{"error":{"code":402,"message":"You requested up to 100 tokens, but can only afford 12.","metadata":{"limit_source":"openrouter_key_limit"}}}`,
			Verdict{Status: 402, Scope: Key, Reason: KeyLimit, Retry: true, Parsed: true, Afford: 12, OnKey: true}},
		{"402 account credits", 402, nil, `{"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_credits"}},"user_id":"user_2abc"}`,
			Verdict{Status: 402, Scope: Account, Reason: Credits, Retry: true, Parsed: true, UserID: "user_2abc"}},
		{"402 afford 0", 402, nil, `{"error":{"code":402,"message":"You requested up to 100 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/credits and add more credits"}}`,
			Verdict{Status: 402, Scope: Account, Reason: Credits, Retry: true, Parsed: true}},
		// "can only afford 0" is the account's whatever reason it names;
		// the request's row needs M > 0.
		{"402 afford 0, weight_exceeds_budget", 402, nil, `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 100 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/credits and add more credits","metadata":{"provider_name":null,"limit_source":"openrouter_credits","reason":"weight_exceeds_budget"}}}`,
			Verdict{Status: 402, Scope: Account, Reason: Credits, Retry: true, Parsed: true}},
		{"402 weight_exceeds_budget without a figure", 402, nil, `{"error":{"code":402,"message":"too big","metadata":{"limit_source":"openrouter_credits","reason":"weight_exceeds_budget"}}}`,
			Verdict{Status: 402, Scope: Request, Retry: true, Parsed: true, Afford: 1}},
		{"402 afford M", 402, nil, `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 65536 tokens, but can only afford 1234. To increase, visit https://openrouter.ai/settings/credits and add more credits","metadata":{"provider_name":null,"limit_source":"openrouter_credits","reason":"weight_exceeds_budget"}},"user_id":"user_9"}`,
			Verdict{Status: 402, Scope: Request, Retry: true, Parsed: true, Afford: 1234, UserID: "user_9"}},
		{"402 in-flight budget", 402, hdr("Retry-After", "7"), `{"error":{"code":402,"message":"In-flight budget exhausted","metadata":{"limit_source":"openrouter_in_flight_budget","reason":"in_flight_budget_exhausted"}}}`,
			Verdict{Status: 402, Scope: Account, Reason: InFlightBudget, Retry: true, Parsed: true, Until: now.Add(7 * time.Second)}},
		{"402 unparsable falls back to the key", 402, nil, `Payment Required`,
			Verdict{Status: 402, Scope: Key, Reason: KeyLimit, Retry: true}},
		{"403 moderation", 403, nil, `{"error":{"code":403,"message":"Your input was flagged","metadata":{"reasons":["violence"]}}}`,
			Verdict{Status: 403, Scope: Request, Parsed: true}},
		{"403 unparsable", 403, nil, ``, Verdict{Status: 403, Scope: Request}},
		{"429 free per min", 429, hdr("X-RateLimit-Limit", "20", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(nextMin.UnixMilli(), 10)),
			`{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min. "}}`,
			Verdict{Status: 429, Scope: Account, Reason: RateLimit, Retry: true, Parsed: true, Until: nextMin, FreeOnly: true}},
		{"429 free per day", 429, hdr("X-RateLimit-Limit", "50", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", strconv.FormatInt(midnight.UnixMilli(), 10)),
			`{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","metadata":{"limit_source":"openrouter_free_tier_daily"}}}`,
			Verdict{Status: 429, Scope: Account, Reason: FreeQuota, Retry: true, Parsed: true, Until: midnight, FreeOnly: true}},
		{"429 free per day, reset only in body metadata", 429, nil,
			`{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day-high-balance.","metadata":{"headers":{"X-RateLimit-Limit":"1000","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"` + strconv.FormatInt(midnight.UnixMilli(), 10) + `"}}}}`,
			Verdict{Status: 429, Scope: Account, Reason: FreeQuota, Retry: true, Parsed: true, Until: midnight, FreeOnly: true}},
		{"429 per-day reset in seconds", 429, hdr("X-RateLimit-Reset", strconv.FormatInt(midnight.Unix(), 10)),
			`{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day."}}`,
			Verdict{Status: 429, Scope: Account, Reason: FreeQuota, Retry: true, Parsed: true, Until: midnight, FreeOnly: true}},
		{"429 per-minute hint capped", 429, hdr("X-RateLimit-Reset", strconv.FormatInt(now.Add(20*time.Hour).UnixMilli(), 10)),
			`{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min."}}`,
			Verdict{Status: 429, Scope: Account, Reason: RateLimit, Retry: true, Parsed: true, Until: now.Add(MaxMinuteHint), FreeOnly: true}},
		{"429 OpenRouter platform headers only", 429, hdr("X-RateLimit-Reset", strconv.FormatInt(nextMin.UnixMilli(), 10)),
			`{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}}`,
			Verdict{Status: 429, Scope: Account, Reason: RateLimit, Retry: true, Parsed: true, Until: nextMin}},
		// OpenRouter echoes its headers in error.metadata.headers
		// (OPENROUTER.md 1.4): where only the echo came (a 200's first
		// stream event, a proxy that drops headers) it is its own limit.
		{"429 OpenRouter platform headers echoed in the body only", 429, nil,
			`{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"` + strconv.FormatInt(nextMin.UnixMilli(), 10) + `"}}}}`,
			Verdict{Status: 429, Scope: Account, Reason: RateLimit, Retry: true, Parsed: true, Until: nextMin}},
		{"200 carrying OpenRouter's platform 429, headers echoed", 200, nil,
			`{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"headers":{"X-RateLimit-Limit":"20","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"` + strconv.FormatInt(nextMin.UnixMilli(), 10) + `"}}}}`,
			Verdict{Status: 429, Scope: Account, Reason: RateLimit, Retry: true, Parsed: true, Until: nextMin}},
		{"429 OpenRouter limit and remaining headers, no reset", 429, hdr("X-RateLimit-Limit", "20", "X-RateLimit-Remaining", "0", "Retry-After", "9"),
			`{"error":{"code":429,"message":"Rate limit exceeded"}}`,
			Verdict{Status: 429, Scope: Account, Reason: RateLimit, Retry: true, Parsed: true, Until: now.Add(9 * time.Second)}},
		{"429 other upstream's own rate-limit headers", 429, hdr("X-Ratelimit-Limit-Requests", "60", "X-Ratelimit-Remaining-Requests", "0", "X-Ratelimit-Reset-Requests", "1s"),
			`{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`,
			Verdict{Status: 429, Scope: Key, Reason: RateLimit, Retry: true, Parsed: true}},
		{"429 provider", 429, hdr("Retry-After", "3"),
			`{"error":{"code":429,"message":"meta-llama/llama-3.3-70b-instruct:free is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations","metadata":{"provider_name":"Venice","retry_after_seconds":3,"headers":{"Retry-After":"3"}}}}`,
			Verdict{Status: 429, Scope: Provider, Parsed: true, Until: now.Add(3 * time.Second)}},
		{"429 provider, its hint in the body alone", 429, nil,
			`{"error":{"code":429,"message":"x/m:free is temporarily rate-limited upstream. Please retry shortly","metadata":{"provider_name":"P","retry_after_seconds":7}}}`,
			Verdict{Status: 429, Scope: Provider, Parsed: true, Until: now.Add(7 * time.Second)}},
		{"429 provider code", 429, nil, `{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"provider_code":"429"}}}`,
			Verdict{Status: 429, Scope: Provider, Parsed: true}},
		{"429 high demand", 429, hdr("X-RateLimit-Limit", "8", "X-RateLimit-Reset", strconv.FormatInt(nextMin.UnixMilli(), 10)),
			`{"error":{"code":429,"message":"High demand for qwen/qwen3-coder:free on OpenRouter - limited to 8 requests per minute"}}`,
			Verdict{Status: 429, Scope: Provider, Parsed: true, Until: nextMin}},
		{"429 other upstream", 429, hdr("Retry-After", "12"), `{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`,
			Verdict{Status: 429, Scope: Key, Reason: RateLimit, Retry: true, Parsed: true, Until: now.Add(12 * time.Second)}},
		{"429 no hint", 429, nil, `too many`, Verdict{Status: 429, Scope: Key, Reason: RateLimit, Retry: true}},
		{"500", 500, nil, `{"error":{"code":500,"message":"Internal"}}`, Verdict{Status: 500, Scope: Upstream, Parsed: true}},
		{"502", 502, nil, ``, Verdict{Status: 502, Scope: Upstream}},
		{"404 model", 404, nil, `{"error":{"code":404,"message":"model not found"}}`, Verdict{Status: 404, Parsed: true}},
		{"200 error object 429 free per day", 200, nil,
			`{"id":"gen-1","error":{"code":429,"message":"Rate limit exceeded: free-models-per-day."},"choices":[{"finish_reason":"error"}]}`,
			Verdict{Status: 429, Scope: Account, Reason: FreeQuota, Retry: true, Parsed: true, FreeOnly: true}},
		{"200 error object 402 credits", 200, nil, `{"error":{"code":"402","message":"Insufficient credits","metadata":{"limit_source":"openrouter_credits"}}}`,
			Verdict{Status: 402, Scope: Account, Reason: Credits, Retry: true, Parsed: true}},
		{"200 error object 502 provider", 200, nil, `{"error":{"code":502,"message":"Provider returned error"}}`,
			Verdict{Status: 502, Scope: Upstream, Parsed: true}},
		{"200 error without code", 200, nil, `{"error":{"message":"odd"}}`, Verdict{Status: 502, Scope: Upstream, Parsed: true, Uncoded: true}},
		{"200 error with a code not a status", 200, nil, `{"error":{"code":"server_error","message":"odd"}}`, Verdict{Status: 502, Scope: Upstream, Parsed: true, Uncoded: true}},
		{"200 error with code 200", 200, nil, `{"error":{"code":200,"message":"odd"}}`, Verdict{Status: 502, Scope: Upstream, Parsed: true, Uncoded: true}},
		{"200 error null", 200, nil, `{"id":"gen-1","error":null,"choices":[]}`, Verdict{Status: 200}},
		{"200 not an error", 200, nil, `{"id":"gen-1","choices":[]}`, Verdict{Status: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			if h == nil {
				h = http.Header{}
			}
			got := Classify(tt.status, h, []byte(tt.body), now)
			if !got.Until.Equal(tt.want.Until) {
				t.Errorf("Until = %v, want %v", got.Until, tt.want.Until)
			}
			got.Until, tt.want.Until = time.Time{}, time.Time{}
			if got != tt.want {
				t.Errorf("Classify = %+v\nwant       %+v", got, tt.want)
			}
		})
	}
}

func TestMaybeError(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{`{"error":{}}`, true},
		{` { "id":"x", "error" : {}}`, true},
		{`{"id":"x","choices":[{"message":{"content":"an \"error\" here"}}]}`, false},
		{`{"id":"x"`, false},
		{``, false},
	} {
		if got := MaybeError([]byte(tt.in)); got != tt.want {
			t.Errorf("MaybeError(%q) = %v", tt.in, got)
		}
	}
}

func TestScopeAndReasonNames(t *testing.T) {
	names := map[string]bool{}
	for r := NoReason; r < numReasons; r++ {
		names[r.String()] = true
	}
	if len(names) != NumReasons {
		t.Fatalf("reason names not distinct: %v", names)
	}
	if Account.String() != "account" || Provider.String() != "provider" || None.String() != "none" {
		t.Fatal("scope names")
	}
}

// FuzzClassify: any body and headers give a verdict whose fields agree with
// each other, and never a rest longer than its reason allows.
func FuzzClassify(f *testing.F) {
	f.Add(429, `{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day."}}`, "1779321600000", "5")
	f.Add(402, `{"error":{"code":402,"message":"can only afford 12"}}`, "", "")
	f.Add(200, `{"error":{"code":"401"}}`, "", "")
	f.Add(403, `{"error":`, "x", "-1")
	f.Fuzz(func(t *testing.T, status int, body, reset, retry string) {
		h := http.Header{}
		if reset != "" {
			h.Set("X-RateLimit-Reset", reset)
		}
		if retry != "" {
			h.Set("Retry-After", retry)
		}
		v := Classify(status, h, []byte(body), now)
		if v.Learns() != (v.Reason != NoReason) {
			t.Fatalf("scope %v with reason %v", v.Scope, v.Reason)
		}
		if v.Scope == Request && v.Status == http.StatusForbidden && v.Retry {
			t.Fatal("a 403 is retried")
		}
		if !v.Until.IsZero() {
			limit := MaxMinuteHint
			if v.Reason == FreeQuota {
				limit = MaxDayHint
			}
			if d := v.Until.Sub(now); d <= 0 || d > limit {
				t.Fatalf("rest of %v for %v", d, v.Reason)
			}
		}
		if v.Afford < 0 {
			t.Fatal("negative afford")
		}
	})
}

func TestSized(t *testing.T) {
	credits := Verdict{Status: 402, Scope: Account, Reason: Credits, Retry: true, Parsed: true, UserID: "u"}
	keyLimit := Verdict{Status: 402, Scope: Key, Reason: KeyLimit, Retry: true, Parsed: true}
	inFlight := Verdict{Status: 402, Scope: Account, Reason: InFlightBudget, Retry: true, Parsed: true}
	rate := Verdict{Status: 429, Scope: Account, Reason: RateLimit, Retry: true, Parsed: true}
	for _, tt := range []struct {
		name string
		v    Verdict
		n    int
		want Verdict
	}{
		{"credits, small request: the account's", credits, LargeRequest - 1, credits},
		{"credits, large request: the request's", credits, LargeRequest, Verdict{Status: 402, Scope: Request, Retry: true, Parsed: true, UserID: "u", Afford: 1, Large: true}},
		{"key limit, small request: the key's", keyLimit, 100, keyLimit},
		{"key limit, large request: the request's, on the key", keyLimit, 1 << 20, Verdict{Status: 402, Scope: Request, Retry: true, Parsed: true, Afford: 1, OnKey: true, Large: true}},
		{"in-flight budget stays the account's", inFlight, 1 << 20, inFlight},
		{"a 429 stays as it is", rate, 1 << 20, rate},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.Sized(tt.n); got != tt.want {
				t.Fatalf("Sized(%d) = %+v, want %+v", tt.n, got, tt.want)
			}
		})
	}
}
