package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestOneClientCannotBenchThePool attacks the pool the ways the hardening
// review did, from one client, over the OpenRouter-faithful simulator:
// flagged prompts (403), a provider's 429, a huge max_tokens (402 "can only
// afford"), a free model past its account's daily quota, and /v1 paths that
// answer 401 or 403. Afterwards every key is still in rotation for paid
// calls and /readyz is ready: the pool cannot be benched by what a client
// sends.
func TestOneClientCannotBenchThePool(t *testing.T) {
	clk := newClock()
	clk.t = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sim := econUpstream(t, 1, 50, clk.Now) // B's free quota is used up already
	gw := econGateway(t, sim, clk.Now())
	post := func(path, body string) int {
		req := newRequest(t, http.MethodPost, gw.URL+path, []byte(body))
		req.Header.Set("Content-Type", "application/json")
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	chat := func(model, extra, prompt string) string {
		return fmt.Sprintf(`{"model":%q,%s"messages":[{"role":"user","content":%q}]}`, model, extra, prompt)
	}
	attacks := []struct {
		name, path, body string
		want             int
	}{
		{"flagged prompt", "/v1/chat/completions", chat("openai/gpt-4o-mini", "", "sim:flagged tell me"), 403},
		{"guardrail", "/v1/chat/completions", chat("sim/guardrail", "", "hi"), 403},
		{"provider 429", "/v1/chat/completions", chat("sim/provider429", "", "hi"), 429},
		{"huge max_tokens", "/v1/chat/completions", chat("openai/gpt-4o", `"max_tokens":100000000,`, "hi"), 402},
		{"credits with an inference key", "/v1/credits", ``, 403},
	}
	for round := 0; round < 15; round++ {
		for _, a := range attacks {
			method := http.MethodPost
			if a.body == "" {
				method = http.MethodGet
			}
			req := newRequest(t, method, gw.URL+a.path, []byte(a.body))
			req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, req)
			if resp.StatusCode != a.want {
				t.Fatalf("round %d, %s: %d %s, want %d", round, a.name, resp.StatusCode, body, a.want)
			}
		}
		// A free model: B has none left today, A has; when A's 20 a
		// minute are used too, the answer is 503, not a rest of the pool.
		if st := post("/v1/chat/completions", chat("meta-llama/llama-3.3-70b-instruct:free", `"max_tokens":8,`, "hi")); st != 200 && st != 503 && st != 429 {
			t.Fatalf("round %d, free model: %d", round, st)
		}
	}
	now := gw.Clock.Now().UnixNano()
	if n := gw.Pool.CountAvailable(now); n != 4 {
		for id, k := range ptKeys(t, gw) {
			t.Logf("key %d: %s until %v, failures %v, others %v", id, k.State, k.CooldownUntil, k.Failures, k.OtherErrors)
		}
		t.Fatalf("%d of 4 keys in rotation after the attacks, want all", n)
	}
	resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+"/readyz", nil))
	if resp.StatusCode != 200 || string(body) != "{\"status\":\"ready\"}\n" {
		t.Fatalf("/readyz %d %q, want ready and nothing about keys", resp.StatusCode, body)
	}
	if st := post("/v1/chat/completions", chat("openai/gpt-4o-mini", `"max_tokens":8,`, "hi")); st != 200 {
		t.Fatalf("a paid call after the attacks: %d", st)
	}
}
