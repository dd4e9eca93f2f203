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

// DemoOptions is the upstream of `keygate -demo`, built on DemoKeys: key 1
// is healthy, key 2 is revoked (always 401), key 3 is rate-limited in bursts
// (3 of every 20 requests, starting with its first, answer 429 with
// "Retry-After: 5"), key 4 is healthy. Models answer after 150-400ms (fixed
// per model name) and stream 6 chunks 80ms apart, slow enough for a person
// to watch rotation, cooldowns and streaming.
func DemoOptions() Options {
	k := DemoKeys()
	return Options{
		Keys: map[string]Profile{
			k[0]: {},
			k[1]: {Status: http.StatusUnauthorized},
			k[2]: {RateLimitEvery: 20, RateLimitBurst: 3, RetryAfter: 5 * time.Second},
			k[3]: {},
		},
		Latency:       150 * time.Millisecond,
		LatencySpread: 250 * time.Millisecond,
		ChunkDelay:    80 * time.Millisecond,
		Chunks:        6,
		Seed:          1,
	}
}
