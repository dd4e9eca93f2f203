package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// econKeys are the secrets of the economy tests' accounts.
func econKeys() []string { return testKeys(4) }

// econUpstream is a simulator with two accounts: A (bought credit, so 1000
// free requests a day) owns key 1, capped, and key 2; B (never bought
// credit: 50 a day) has 45 of today's free requests used and owns keys 3
// and 4.
func econUpstream(t *testing.T, capA1 float64, freeUsedB int, now func() time.Time) *simulator.Server {
	t.Helper()
	k := econKeys()
	sim, err := simulator.Start(simulator.Options{Now: now, Accounts: []simulator.Account{
		{ID: "user_A", Balance: 5, Purchased: 20, Keys: []simulator.KeySpec{
			{Secret: k[0], Limit: capA1, LimitReset: "daily"}, {Secret: k[1]}}},
		{ID: "user_B", Balance: 5, Purchased: 0, FreeUsedToday: freeUsedB, Keys: []simulator.KeySpec{
			{Secret: k[2]}, {Secret: k[3]}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// econGateway runs keygate over sim with budgets polled (hourly, so only
// the start-up poll and those right after a fault), and waits for the
// start-up polls.
func econGateway(t *testing.T, sim *simulator.Server, at time.Time) *gateway {
	t.Helper()
	gw := startGateway(t, sim.BaseURL(), econKeys(), "BUDGET_POLL_INTERVAL=1h", "KEY_ROTATION=round-robin")
	gw.Clock.Set(at) // before anything reads it
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gw.Budgets.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ptEventually(t, "every key's first budget poll", func() bool {
		for _, k := range gw.Pool.Keys() {
			if gw.Budgets.View(k) == nil {
				return false
			}
		}
		return true
	})
	return gw
}

func econCall(t *testing.T, gw *gateway, model string, maxTokens int) (*http.Response, []byte) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":"hello there"}]}`, model, maxTokens)
	req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(body))
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// TestEconomyBelowCapacity: accounts with a capped key, balances and free
// quotas take a mix of paid and free calls that stays below what the pool
// allows in total. The client sees no 402 or 429: keygate rests the capped
// key when its cap is spent, keeps free calls off the account whose free
// requests are used up, and what it reports as spent per key matches what
// the simulator charged, within one answer's cost.
func TestEconomyBelowCapacity(t *testing.T) {
	clk := newClock()
	clk.t = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sim := econUpstream(t, 0.00005, 45, clk.Now)
	gw := econGateway(t, sim, clk.Now())

	const paid, free = 60, 16
	maxCost := 0.0
	for i := 0; i < paid+free; i++ {
		model, max := "openai/gpt-4o-mini", 16
		if i%5 == 4 && i/5 < free {
			model = "meta-llama/llama-3.3-70b-instruct:free"
		}
		resp, body := econCall(t, gw, model, max)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d (%s): %d %s", i, model, resp.StatusCode, body)
		}
		var doc struct {
			Usage struct {
				Cost float64 `json:"cost"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("call %d: %v in %s", i, err, body)
		}
		maxCost = math.Max(maxCost, doc.Usage.Cost)
	}
	keys := ptKeys(t, gw)
	for i, raw := range econKeys() {
		k := gw.Pool.ByID(i + 1)
		v := gw.Budgets.View(k)
		charged := sim.Spent(raw)
		if v == nil {
			t.Fatalf("key %d: no budget in keygate", i+1)
		}
		if diff := math.Abs(v.Usage - charged); diff > maxCost+1e-12 {
			t.Errorf("key %d: keygate says $%.7f spent, the simulator charged $%.7f (more than one answer's $%.7f apart)", i+1, v.Usage, charged, maxCost)
		}
		t.Logf("key %d: keygate $%.7f, simulator $%.7f, %d requests", i+1, v.Usage, charged, keys[i+1].Requests)
	}
	if sim.Spent(econKeys()[0]) > 0.00005+1e-12 {
		t.Errorf("key 1 spent $%.7f past its $0.00005 cap", sim.Spent(econKeys()[0]))
	}
	if r := keys[1].CooldownUntil; r == nil {
		t.Errorf("key 1 with its cap spent is not resting")
	}
	info, _ := sim.KeyInfo(econKeys()[2])
	if info.FreeUsed > info.FreeLimit {
		t.Errorf("account B used %d of %d free requests", info.FreeUsed, info.FreeLimit)
	}
}

// TestEconomyAboveCapacity: free calls past every account's free quota get
// 503 keys_unavailable at once, with an honest Retry-After (until the first
// account's quota comes back at UTC midnight), never a hang; paid calls
// still go through.
func TestEconomyAboveCapacity(t *testing.T) {
	clk := newClock()
	clk.t = time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	sim := econUpstream(t, 0, 49, clk.Now)
	gw := econGateway(t, sim, clk.Now())
	const free = "meta-llama/llama-3.3-70b-instruct:free"

	// B has one free request left; A has 1000 but allows 20 a minute.
	statuses := map[int]int{}
	var last *http.Response
	var lastBody []byte
	for i := 0; i < 30; i++ {
		last, lastBody = econCall(t, gw, free, 16)
		statuses[last.StatusCode]++
	}
	if statuses[200] != 21 {
		t.Errorf("statuses %v, want 21 answered (20 a minute on A, 1 on B)", statuses)
	}
	if last.StatusCode == http.StatusTooManyRequests {
		t.Logf("last 429: %s", lastBody)
	}
	resp, body := econCall(t, gw, free, 16)
	ptAPIError(t, resp, body, http.StatusServiceUnavailable, "keys_unavailable")
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q, want the seconds until A's per-minute limit ends (≤ 60)", resp.Header.Get("Retry-After"))
	}
	if resp, body := econCall(t, gw, "openai/gpt-4o-mini", 16); resp.StatusCode != 200 {
		t.Errorf("a paid call with free quotas spent: %d %s", resp.StatusCode, body)
	}
}
