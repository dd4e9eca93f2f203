// Package share connects a replica's breakers and budget poller to the
// cluster store: the facts they decide go out as cluster events, and the
// events of other replicas come back in through their Apply methods, which
// do not tell them again (no loop). breaker and budget know nothing of
// cluster; this adapter is the one place that knows both.
package share

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// Adapter is the breaker.Sink, breaker.Trials and budget.Share of one
// replica, and applies other replicas' events. Build it with New, give it
// to the Set's and Poller's options, then Attach them; Attach again when a
// reload replaces them.
type Adapter struct {
	store cluster.Store
	log   *slog.Logger

	// names is the attached keys, by pointer, for the hot path (Spent):
	// swapped whole, read without a lock.
	names atomic.Pointer[map[*keyring.Key]*name]

	leaseMu sync.Mutex
	born    time.Time

	mu     sync.Mutex // guards what follows; never held while calling out
	set    *breaker.Set
	poller *budget.Poller
	// byRef and manualAt are by the ref's digest: replicas may number a
	// key differently for a while after a reload renumbers it, and a fact
	// of the key under another id is still the key's.
	byRef    map[string]*keyring.Key
	manualAt map[string]time.Time
	onManual func(set *breaker.Set, k *keyring.Key, disabled bool)
}

// name is a key's shared name and its account's label.
type name struct {
	ref     cluster.KeyRef
	account atomic.Pointer[string]
}

// New returns an adapter over store; log gets the events it cannot apply.
func New(store cluster.Store, log *slog.Logger) *Adapter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{store: store, log: log, born: time.Now(), byRef: map[string]*keyring.Key{}, manualAt: map[string]time.Time{}}
	a.names.Store(&map[*keyring.Key]*name{})
	return a
}

// Store is the adapter's cluster store.
func (a *Adapter) Store() cluster.Store { return a.store }

// Attach makes set, poller (nil when there is none) and keys the ones that
// events apply to, from now on. A reload that swaps them builds the new
// ones with this adapter in their options (breaker.Settings.Sink and
// Trials, budget.Options.Share) and calls Attach again; facts the old ones
// still tell go out as before.
func (a *Adapter) Attach(set *breaker.Set, poller *budget.Poller, keys []*keyring.Key) {
	// Only the keys in force: a key of an older snapshot (a call still on
	// it) is named by RefOf when it tells a fact, and its account label,
	// which Spent adds, moves to the same secret under its new pointer.
	old := *a.names.Load()
	labels := make(map[string]*string, len(old))
	for _, n := range old {
		if l := n.account.Load(); l != nil {
			labels[n.ref.Digest()] = l
		}
	}
	names := make(map[*keyring.Key]*name, len(keys))
	byRef := make(map[string]*keyring.Key, len(keys))
	for _, k := range keys {
		n := old[k]
		if n == nil {
			n = &name{ref: cluster.RefOf(k.ID, k.Secret)}
			if l := labels[n.ref.Digest()]; l != nil {
				n.account.Store(l)
			}
		}
		names[k] = n
		byRef[n.ref.Digest()] = k
	}
	a.names.Store(&names)
	a.mu.Lock()
	a.set, a.poller, a.byRef = set, poller, byRef
	// The new set may not hold the disables applied to the old one: the
	// next re-read applies every one again.
	clear(a.manualAt)
	a.mu.Unlock()
}

// OnManual registers f, which applies another replica's disable (true) or
// enable (false) of k to set, the attached one k belongs to: the live
// pool's (*breaker.Set).SetDisabled.
func (a *Adapter) OnManual(f func(set *breaker.Set, k *keyring.Key, disabled bool)) {
	a.mu.Lock()
	a.onManual = f
	a.mu.Unlock()
}

// Run applies other replicas' events until ctx ends or the store closes.
func (a *Adapter) Run(ctx context.Context) error { return a.store.Run(ctx, a.Apply) }

// nameOf is k's shared name, made (and kept) for a key never attached.
func (a *Adapter) nameOf(k *keyring.Key) *name {
	if n := (*a.names.Load())[k]; n != nil {
		return n
	}
	return &name{ref: cluster.RefOf(k.ID, k.Secret)}
}

// Ref is k's name in shared state.
func (a *Adapter) Ref(k *keyring.Key) cluster.KeyRef { return a.nameOf(k).ref }

// Fact implements breaker.Sink: it publishes what the Set decided.
func (a *Adapter) Fact(f breaker.Fact) {
	switch f.Kind {
	case breaker.AccountKnown:
		if n := (*a.names.Load())[f.Key]; n != nil {
			label := f.Account
			n.account.Store(&label)
		}
		// The others rest the key with its account, polled or not.
		a.store.Publish(cluster.Event{Kind: cluster.Member, Key: a.Ref(f.Key), Account: f.Account, At: time.Now()})
	case breaker.KeyRested:
		a.store.Publish(cluster.Event{Kind: cluster.KeyRest, Key: a.Ref(f.Key), Until: f.Until, Reason: f.Reason.String(), Status: f.Status})
	case breaker.AccountRested, breaker.FreeBlocked:
		a.store.Publish(cluster.Event{Kind: cluster.AccountRest, Account: f.Account, Until: f.Until, Reason: f.Reason.String(), Status: f.Status})
	case breaker.KeyBack:
		a.store.Publish(cluster.Event{Kind: cluster.TrialResult, Key: a.Ref(f.Key), Until: f.Until, OK: true})
	case breaker.AccountBack:
		ev := cluster.Event{Kind: cluster.AccountBack, Account: f.Account, Until: f.Until}
		if f.Reason == fault.FreeQuota {
			ev.Reason = f.Reason.String()
		}
		a.store.Publish(ev)
	}
}

