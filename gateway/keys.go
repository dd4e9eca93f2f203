package gateway

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// BudgetViewer shows a key's budget; nil while unknown.
type BudgetViewer interface {
	View(k *keyring.Key) *budget.View
}

type keysResponse struct {
	Strategy string      `json:"strategy"`
	Keys     []keyStatus `json:"keys"`
}

type keyStatus struct {
	ID     int        `json:"id"`
	Masked secret.Key `json:"masked"`
	// Fingerprint tells apart keys that share a mask; admin calls take
	// it as ?key= (secret.Key.Fingerprint).
	Fingerprint string `json:"fingerprint"`
	Account     string `json:"account"`
	State       string `json:"state"`
	// Disabled is set while an operator keeps the key out of rotation
	// (POST /admin/keys/{id}/disable); its automatic state goes on
	// beside it.
	Disabled bool   `json:"disabled"`
	InFlight int64  `json:"in_flight"`
	Requests uint64 `json:"requests"`
	// Failures are the answers that were the key's or its account's
	// fault, by status; OtherErrors the failed answers that were not
	// (a model's 404, a provider's 429, a 5xx, no answer at all, and a
	// key's fault that rested nothing, fault.Verdict.Spared).
	Failures      map[string]uint64 `json:"failures"`
	OtherErrors   map[string]uint64 `json:"other_errors"`
	CooldownUntil *time.Time        `json:"cooldown_until"`
	RestReason    *string           `json:"rest_reason"`
	// FreeBlockedUntil is when the key's account may take free-model
	// calls again, while it may not.
	FreeBlockedUntil *time.Time   `json:"free_blocked_until,omitempty"`
	Budget           *budget.View `json:"budget"`
}

// keys reports every key's live state, masked.
func (s *Server) keys(c echo.Context) error {
	snap := s.o.Relay.Snapshot()
	pool, set := snap.Pool(), snap.Breakers()
	now := set.Now()
	ledger := pool.Ledger()
	out := keysResponse{Strategy: s.o.Strategy.Name(), Keys: make([]keyStatus, 0, pool.Len())}
	for _, k := range pool.Keys() {
		st := keyStatus{
			ID:          k.ID,
			Masked:      k.Secret,
			Fingerprint: k.Secret.Fingerprint(),
			Account:     set.Account(k),
			State:       set.For(k).State().String(),
			Disabled:    set.Disabled(k),
			InFlight:    ledger.InFlight(k.Slot()),
			Requests:    ledger.Used(k.Slot()),
			Failures:    map[string]uint64{},
			OtherErrors: map[string]uint64{},
		}
		if s.o.Observer != nil {
			st.Failures, st.OtherErrors = s.o.Observer.Failures(k)
		}
		if until := ledger.RestUntil(k.Slot()); until > now.UnixNano() {
			r, _, auto := set.Rest(k)
			if st.Disabled {
				// The disable has no end: the rest shown is the
				// automatic one, if any.
				until = auto.UnixNano()
			}
			if !auto.IsZero() || !st.Disabled {
				t := time.Unix(0, until).UTC().Round(time.Millisecond)
				st.CooldownUntil = &t
			}
			if r != 0 {
				why := r.String()
				st.RestReason = &why
			}
		}
		if f := set.FreeBlockedUntil(k); !f.IsZero() {
			t := f.UTC().Round(time.Millisecond)
			st.FreeBlockedUntil = &t
		}
		if s.o.Budgets != nil {
			st.Budget = s.o.Budgets.View(k)
		}
		out.Keys = append(out.Keys, st)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	writeJSON(c.Response(), http.StatusOK, out)
	return nil
}
