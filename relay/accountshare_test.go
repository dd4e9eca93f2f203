package relay_test

import (
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestAccountRestsCountAllTheirKeys: CLIENT_REST_SHARE bounds the keys one
// client's requests may rest, and an account's rest rests all its keys: it
// counts them all. A 402 for credits passes the bound too, confirmer or
// not, since GET /key cannot show an account's balance; only what GET /key
// confirms (a key's 401) does not. Four keys in two accounts, a share of
// one half (two keys): one request meets the answer on every key.
func TestAccountRestsCountAllTheirKeys(t *testing.T) {
	inFlight := answer{402, map[string]string{"Retry-After": "60"},
		`{"error":{"code":402,"message":"In-flight spending budget exhausted","metadata":{"limit_source":"openrouter_in_flight_budget","reason":"in_flight_budget_exhausted"}}}`}
	credits := answer{402, nil, `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 1 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/credits and add more credits"}}`}
	platform429 := answer{429, map[string]string{"X-RateLimit-Reset": "9999999999999", "Retry-After": "30"}, `{"error":{"code":429,"message":"Rate limit exceeded"}}`}
	tests := []struct {
		name      string
		a         answer
		confirm   bool
		available int // keys still in rotation after the request
		asked     int // confirmations asked
	}{
		{"in-flight budget 402", inFlight, false, 2, 0},
		{"platform 429", platform429, false, 2, 0},
		{"credits 402", credits, false, 2, 0},
		// Held for confirmation (the 5 s hold rests the key alone, and
		// the confirmation the account): asked for the first account's
		// key only; the second's answer goes back, nothing held.
		{"credits 402, confirmed by GET /key", credits, true, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := envOptions{keys: 4, share: 0.5}
			cf := &confirmer{}
			if tt.confirm {
				o.confirmer = cf
			}
			e := newEnv(t, o, answers(map[int]answer{1: tt.a, 2: tt.a, 3: tt.a, 4: tt.a}))
			for id, acct := range map[int]string{1: "user_A", 2: "user_A", 3: "user_B", 4: "user_B"} {
				e.set.SetAccount(e.key(id), acct)
			}
			c := relay.Call{Client: "attacker"}
			resp, err := e.do(t, nil, &c)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if n := e.pool.CountAvailable(e.clock.ns.Load()); n != tt.available {
				t.Errorf("%d of 4 keys available after one client's request, want %d", n, tt.available)
			}
			if len(cf.asked) != tt.asked {
				t.Errorf("confirmations asked for keys %v, want %d", cf.asked, tt.asked)
			}
			if n := spared(e); n != 1 {
				t.Errorf("%d verdicts spared, want 1 (the second account's)", n)
			}
		})
	}
}
