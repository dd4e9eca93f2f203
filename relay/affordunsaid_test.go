package relay_test

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestAffordNoteAndUnsaidMaxTokens: after an account's "can only afford
// M", a call that sets no max_tokens is taken to ask for the model's
// default output (tens of thousands of tokens), not for more than any M:
// one call with an absurd max_tokens (M in the millions) must not keep
// every ordinary call off a rich account for minutes, while a modest M
// still does.
func TestAffordNoteAndUnsaidMaxTokens(t *testing.T) {
	tests := []struct {
		afford int
		// want: the key that answers a call without max_tokens, and one
		// asking for 2,000.
		want [2]int
	}{
		{8_000_000, [2]int{1, 1}},
		{300_000, [2]int{1, 1}},
		{1_000, [2]int{2, 2}},
		{4_000, [2]int{2, 1}},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.afford), func(t *testing.T) {
			refusal := `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 1000000000000 tokens, but can only afford ` +
				strconv.Itoa(tt.afford) + `. To increase, visit https://openrouter.ai/settings/credits and add more credits","metadata":{"limit_source":"openrouter_credits"}}}`
			var refused atomic.Bool
			e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
				if id == 1 && !refused.Swap(true) {
					w.WriteHeader(http.StatusPaymentRequired)
					w.Write([]byte(refusal))
					return
				}
				w.Write([]byte(`{"ok":true}`))
			})
			e.set.SetAccount(e.key(1), "user_A")
			e.set.SetAccount(e.key(2), "user_B")
			c := relay.Call{Client: "c1", MaxTokens: 1_000_000_000_000}
			resp, err := e.do(t, nil, &c)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			for i, maxTokens := range []int{0, 2_000} {
				c := relay.Call{Client: "c2", MaxTokens: maxTokens}
				resp, err := e.do(t, nil, &c)
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
				if c.Key.ID != tt.want[i] {
					t.Errorf("a call with max_tokens %d went to key %d, want %d", maxTokens, c.Key.ID, tt.want[i])
				}
			}
		})
	}
}
