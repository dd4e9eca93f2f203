package gateway

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/keygate/keygate/secret"
)

type keysResponse struct {
	Strategy string      `json:"strategy"`
	Keys     []keyStatus `json:"keys"`
}

type keyStatus struct {
	ID            int               `json:"id"`
	Masked        secret.Key        `json:"masked"`
	State         string            `json:"state"`
	InFlight      int64             `json:"in_flight"`
	Requests      uint64            `json:"requests"`
	Failures      map[string]uint64 `json:"failures"`
	CooldownUntil *time.Time        `json:"cooldown_until"`
}

// keys reports every key's live state, masked.
func (s *Server) keys(c echo.Context) error {
	pool, set := s.o.Relay.Pool(), s.o.Relay.Breakers()
	now := set.Now()
	ledger := pool.Ledger()
	out := keysResponse{Strategy: s.o.Strategy.Name(), Keys: make([]keyStatus, 0, pool.Len())}
	for _, k := range pool.Keys() {
		st := keyStatus{
			ID:       k.ID,
			Masked:   k.Secret,
			State:    set.For(k).State().String(),
			InFlight: ledger.InFlight(k.Slot()),
			Requests: ledger.Used(k.Slot()),
			Failures: map[string]uint64{},
		}
		if s.o.Observer != nil {
			st.Failures = s.o.Observer.Failures(k)
		}
		if until := ledger.RestUntil(k.Slot()); until > now.UnixNano() {
			t := time.Unix(0, until).UTC().Round(time.Millisecond)
			st.CooldownUntil = &t
		}
		out.Keys = append(out.Keys, st)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	writeJSON(c.Response(), http.StatusOK, out)
	return nil
}
