package gateway

import (
	"log/slog"

	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/metrics"
)

// BudgetObserver turns budget polls and spend into console lines and
// metrics. It implements budget.Observer.
type BudgetObserver struct {
	m   *metrics.Metrics
	log *slog.Logger
}

// NewBudgetObserver returns an observer writing to m (may be nil) and log.
func NewBudgetObserver(m *metrics.Metrics, log *slog.Logger) *BudgetObserver {
	return &BudgetObserver{m: m, log: log}
}

// Budget implements budget.Observer: a 💳 line per poll that read a cap,
// at info; polls of keys without a cap, and failed polls, at debug.
func (o *BudgetObserver) Budget(k *keyring.Key, account string, f *budget.Figures, err error) {
	if err != nil || f == nil {
		return
	}
	who := "API Key #" + k.Label
	if account != "" {
		who += " (account " + account + "…)"
	}
	attrs := []any{"event", "budget", "key_id", k.ID, "account", account}
	if f.FreeRemaining != nil {
		attrs = append(attrs, "free_requests_remaining", *f.FreeRemaining)
	}
	if f.Limit == nil || f.LimitRemaining == nil {
		o.log.Debug("💳 "+who+": no credit cap", attrs...)
		return
	}
	o.log.Info("💳 "+who+": "+budget.USD(*f.LimitRemaining)+" of "+budget.USD(*f.Limit)+" left",
		append(attrs, "limit", *f.Limit, "limit_remaining", *f.LimitRemaining)...)
}

// Spent implements budget.Observer.
func (o *BudgetObserver) Spent(k *keyring.Key, model string, v float64) {
	if o.m != nil {
		o.m.Spend(k.ID, model, v)
	}
}

// Remaining implements budget.Observer.
func (o *BudgetObserver) Remaining(k *keyring.Key, v float64, ok bool) {
	if o.m == nil {
		return
	}
	if ok {
		o.m.SetKeyBudget(k.ID, v)
	} else {
		o.m.ClearKeyBudget(k.ID)
	}
}

// FreeRemaining implements budget.Observer.
func (o *BudgetObserver) FreeRemaining(account string, n int) {
	if o.m != nil {
		o.m.SetAccountFreeRequests(account, n)
	}
}
