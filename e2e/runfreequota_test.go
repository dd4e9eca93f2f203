package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// TestRunFreeQuotaSpentSaysSo: when every account's free-model requests
// for the day are used up, a /run's free model fails saying so, beside
// its paid models served on the same keys; and the passthrough's 503
// says so too. Both said no key was available, "every key is cooling
// down", while every key was in rotation and answering the paid models.
func TestRunFreeQuotaSpentSaysSo(t *testing.T) {
	clk := newClock()
	clk.t = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	k := hdKeys(4)
	sim, err := simulator.Start(simulator.Options{Now: clk.Now, Accounts: []simulator.Account{
		{ID: "user_A", Balance: 5, FreeUsedToday: 50, Keys: []simulator.KeySpec{{Secret: k[0]}, {Secret: k[1]}}},
		{ID: "user_B", Balance: 5, FreeUsedToday: 50, Keys: []simulator.KeySpec{{Secret: k[2]}, {Secret: k[3]}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	g := hdStart(t, sim.BaseURL(), k, clk, "BUDGET_POLL_INTERVAL=1h")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Budgets.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ptEventually(t, "every key's first budget poll", func() bool {
		for _, kk := range g.Pool.Keys() {
			if v := g.Budgets.View(kk); v == nil {
				return false
			}
		}
		return true
	})
	free := "meta-llama/llama-3.3-70b-instruct:free"
	r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run",
		`{"prompt":"p","models":["`+free+`","openai/gpt-4o-mini"],"params":{"max_tokens":10}}`))
	var doc runReply
	if err := json.Unmarshal(r.Body, &doc); err != nil || len(doc.Responses) != 2 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	if doc.Responses[1].Status != "success" {
		t.Fatalf("the paid model failed: %s", r.Body)
	}
	if e := doc.Responses[0].Error; !strings.Contains(e, "free-model requests") {
		t.Errorf("the free model's error %q does not say the free-model requests are used up", e)
	}
	p := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat(free, false)))
	if p.Status != http.StatusServiceUnavailable || !strings.Contains(string(p.Body), "free-model requests") {
		t.Errorf("passthrough: %d %s; want a 503 saying the free-model requests are used up", p.Status, p.Body)
	}
	if sim.Stats().Total == 0 {
		t.Fatal("no upstream call at all")
	}
}
