package metrics

import (
	"math"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Spend adds usd, an answer's usage.cost, to keygate_key_spend_usd_total of
// keyID and model. Zero, negative, NaN and infinite amounts are skipped (a
// counter only grows, and a free call costs nothing), so calls without a
// cost create no series.
func (m *Metrics) Spend(keyID int, model string, usd float64) {
	if !(usd > 0) || math.IsInf(usd, 1) {
		return
	}
	km := m.key(keyID)
	if km == nil {
		return
	}
	k := spendKey{id: keyID, model: model}
	c := m.spendCache.get(k)
	if c == nil {
		k.model = m.models.label(model)
		if c = m.spendCache.get(k); c == nil {
			c = m.spendCache.resolve(km, k, func() prometheus.Counter {
				return m.spend.WithLabelValues(km.label, k.model)
			})
			if c == nil {
				return
			}
		}
	}
	c.Add(usd)
}

// SetKeyBudget sets keygate_key_budget_remaining_usd of keyID: what the key
// may still spend. It may go below zero between polls, when answers cost
// more than was left. NaN or an infinite amount (an unlimited key) clears
// the series as ClearKeyBudget does.
func (m *Metrics) SetKeyBudget(keyID int, usd float64) {
	if math.IsNaN(usd) || math.IsInf(usd, 0) {
		m.ClearKeyBudget(keyID)
		return
	}
	km := m.key(keyID)
	if km == nil {
		return
	}
	if g := km.budget.Load(); g != nil {
		(*g).Set(usd)
		return
	}
	km.mu.Lock()
	defer km.mu.Unlock()
	if km.deleted {
		return
	}
	g := km.budget.Load()
	if g == nil {
		c := m.budget.WithLabelValues(km.label)
		g = &c
		km.budget.Store(g)
	}
	(*g).Set(usd)
}

// ClearKeyBudget removes keygate_key_budget_remaining_usd of keyID, for a
// key whose budget is unknown or unlimited: an absent series, rather than a
// made-up number, is what a dashboard and an alert can tell apart.
func (m *Metrics) ClearKeyBudget(keyID int) {
	km := (*m.keys.m.Load())[keyID]
	if km == nil {
		return
	}
	km.mu.Lock()
	defer km.mu.Unlock()
	if km.budget.Swap(nil) != nil {
		m.budget.DeleteLabelValues(km.label)
	}
}

// Bounds of the `account` label. Accounts are at most one per key, so the
// bound only guards against a caller passing something other than the
// short digest the contract names.
const (
	maxAccounts     = 1024
	maxAccountLabel = 64
)

// accountSet caches the keygate_account_free_requests_remaining children by
// account digest.
type accountSet struct {
	vec   *prometheus.GaugeVec
	known sync.Map   // account -> prometheus.Gauge; read without locks
	mu    sync.Mutex // guards n and the creation and deletion of children
	n     int
}

// SetAccountFreeRequests sets keygate_account_free_requests_remaining of
// account (the short digest /keys shows, never the account id): the
// free-model requests it has left today. An empty, over-long or non-UTF-8
// account, or one past the first 1024 kept, records nothing.
func (m *Metrics) SetAccountFreeRequests(account string, remaining int) {
	a := &m.accounts
	if v, ok := a.known.Load(account); ok {
		v.(prometheus.Gauge).Set(float64(remaining))
		return
	}
	if account == "" || len(account) > maxAccountLabel || !utf8.ValidString(account) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.known.Load(account)
	if !ok {
		if a.n >= maxAccounts {
			return
		}
		v = a.vec.WithLabelValues(account)
		a.known.Store(account, v)
		a.n++
	}
	v.(prometheus.Gauge).Set(float64(remaining))
}

// DeleteAccount removes keygate_account_free_requests_remaining of account,
// for an account whose quota became unknown or that no key of the pool
// belongs to any more.
func (m *Metrics) DeleteAccount(account string) {
	a := &m.accounts
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.known.LoadAndDelete(account); ok {
		a.vec.DeleteLabelValues(account)
		a.n--
	}
}
