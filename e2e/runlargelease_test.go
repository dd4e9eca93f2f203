package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/keygate/keygate/simulator"
)

// TestRunFirstKeyLineNamesTheKeyUsed: once an account is noted unable to
// afford large requests (a 402 to a prompt of 64 KiB or more), a /run with
// a large prompt leases its models' first keys outside it, as the call
// itself then goes: the "🔑 Using API Key #N" line names the key the call
// goes out on. The lease was taken as for a small request, given back by
// the call, and the call went out on another key with no line saying so.
func TestRunFirstKeyLineNamesTheKeyUsed(t *testing.T) {
	clk := newClock()
	k := hdKeys(3)
	sim, err := simulator.Start(simulator.Options{Now: clk.Now, Accounts: []simulator.Account{
		{ID: "user_A", Balance: 0.001, Purchased: 20, Keys: []simulator.KeySpec{{Secret: k[0]}}},
		{ID: "user_B", Balance: 100, Purchased: 20, Keys: []simulator.KeySpec{{Secret: k[1]}, {Secret: k[2]}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	g := hdStart(t, sim.BaseURL(), k, clk, "KEY_ROTATION=round-robin")
	prompt := strings.Repeat("word ", 14000) // 70 KB: a large request
	body := fmt.Sprintf(`{"model":"openai/gpt-4o","max_tokens":10,"messages":[{"role":"user","content":%q}]}`, prompt)
	if r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", body)); r.Status != http.StatusOK {
		t.Fatalf("first call: %d %.300s", r.Status, r.Body)
	}
	if !strings.Contains(g.Logs.String(), "💸 API Key #1") {
		t.Fatalf("key 1's account was not noted unable to afford the large call:\n%s", g.Logs.String())
	}
	for range 6 {
		before := len(g.Logs.String())
		rb := fmt.Sprintf(`{"prompt":%q,"models":["openai/gpt-4o"],"params":{"max_tokens":10}}`, prompt)
		if r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", rb)); !strings.Contains(string(r.Body), `"successful":1`) {
			t.Fatalf("/run: %d %.300s", r.Status, r.Body)
		}
		logs := g.Logs.String()[before:]
		used := regexp.MustCompile(`🔑 Using API Key #(\d+) `).FindStringSubmatch(logs)
		sent := regexp.MustCompile(`↪️ openai/gpt-4o on API Key #(\d+):`).FindStringSubmatch(logs)
		if used == nil || sent == nil || used[1] != sent[1] || strings.Contains(logs, "Retrying") {
			t.Fatalf("the console names one key and the call goes out on another:\n%s", logs)
		}
	}
}
