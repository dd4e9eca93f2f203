package relay_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/relay"
)

// TestLargeRequestNoteBindsLargeCallsOnly: after a large request's 402
// "can only afford 0" or "Prompt tokens limit exceeded" (its prompt costs
// more than the account, or the key's cap, has left), large calls go
// elsewhere for a while, smaller ones still to that account or key, which
// can pay for them. The note bound every call (without max_tokens, or
// with more than the prompt tokens the cap pays for), so that one
// oversized request sent all traffic off a healthy account or key for
// five minutes.
func TestLargeRequestNoteBindsLargeCallsOnly(t *testing.T) {
	large := bytes.Repeat([]byte("a "), fault.LargeRequest/2+1)
	small := []byte(`{"model":"m","max_tokens":50,"messages":[]}`)
	tests := []struct {
		name    string
		refusal string
		// want: the key that answers a small call without max_tokens,
		// one with max_tokens 50, and a large call, in that order.
		want [3]int
	}{
		{"account's credits", `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 100 tokens, but can only afford 0.","metadata":{"limit_source":"openrouter_credits"}}}`,
			[3]int{1, 1, 3}},
		{"key's cap", `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 100 tokens, but can only afford 0. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit","metadata":{"limit_source":"openrouter_key_limit"}}}`,
			[3]int{1, 1, 2}},
		{"key's cap, for the prompt alone", `{"error":{"code":402,"message":"Prompt tokens limit exceeded: 32769 > 5000. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit","metadata":{"limit_source":"openrouter_key_limit"}}}`,
			[3]int{1, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Key 1 cannot pay for a large prompt; anything else it can.
			e := newEnv(t, envOptions{keys: 3}, func(w http.ResponseWriter, r *http.Request, id int) {
				b, _ := io.ReadAll(r.Body)
				if id == 1 && len(b) >= fault.LargeRequest {
					w.WriteHeader(http.StatusPaymentRequired)
					w.Write([]byte(tt.refusal))
					return
				}
				w.Write([]byte(`{"ok":true}`))
			})
			e.set.SetAccount(e.key(1), "user_A")
			e.set.SetAccount(e.key(2), "user_A")
			e.set.SetAccount(e.key(3), "user_B")
			c := relay.Call{Client: "c1"}
			resp, err := e.do(t, large, &c)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			calls := []struct {
				body      []byte
				maxTokens int
			}{{small, 0}, {small, 50}, {large, 0}}
			for i, call := range calls {
				c := relay.Call{Client: "c1", MaxTokens: call.maxTokens}
				resp, err := e.do(t, call.body, &c)
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
				if c.Key.ID != tt.want[i] || resp.StatusCode != http.StatusOK {
					t.Errorf("call %d (%d bytes, max_tokens %d): key %d answered %d, want key %d's 200",
						i, len(call.body), call.maxTokens, c.Key.ID, resp.StatusCode, tt.want[i])
				}
			}
			for id := 1; id <= 3; id++ {
				if !e.pool.Available(e.key(id), e.clock.ns.Load()) {
					t.Errorf("key %d rests", id)
				}
			}
		})
	}
}
