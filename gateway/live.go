package gateway

import (
	"context"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/webui"
)

// StatusSource is the status page's view of the live pool: the relay's
// snapshot in force, the observer's counts and the budgets, read from
// atomics and the breakers' book only (never Redis), so that a page poll
// costs next to nothing.
type StatusSource struct {
	Relay    *relay.Relay
	Observer *Observer
	// Budgets shows each key's budget; nil shows none.
	Budgets BudgetViewer
	// Strategy is the rotation's name (KEY_ROTATION).
	Strategy string
	// Replica names this gateway among its replicas (the host name).
	Replica string
	// RedisUp reports whether the shared store answers; nil without one.
	RedisUp func() *bool
}

// Snapshot implements webui.Source.
func (s *StatusSource) Snapshot(context.Context) webui.Snapshot {
	snap := s.Relay.Snapshot()
	pool, set := snap.Pool(), snap.Breakers()
	now := set.Now()
	ledger := pool.Ledger()
	out := webui.Snapshot{Replica: s.Replica, Strategy: s.Strategy, At: now, Keys: make([]webui.Key, 0, pool.Len())}
	if s.RedisUp != nil {
		out.RedisUp = s.RedisUp()
	}
	for _, k := range pool.Keys() {
		row := webui.Key{
			ID:          k.ID,
			Masked:      k.Secret,
			Fingerprint: k.Secret.Fingerprint(),
			Account:     set.Account(k),
			Disabled:    set.Disabled(k),
			InFlight:    ledger.InFlight(k.Slot()),
			Calls:       ledger.Used(k.Slot()),
		}
		r, _, until := set.Rest(k)
		if !until.IsZero() {
			row.RestReason = r.String()
			row.RestLeft = webui.Seconds(until.Sub(now))
		}
		if f := set.FreeBlockedUntil(k); !f.IsZero() {
			row.FreeBlockedLeft = webui.Seconds(max(f.Sub(now), 0))
		}
		switch {
		case row.Disabled:
			row.State = webui.StateDisabled
		case set.For(k).State() == breaker.Open:
			row.State = webui.StateResting
			if until.IsZero() {
				// Resting by the ledger alone (a hold set elsewhere).
				row.RestLeft = webui.Seconds(time.Duration(ledger.RestUntil(k.Slot()) - now.UnixNano()))
			}
		case set.For(k).State() == breaker.HalfOpen:
			row.State = webui.StateTrial
		default:
			row.State = webui.StateActive
		}
		if s.Observer != nil {
			var lat time.Duration
			row.Failures, lat = s.Observer.Stats(k)
			row.LatencyMean = webui.Seconds(lat)
		}
		if s.Budgets != nil {
			row.Budget = s.Budgets.View(k)
		}
		out.Keys = append(out.Keys, row)
	}
	return out
}
