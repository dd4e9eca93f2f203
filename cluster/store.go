package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Store is how a replica shares events with the others. Callers never know
// which implementation they hold, and no method waits on the network for
// longer than Options.HotTimeout.
type Store interface {
	// Publish shares ev. It never blocks: events queue in the process and
	// one goroutine writes them. Spend events add up locally and go out
	// about once a second, so calling it per answer is cheap.
	Publish(ev Event)
	// TryTrial reports whether this replica sends the trial call of key
	// whose rest ended at restUntil: true for exactly one replica per rest,
	// false for the others, which keep the key out until a TrialResult
	// arrives (or ask again later: the token expires after TrialTTL).
	// When the store cannot tell (Redis away or slow) it answers true, so
	// the replica decides alone, and logs so at Debug (event
	// trial_unshared): then every replica that asks sends a trial.
	TryTrial(ctx context.Context, key KeyRef, restUntil time.Time) bool
	// TryLease reports whether this replica holds the lease name for ttl
	// (one budget poller per key per interval). True when the store
	// cannot tell, for the same reason as TryTrial.
	TryLease(ctx context.Context, name string, ttl time.Duration) bool
	// Run delivers other replicas' events to apply until ctx ends or Close
	// is called: pushes as they come, and a re-read of all current facts
	// every HealInterval, which repeats facts already delivered and may
	// arrive after a newer push. So apply must be idempotent and ordered
	// by the facts themselves: a rest (key or account) keeps the later
	// Until; TrialResult OK / AccountBack end a rest only if it ends no
	// later than their Until; Disable/Enable and Budget win by later At;
	// a pushed Spend adds USD to the key's (and Account's) spend since its
	// budget poll, a re-read Budget sets that spend to its USD. A replica
	// never gets its own pushes back. apply is never called concurrently.
	// Run is called once.
	Run(ctx context.Context, apply func(Event)) error
	// Up reports whether the shared store is reachable (Local: always).
	Up() bool
	// Close stops Run and releases the connection; it waits for the
	// store's goroutines to end.
	Close() error
}

// ErrRunning is returned by a second Run, or a Run after Close.
var ErrRunning = errors.New("cluster: Run called twice or after Close")

// Options configure a Store. Zero values take the defaults named.
type Options struct {
	// URL is REDIS_URL; empty means Local. See ParseURL.
	URL string
	// TLSConfig replaces the TLS settings of a rediss:// URL (whose default
	// checks the server's certificate against the system roots); for a
	// private CA or client certificates.
	TLSConfig *tls.Config
	// Prefix starts every Redis key and the channel; default "keygate:".
	Prefix string
	// HotTimeout bounds TryTrial, which sits on a pick; default 5ms.
	// TryLease, asked off the picks, waits IOTimeout.
	HotTimeout time.Duration
	// IOTimeout bounds each background write, re-read and probe; default
	// 500ms.
	IOTimeout time.Duration
	// HealInterval is how often all facts are re-read; default 1s.
	HealInterval time.Duration
	// TrialTTL is how long a trial token stays taken; set it to the
	// upstream timeout, so that a replica that died mid-trial frees the key
	// for another. Default 2m.
	TrialTTL time.Duration
	// BudgetTTL is how long budget figures and spend live in Redis without
	// a new poll; a few poll intervals. Default 5m.
	BudgetTTL time.Duration
	// MemberTTL is how long a key's account (a Member fact) stays in
	// Redis after it was learned or renewed; renewed at half of it while
	// the replica that learned it runs. Default 24h.
	MemberTTL time.Duration
	// QueueSize is how many events wait for the writer before the oldest
	// is dropped; default 1024.
	QueueSize int
	// Logger receives state changes (connected, unreachable), once each;
	// default: discard.
	Logger *slog.Logger
	// Registerer, when set, gets keygate_redis_up (Redis only).
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "keygate:"
	}
	if o.HotTimeout <= 0 {
		o.HotTimeout = 5 * time.Millisecond
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 500 * time.Millisecond
	}
	if o.HealInterval <= 0 {
		o.HealInterval = time.Second
	}
	if o.TrialTTL <= 0 {
		o.TrialTTL = 2 * time.Minute
	}
	if o.BudgetTTL <= 0 {
		o.BudgetTTL = 5 * time.Minute
	}
	if o.MemberTTL <= 0 {
		o.MemberTTL = 24 * time.Hour
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// New is Local when o.URL is empty, else a Redis store for it.
func New(o Options) (Store, error) {
	if o.URL == "" {
		return NewLocal(), nil
	}
	return NewRedis(o)
}

// Local is the Store of a lone replica: nothing to share, every trial and
// lease its own.
type Local struct {
	once sync.Once
	done chan struct{}
}

// NewLocal returns a Local store.
func NewLocal() *Local { return &Local{done: make(chan struct{})} }

// Publish does nothing: there is no one to tell.
func (*Local) Publish(Event) {}

// TryTrial is always true: this replica is the fleet.
func (*Local) TryTrial(context.Context, KeyRef, time.Time) bool { return true }

// TryLease is always true: this replica is the fleet.
func (*Local) TryLease(context.Context, string, time.Duration) bool { return true }

// Run waits for ctx or Close; no event ever comes.
func (l *Local) Run(ctx context.Context, _ func(Event)) error {
	select {
	case <-ctx.Done():
	case <-l.done:
	}
	return nil
}

// Up is always true.
func (*Local) Up() bool { return true }

// Close ends Run.
func (l *Local) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}
