package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestGenerationLookupFindsItsAccount: a client that asks GET
// /generation?id= after an answer (for its cost, as several OpenRouter
// clients do) gets it whichever key rotation picks for the lookup. Only
// the account that made a generation knows it, and OpenRouter answers 404
// to another account's key; in a pool of two accounts, round-robin sent
// half the lookups to the other one. An id no account knows is a 404
// after one call per account; no key rests, and no retry is counted.
func TestGenerationLookupFindsItsAccount(t *testing.T) {
	clk := newClock()
	clk.t = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sim := econUpstream(t, 0, 0, clk.Now)
	gw := econGateway(t, sim, clk.Now())

	// The answers go out on keys 1, 2, 3, 4, 1, …; looked up in reverse
	// order, the lookups' keys (round-robin: 1, 2, …) are half of them
	// the other account's.
	type answer struct{ id, key string }
	var answers []answer
	for i := range 8 {
		resp, body := econCall(t, gw, "openai/gpt-4o-mini", 8)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, body)
		}
		id := resp.Header.Get("X-Generation-Id")
		if id == "" {
			t.Fatalf("call %d: no X-Generation-Id", i)
		}
		answers = append(answers, answer{id, resp.Header.Get("X-Keygate-Key")})
	}
	for i := range answers {
		a := answers[len(answers)-1-i]
		prefix := "/v1"
		if i%2 == 1 {
			prefix = "/api/v1"
		}
		before := sim.Stats().Total
		resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+prefix+"/generation?id="+a.id, nil))
		calls := sim.Stats().Total - before
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("lookup %d (answer on key %s, lookup answered by key %s): %d %s", i,
				a.key, resp.Header.Get("X-Keygate-Key"), resp.StatusCode, body)
		}
		var doc struct {
			Data struct {
				ID        string  `json:"id"`
				TotalCost float64 `json:"total_cost"`
				Model     string  `json:"model"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("lookup %d: %v in %s", i, err, body)
		}
		if doc.Data.ID != a.id || doc.Data.Model != "openai/gpt-4o-mini" || doc.Data.TotalCost <= 0 {
			t.Fatalf("lookup %d: %s, want generation %s", i, body, a.id)
		}
		if calls > 2 {
			t.Fatalf("lookup %d took %d upstream calls, want at most one per account (2)", i, calls)
		}
	}

	_, mfs := mtScrape(t, gw)
	retries := sumFamily(mfs["keygate_retries_total"])
	before := sim.Stats().Total
	resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/generation?id=gen-0-nosuchgeneration", nil))
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "Generation not found") {
		t.Fatalf("unknown id: %d %s, want upstream's 404", resp.StatusCode, body)
	}
	if calls := sim.Stats().Total - before; calls != 2 {
		t.Fatalf("unknown id took %d upstream calls, want one per account (2)", calls)
	}
	for id, k := range ptKeys(t, gw) {
		if k.CooldownUntil != nil || k.State != "closed" {
			t.Errorf("key %d %s until %v after 404s, want in rotation", id, k.State, k.CooldownUntil)
		}
	}
	_, mfs = mtScrape(t, gw)
	if got := sumFamily(mfs["keygate_retries_total"]); got != retries {
		t.Errorf("keygate_retries_total %v → %v: a lookup on another account is no fault", retries, got)
	}

	// A 404 of any other path is upstream's answer, as before: one call.
	before = sim.Stats().Total
	resp, _ = do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/models/nosuch", nil))
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown path: %d, want 404", resp.StatusCode)
	}
	if calls := sim.Stats().Total - before; calls != 1 {
		t.Fatalf("a 404 of /models/nosuch took %d upstream calls, want 1", calls)
	}
}

// sumFamily is the sum of a counter family's series (0 when absent).
func sumFamily(mf *dto.MetricFamily) float64 {
	total := 0.0
	for _, m := range mf.GetMetric() {
		total += m.GetCounter().GetValue()
	}
	return total
}
