package budget

import (
	"sync"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
)

// gauges is an Observer that keeps the last Remaining and FreeRemaining
// told, as keygate_key_budget_remaining_usd and
// keygate_account_free_requests_remaining hold them.
type gauges struct {
	mu     sync.Mutex
	budget map[int]float64
	free   map[string]int
}

func (g *gauges) Budget(*keyring.Key, string, *Figures, error) {}
func (g *gauges) Spent(*keyring.Key, string, float64)          {}

func (g *gauges) Remaining(k *keyring.Key, usd float64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		g.budget[k.ID] = usd
	} else {
		delete(g.budget, k.ID)
	}
}

func (g *gauges) FreeRemaining(account string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.free[account] = n
}

func (g *gauges) get(id int, account string) (float64, bool, int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, okb := g.budget[id]
	f, okf := g.free[account]
	return b, okb, f, okf
}

// TestSharedFiguresMoveTheGauges: a replica that takes a key's figures and
// spend from another (REDIS_URL: one replica polls each key) reports the
// key's budget and its account's free requests from them, as its own poll
// and spend do. It did not: its gauges kept what they were at its own last
// spend on the key, and the dashboard and KeygateKeyBudgetLow, which take
// the max over replicas as the figure they share, showed that stale, higher
// budget.
func TestSharedFiguresMoveTheGauges(t *testing.T) {
	noLeaks(t)
	p, set, pool, _, _ := newPoller(t, 2)
	g := &gauges{budget: map[int]float64{}, free: map[string]int{}}
	p.o.Observer = g
	k := pool.Keys()[0]
	set.ApplyAccount(k, breaker.AccountLabel("u1"))
	acct := set.Account(k)

	limit, left, free, freeLimit := 5.0, 3.0, 40, 50
	p.ApplyFigures(k, &Figures{Limit: &limit, LimitRemaining: &left, LimitReset: "daily",
		FreeRemaining: &free, FreeLimit: &freeLimit, CheckedAt: epoch}, 0.5, 2)
	if b, ok, f, okf := g.get(1, acct); !ok || b != 2.5 || !okf || f != 38 {
		t.Fatalf("after another replica's figures: budget %v (%v), free %v (%v); want 2.5 and 38", b, ok, f, okf)
	}
	p.ApplySpend(k, 0.25)
	if b, ok, _, _ := g.get(1, acct); !ok || b != 2.25 {
		t.Fatalf("after another replica's spend: budget %v (%v), want 2.25", b, ok)
	}
	// The key's cap is lifted at upstream: the shared figures say so.
	p.ApplyFigures(k, &Figures{CheckedAt: epoch.Add(1e9)}, 0, 0)
	if b, ok, _, _ := g.get(1, acct); ok {
		t.Fatalf("budget %v after figures without a cap, want none", b)
	}
}
