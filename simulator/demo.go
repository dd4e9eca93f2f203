package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// DemoKeys returns the four demo keys of `keygate -demo`. They are fake but
// shaped like OpenRouter keys ("sk-or-v1-" and 64 hex digits), derived from a
// fixed phrase so they are the same on every run and never appear literally
// in the source (where a secret scanner would flag them).
func DemoKeys() []string {
	keys := make([]string, 4)
	for i := range keys {
		sum := sha256.Sum256([]byte("keygate demo key " + strconv.Itoa(i+1)))
		keys[i] = "sk-or-v1-" + hex.EncodeToString(sum[:])
	}
	return keys
}

// Demo key 1's rate limit: one request in demoRateLimitEvery, the first
// of each window, gets a 429 announcing demoRetryAfter. Often enough that
// a few examples show a 429, a rest and a retry (and the dashboard's 429
// panels move), seldom enough that key 1 serves most of its requests.
const (
	demoRateLimitEvery = 10
	demoRetryAfter     = 30 * time.Second
)

// Demo account ids, as GET /key reports them in creator_user_id.
const (
	DemoAccountA = "user_demo_a"
	DemoAccountB = "user_demo_b"
)

// DemoOptions is the upstream of `keygate -demo`, built on DemoKeys, laid
// out to show OpenRouter's economics within a minute of examples. Account
// A ($25 of credit, bought, so 1000 free requests a day) owns key 1
// (rate-limited now and then: its 1st, 11th, 21st, ... request gets
// OpenRouter's documented 429 body with Retry-After: 30, and keygate rests
// the key that long) and key 2 (revoked: always 401). Account B ($0.50,
// never bought: 50 free requests a day, 45 of them used today) owns key 3,
// whose daily cap of $1.00 has $0.005 left (a request without max_tokens
// to a model like openai/gpt-4o-mini asks for more: 402 "can only
// afford"), and key 4 (healthy, no cap); five ":free" requests later the
// account answers 429 free-models-per-day. Models answer after 150-400ms
// (fixed per model name) and stream 6 chunks 80ms apart, slow enough for a
// person to watch rotation, cooldowns and streaming.
func DemoOptions() Options {
	k := DemoKeys()
	return Options{
		Accounts: []Account{
			{ID: DemoAccountA, Balance: 25, Purchased: 25, Keys: []KeySpec{
				{Secret: k[0], Label: "demo key 1 (rate-limited now and then)", Profile: Profile{
					RateLimitEvery: demoRateLimitEvery, RateLimitBurst: 1, RetryAfter: demoRetryAfter}},
				{Secret: k[1], Label: "demo key 2 (revoked)", Profile: Profile{Status: http.StatusUnauthorized}},
			}},
			{ID: DemoAccountB, Balance: 0.5, FreeUsedToday: 45, Keys: []KeySpec{
				{Secret: k[2], Label: "demo key 3 (near its cap)", Limit: 1, LimitReset: "daily", Usage: 0.995},
				{Secret: k[3], Label: "demo key 4"},
			}},
		},
		Latency:       150 * time.Millisecond,
		LatencySpread: 250 * time.Millisecond,
		ChunkDelay:    80 * time.Millisecond,
		Chunks:        6,
		Seed:          1,
	}
}
