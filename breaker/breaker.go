// Package breaker decides when a key leaves rotation and when it comes back.
//
// Each key has a gobreaker two-step circuit breaker that trips on the first
// fault of the key (as the fault package judges it) and, once the key's rest
// has ended, lets one trial call through at a time (half-open). gobreaker's
// open period is fixed per breaker, so the rest deadline — which varies with
// reset hints and doubles after a failed trial — lives beside it: the Set's
// book keeps each rest's cause (the key's own, or its account's) and writes
// the latest deadline into the pool's keyring.Ledger, where strategies read
// it without locks.
package breaker

import (
	"errors"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// Reason is why a key rests; the fault package defines them.
type Reason = fault.Reason

// The reasons breakers are told most often, named here for their callers.
const (
	NoFault   = fault.NoReason
	Auth      = fault.Auth
	RateLimit = fault.RateLimit
)

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
	// AuthCooldown is the rest after a 401, and after a credit fault
	// whose end upstream does not tell. Default 10m.
	AuthCooldown time.Duration
	// RateLimitCooldown is the rest after a 429 without a usable reset
	// hint. Default 30s.
	RateLimitCooldown time.Duration
	// MaxCooldown caps the doubling of rests after failed trials; a rest
	// is never capped below its first length. Default 1h.
	MaxCooldown time.Duration
	// Now is the clock for rest deadlines. Default time.Now.
	Now func() time.Time
	// Sink, when set, is told the rests and lifts the Set decides, to
	// share them with other replicas.
	Sink Sink
	// Trials, when set, is asked before each trial call of a key back
	// from rest, so that one replica of the fleet sends it.
	Trials Trials
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
	book     *book
}