// TryTrial implements breaker.Trials.
func (a *Adapter) TryTrial(k *keyring.Key, restUntil time.Time) bool {
	return a.store.TryTrial(context.Background(), a.Ref(k), restUntil)
}

// Polled implements budget.Share: the figures go to the other replicas,
// with what was spent on k, and the free-model requests used of its
// account, while the poll was out.
func (a *Adapter) Polled(k *keyring.Key, account string, f *budget.Figures, spent float64, free int) {
	b, err := budget.MarshalFigures(f)
	if err != nil {
		a.log.Warn("budget figures not shared", "event", "budget_not_shared", "key_id", k.ID, "err", err)
		return
	}
	a.store.Publish(cluster.Event{Kind: cluster.Budget, Key: a.Ref(k), Account: account, At: f.CheckedAt, Figures: b, USD: spent, N: free})
}

// Spent implements budget.Share; on the hot path, without a lock.
func (a *Adapter) Spent(k *keyring.Key, usd float64) {
	n := a.nameOf(k)
	ev := cluster.Event{Kind: cluster.Spend, Key: n.ref, USD: usd}
	if acct := n.account.Load(); acct != nil {
		ev.Account = *acct
	}
	a.store.Publish(ev)
}

// UsedFree implements budget.Share; on the hot path, without a lock.
func (a *Adapter) UsedFree(k *keyring.Key) {
	n := a.nameOf(k)
	ev := cluster.Event{Kind: cluster.FreeUse, Key: n.ref, N: 1}
	if acct := n.account.Load(); acct != nil {
		ev.Account = *acct
	}
	a.store.Publish(ev)
}

// leaseWait is how long after its start a replica's lease asks wait for a
// store it has not reached yet (the first polls go out together with the
// first connection); a poll's goroutine waits, never a pick. Later, a store
// that is away is not waited for.
const leaseWait = time.Second

// Lease implements budget.Share. Asks go one at a time, so that the polls
// a replica starts together share one connection instead of each dialling
// its own. The lease is named by the key's
// digest, as its trials are: replicas that number it differently still
// poll it once between them.
func (a *Adapter) Lease(k *keyring.Key, ttl time.Duration) bool {
	a.leaseMu.Lock()
	defer a.leaseMu.Unlock()
	for deadline := a.born.Add(leaseWait); !a.store.Up() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return a.store.TryLease(context.Background(), "budget:"+a.Ref(k).Digest(), ttl)
}

// Manual shares a disable (true) or enable (false) of k by hand; the admin
// path calls it after applying the change here.
func (a *Adapter) Manual(k *keyring.Key, disabled bool) {
	ref := a.Ref(k)
	now := time.Now()
	a.mu.Lock()
	a.manualAt[ref.Digest()] = now
	a.mu.Unlock()
	kind := cluster.Enable
	if disabled {
		kind = cluster.Disable
	}
	a.store.Publish(cluster.Event{Kind: kind, Key: ref, At: now})
}

// Apply takes one event of another replica (the store's Run calls it, one
// at a time). Events about keys this replica does not hold are dropped.
func (a *Adapter) Apply(ev cluster.Event) {
	a.mu.Lock()
	set, poller, k, onManual := a.set, a.poller, a.byRef[ev.Key.Digest()], a.onManual
	a.mu.Unlock()
	if set == nil {
		return // not attached yet: the next re-read brings it again
	}
	switch ev.Kind {
	case cluster.AccountRest:
		if ev.Reason == fault.FreeQuota.String() {
			set.ApplyFreeBlock(ev.Account, ev.Until)
		} else {
			set.ApplyAccountRest(ev.Account, reason(ev.Reason), ev.Status, ev.Until)
		}
		return
	case cluster.AccountBack:
		set.ApplyAccountBack(ev.Account, ev.Until, ev.Reason == fault.FreeQuota.String())
		return
	}
	if k == nil {
		return
	}
	switch ev.Kind {
	case cluster.KeyRest:
		set.ApplyKeyRest(k, reason(ev.Reason), ev.Status, ev.Until)
	case cluster.TrialResult:
		if ev.OK {
			set.ApplyKeyBack(k, ev.Until)
		}
	case cluster.Disable, cluster.Enable:
		a.mu.Lock()
		at, ok := a.manualAt[ev.Key.Digest()]
		newer := !ok || ev.At.After(at)
		if newer {
			a.manualAt[ev.Key.Digest()] = ev.At
		}
		a.mu.Unlock()
		if newer && onManual != nil {
			onManual(set, k, ev.Kind == cluster.Disable)
		}
	case cluster.Member:
		set.ApplyAccount(k, ev.Account)
		if n := (*a.names.Load())[k]; n != nil {
			label := ev.Account
			n.account.Store(&label)
		}
	case cluster.Budget:
		set.ApplyAccount(k, ev.Account)
		if n := (*a.names.Load())[k]; n != nil && ev.Account != "" {
			label := ev.Account
			n.account.Store(&label)
		}
		if poller == nil || len(ev.Figures) == 0 {
			return
		}
		f, err := budget.UnmarshalFigures(ev.Figures, ev.At)
		if err != nil {
			a.log.Debug("shared budget figures not read", "event", "budget_not_read", "key_id", k.ID, "err", err)
			return
		}
		poller.ApplyFigures(k, f, ev.USD, ev.N)
	case cluster.Spend:
		if poller != nil {
			poller.ApplySpend(k, ev.USD)
		}
	case cluster.FreeUse:
		if poller != nil {
			poller.ApplyFreeUse(k, ev.N)
		}
	}
}

// reason reads a reason as fault.Reason.String names it.
func reason(s string) fault.Reason {
	for r := fault.Reason(0); int(r) < fault.NumReasons; r++ {
		if r.String() == s {
			return r
		}
	}
	return fault.NoReason
}
