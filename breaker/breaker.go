// Package breaker decides when a key leaves rotation and when it comes back.
//
// Each key has a gobreaker two-step circuit breaker that trips on the first
// key fault (401, 402, 403, 429) and, once the key's rest has ended, lets one
// trial call through at a time (half-open). gobreaker's open period is fixed
// per breaker, so the rest deadline — which varies with Retry-After and
// doubles after a failed trial — lives beside it in the pool's keyring.Ledger,
// where strategies read it without locks.
package breaker

import (
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/keygate/keygate/keyring"
)

// Reason says why an upstream answer is the key's fault.
type Reason uint8

// Reasons. NoFault means the key is fine (success, 5xx, timeout, network).
const (
	NoFault Reason = iota
	Auth
	RateLimit
)

// String names the reason as metrics label it.
func (r Reason) String() string {
	switch r {
	case Auth:
		return "auth"
	case RateLimit:
		return "rate_limit"
	}
	return "none"
}

// Classify says whether an upstream status is the key's fault.
func Classify(status int) Reason {
	switch status {
	case http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusForbidden:
		return Auth
	case http.StatusTooManyRequests:
		return RateLimit
	}
	return NoFault
}

// State of a key's breaker, numbered as the keygate_key_state gauge.
type State int

// States.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

// String names the state as /keys shows it.
func (s State) String() string {
	switch s {
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return "closed"
}

// Errors of Allow. Both mean: pick another key.
var (
	// ErrResting: the key's rest has not ended.
	ErrResting = errors.New("breaker: key is resting")
	// ErrTrialBusy: the key is half-open and its one trial call is out.
	ErrTrialBusy = errors.New("breaker: key trial in progress")
)

var (
	errKeyFault = errors.New("breaker: key fault")
	errExcluded = errors.New("breaker: outcome unknown")
)

// Settings configure the breakers. Zero durations take the defaults.
type Settings struct {
	// AuthCooldown is the rest after 401, 402 or 403. Default 10m.
	AuthCooldown time.Duration
	// RateLimitCooldown is the rest after a 429 without a usable reset
	// hint. Default 30s.
	RateLimitCooldown time.Duration
	// MaxCooldown caps the doubling of rests after failed trials; a rest
	// is never capped below its first length. Default 1h.
	MaxCooldown time.Duration
	// Now is the clock for rest deadlines. Default time.Now.
	Now func() time.Time
}

func (s *Settings) defaults() {
	if s.AuthCooldown <= 0 {
		s.AuthCooldown = 10 * time.Minute
	}
	if s.RateLimitCooldown <= 0 {
		s.RateLimitCooldown = 30 * time.Second
	}
	if s.MaxCooldown <= 0 {
		s.MaxCooldown = time.Hour
	}
	if s.Now == nil {
		s.Now = time.Now
	}
}

// Set holds one breaker per key of a pool.
type Set struct {
	pool     *keyring.Pool
	settings Settings
	byslot   []*Breaker
}

// NewSet makes a breaker for every key of pool.
func NewSet(pool *keyring.Pool, s Settings) *Set {
	s.defaults()
	set := &Set{pool: pool, settings: s, byslot: make([]*Breaker, pool.Len())}
	for _, k := range pool.Keys() {
		b := &Breaker{key: k, ledger: pool.Ledger(), settings: &set.settings}
		b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        strconv.Itoa(k.ID),
			MaxRequests: 1,
			// The rest deadline in the ledger gates the key; gobreaker
			// only has to turn half-open once asked after it.
			Timeout:       time.Nanosecond,
			ReadyToTrip:   func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 },
			IsExcluded:    func(err error) bool { return errors.Is(err, errExcluded) },
			OnStateChange: b.onStateChange,
		})
		set.byslot[k.Slot()] = b
	}
	return set
}

// For returns k's breaker.
func (s *Set) For(k *keyring.Key) *Breaker { return s.byslot[k.Slot()] }

// Now is the set's clock.
func (s *Set) Now() time.Time { return s.settings.Now() }

// Breaker is one key's health.
type Breaker struct {
	key      *keyring.Key
	ledger   keyring.Ledger
	settings *Settings
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	strikes  atomic.Int32 // failed trials in a row
}

func (b *Breaker) onStateChange(_ string, from, to gobreaker.State) {
	switch {
	case from == gobreaker.StateHalfOpen && to == gobreaker.StateOpen:
		b.strikes.Add(1)
	case to == gobreaker.StateClosed:
		b.strikes.Store(0)
	}
}

// State is the key's state now: open while it rests, then half-open until a
// trial succeeds.
func (b *Breaker) State() State {
	if b.resting() {
		return Open
	}
	if b.cb.State() == gobreaker.StateClosed {
		return Closed
	}
	return HalfOpen
}

// resting reports whether the key's rest has not ended.
func (b *Breaker) resting() bool {
	return b.ledger.RestUntil(b.key.Slot()) > b.settings.Now().UnixNano()
}

// Strikes is the number of failed trials in a row.
func (b *Breaker) Strikes() int { return int(b.strikes.Load()) }

// Allow asks to send one call on the key. Every successful Allow must be
// followed by exactly one of the Trial's methods.
func (b *Breaker) Allow() (Trial, error) {
	done, err := b.cb.Allow()
	if err != nil {
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			return Trial{}, ErrTrialBusy
		}
		return Trial{}, ErrResting
	}
	// The key may have been sent to rest between the pick and Allow.
	if b.resting() {
		done(errExcluded)
		return Trial{}, ErrResting
	}
	return Trial{b: b, done: done}, nil
}

// Trial is one allowed call; report its outcome once.
type Trial struct {
	b    *Breaker
	done func(error)
}

// Success reports a call whose answer was not the key's fault.
func (t Trial) Success() { t.done(nil) }

// Abandon reports a call whose outcome says nothing of the key (the client
// went away): it frees a half-open trial slot without deciding.
func (t Trial) Abandon() { t.done(errExcluded) }

// Fail reports a key fault and sends the key to rest: for a rate limit, hint
// when upstream gave one (0 for none), else RateLimitCooldown; for an auth
// failure AuthCooldown, whatever the hint (a Retry-After on a 401 or 403
// must not bring a revoked key back in seconds). The rest doubles for every
// failed trial in a row, up to MaxCooldown, and never shortens one already
// in force. It returns the rest now in force.
func (t Trial) Fail(r Reason, hint time.Duration) time.Duration {
	b := t.b
	t.done(errKeyFault)
	base := b.settings.RateLimitCooldown
	switch {
	case r == Auth:
		base = b.settings.AuthCooldown
	case hint > 0:
		base = hint
	}
	rest := base
	limit := max(b.settings.MaxCooldown, base)
	for i := b.strikes.Load(); i > 0 && rest < limit; i-- {
		rest *= 2
	}
	rest = min(rest, limit)
	now := b.settings.Now().UnixNano()
	until := b.ledger.ExtendRest(b.key.Slot(), now+int64(rest))
	return time.Duration(until - now)
}