// NewSet makes a breaker for every key of pool.
func NewSet(pool *keyring.Pool, s Settings) *Set {
	s.defaults()
	set := &Set{pool: pool, settings: s, byslot: make([]*Breaker, pool.Len()), book: newBook(pool.Len())}
	for _, k := range pool.Keys() {
		b := &Breaker{key: k, set: set, ledger: pool.Ledger(), settings: &set.settings}
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
	set      *Set
	ledger   keyring.Ledger
	settings *Settings
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	strikes  atomic.Int32 // failed trials in a row
	// open is set while the breaker is not closed: a call let through
	// then is a trial.
	open atomic.Bool
	// won is the rest (unix ns) whose trial this replica was given;
	// askAfter, when it may ask for one again after a refusal.
	won, askAfter atomic.Int64
	// settling counts the faults told to the breaker whose rest is not in
	// the ledger yet (from before the breaker hears of one, which may open
	// it and half-open it after its nanosecond): a call let through
	// meanwhile would find the old rest over and the breaker half-open
	// again, a second trial of that rest.
	settling atomic.Int32
}

func (b *Breaker) onStateChange(_ string, from, to gobreaker.State) {
	b.open.Store(to != gobreaker.StateClosed)
	switch {
	case from == gobreaker.StateHalfOpen && to == gobreaker.StateOpen:
		b.strikes.Add(1)
	case to == gobreaker.StateClosed:
		b.strikes.Store(0)
	}
}

// State is the key's automatic state now: open while it rests, then
// half-open until a trial succeeds. A manual disable is apart (Set.Disabled):
// a disabled key shows the state its own and its account's rests give it,
// not the ledger's endless deadline, so /keys and keygate_key_state tell a
// disabled healthy key from a resting one.
func (b *Breaker) State() State {
	until := b.ledger.RestUntil(b.key.Slot())
	if until == math.MaxInt64 {
		// Disabled: the book knows the automatic deadline.
		until = 0
		if _, _, auto := b.set.Rest(b.key); !auto.IsZero() {
			until = auto.UnixNano()
		}
	}
	if until != 0 && until > b.settings.Now().UnixNano() {
		return Open
	}
	if b.cb.State() == gobreaker.StateClosed {
		return Closed
	}
	return HalfOpen
}

// resting reports whether the key's rest has not ended.
func (b *Breaker) resting() bool {
	// A key never rested, the rule, needs no clock read.
	until := b.ledger.RestUntil(b.key.Slot())
	return until != 0 && until > b.settings.Now().UnixNano()
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
	// The key may have been sent to rest between the pick and Allow, or
	// be on its way there.
	if b.settling.Load() != 0 || b.resting() {
		done(errExcluded)
		return Trial{}, ErrResting
	}
	if !b.open.Load() {
		return Trial{b: b, done: done}, nil
	}
	// A trial: of the replicas sharing the key, one sends it.
	rest := b.ledger.RestUntil(b.key.Slot())
	if !b.mayTrial(rest) {
		done(errExcluded)
		return Trial{}, ErrTrialBusy
	}
	return Trial{b: b, done: done, rest: rest}, nil
}

// Trial is one allowed call; report its outcome once.
type Trial struct {
	b    *Breaker
	done func(error)
	rest int64 // a trial's: the rest that ended (unix ns); else 0
}

// Success reports a call whose answer was not the key's fault.
func (t Trial) Success() {
	t.done(nil)
	if t.rest != 0 {
		t.b.set.tell(Fact{Kind: KeyBack, Key: t.b.key, Until: time.Unix(0, t.rest)})
	}
}

// Abandon reports a call whose outcome says nothing of the key (the client
// went away): it frees a half-open trial slot without deciding.
func (t Trial) Abandon() { t.done(errExcluded) }

// Fail reports a fault of the key and sends it to rest for v.Reason: until
// v.Until when upstream said (zero: no hint), else RateLimitCooldown
// for rate limits and AuthCooldown for the rest. A 401's hint is ignored:
// a Retry-After must not bring a revoked key back in seconds. The rest
// doubles for every failed trial in a row, up to MaxCooldown (never below
// its first length), and never shortens one already in force. It returns
// the rest now in force.
func (t Trial) Fail(v fault.Verdict) time.Duration {
	t.b.settling.Add(1) // from before the breaker hears of it to the rest in the ledger
	defer t.b.settling.Add(-1)
	t.done(errKeyFault)
	return t.b.restFor(v)
}

// restFor rests the key for v as Fail describes and returns the rest in
// force.
func (b *Breaker) restFor(v fault.Verdict) time.Duration {
	r, until := v.Reason, v.Until
	now := b.settings.Now()
	base := b.settings.AuthCooldown
	switch {
	case r == fault.Auth:
	case !until.IsZero() && until.After(now):
		base = until.Sub(now)
	case r == fault.RateLimit || r == fault.FreeQuota || r == fault.InFlightBudget:
		base = b.settings.RateLimitCooldown
	}
	rest := base
	limit := max(b.settings.MaxCooldown, base)
	for i := b.strikes.Load(); i > 0 && rest < limit; i-- {
		rest *= 2
	}
	rest = min(rest, limit)
	in := b.set.RestKey(b.key, r, v.Status, now.Add(rest))
	return in.Sub(now)
}

// Confirmed rests k for a fault its own GET /key confirmed, as Fail would
// have: the breaker trips, so that the key comes back through one trial
// call, and failed trials double the rest. It returns the rest in force.
func (s *Set) Confirmed(k *keyring.Key, v fault.Verdict) time.Duration {
	b := s.For(k)
	b.settling.Add(1)
	defer b.settling.Add(-1)
	if done, err := b.cb.Allow(); err == nil {
		done(errKeyFault)
	}
	return b.restFor(v)
}

// Hold settles the call as undecided (a half-open trial slot is freed) and
// keeps the key out of rotation until until for r: the short hold of a
// fault that its GET /key has yet to confirm.
func (t Trial) Hold(r Reason, status int, until time.Time) {
	// Held first: the freed trial slot must not let a call through
	// before the hold is in the ledger.
	t.b.set.RestKey(t.b.key, r, status, until)
	t.done(errExcluded)
}
