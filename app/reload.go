package app

import (
	"fmt"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/keysfile"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// swap builds a snapshot of entries and puts it in force; l.mu is held.
// Kept keys (by secret, under their old id or a new one) carry their state
// over; new keys start closed; removed keys' calls in flight finish on the
// old snapshot. The metric series of every id whose key changed (removed,
// renumbered away, a new secret) go: a key's series are its id's.
func (l *Live) swap(entries []keyring.Entry, readErr error) (admin.ReloadResult, error) {
	if readErr != nil {
		return admin.ReloadResult{}, readErr
	}
	if len(entries) == 0 {
		return admin.ReloadResult{}, keysfile.ErrNoKeys
	}
	pool, err := keyring.New(entries, nil)
	if err != nil {
		return admin.ReloadResult{}, fmt.Errorf("building the pool: %w", err)
	}
	old := l.relay.Snapshot()
	oldPool, oldPoller := old.Pool(), l.budgets.Load()
	change := keysfile.Diff(l.entries, entries)
	kept := make([]breaker.Pair, 0, len(change.Kept))
	for _, id := range change.Kept {
		kept = append(kept, breaker.Pair{New: pool.ByID(id), Old: oldPool.ByID(change.Was(id))})
	}
	// The series of every id whose key changed (removed, renumbered away,
	// a new secret) go.
	var dropped []int
	for _, k := range oldPool.Keys() {
		if nk := pool.ByID(k.ID); nk == nil || pool.Find(k) != nk {
			dropped = append(dropped, k.ID)
		}
	}
	l.newSnapshot(pool, oldPool, old.Breakers(), oldPoller, kept, dropped)
	l.entries = entries
	l.seeMasks(pool)
	if l.m != nil {
		l.dropAccounts(oldPool, old.Breakers(), pool, l.relay.Snapshot().Breakers())
	}
	if l.m != nil {
		// A renumbered key's budget gauge, dropped with its old id's
		// series, is its new id's at once, not at the next poll.
		for _, m := range change.Renumbered {
			nk := pool.ByID(m.To)
			if v := l.budgets.Load().View(nk); v != nil && v.LimitRemaining != nil {
				l.m.SetKeyBudget(nk.ID, *v.LimitRemaining)
			}
		}
	}
	res := admin.ReloadResult{Keys: pool.Len(), Added: change.Added, Removed: change.Removed, Kept: change.Kept}
	for _, m := range change.Renumbered {
		res.Renumbered = append(res.Renumbered, admin.Move{From: m.From, To: m.To})
	}
	return res, nil
}

// dropAccounts removes the account series
// (keygate_account_free_requests_remaining) of every account that a key of
// the old pool belonged to and no key of the new one does.
func (l *Live) dropAccounts(oldPool *keyring.Pool, oldSet *breaker.Set, pool *keyring.Pool, set *breaker.Set) {
	now := make(map[string]bool, pool.Len())
	for _, k := range pool.Keys() {
		now[set.Account(k)] = true
	}
	for _, k := range oldPool.Keys() {
		if a := oldSet.Account(k); a != "" && !now[a] {
			now[a] = true // once
			l.m.DeleteAccount(a)
		}
	}
}

// newSnapshot builds breakers and a budget poller for pool, carries kept
// keys' state from the old ones, drops the metric series of the ids in
// dropped, and puts the snapshot in force; l.mu is held.
func (l *Live) newSnapshot(pool, oldPool *keyring.Pool, oldSet *breaker.Set, oldPoller *budget.Poller, kept []breaker.Pair, dropped []int) {
	set := breaker.NewSet(pool, l.settings)
	set.CarryFrom(oldSet, kept)
	for _, k := range pool.Keys() {
		if l.disabled[RefOf(k).Digest()] {
			set.SetDisabled(k, true)
		}
	}
	poller := budget.New(pool, set, l.budgetO)
	poller.CarryFrom(oldPoller, kept)
	if l.attach != nil {
		l.attach(set, poller, pool.Keys())
	}
	// Counts, gauges and the redactor follow first, so that a call on the
	// new snapshot finds its key in them; the poller before the pool, so
	// that a key resolved in the pool has its budget slot. The poller is
	// in force (Spend, View) before the observer follows, so that a call
	// ending before the relay swaps spends where it counts: on its key as
	// the new pool names it (the old poller's loop is stopped below).
	oldPoller.Retire()
	l.budgets.Store(poller)
	l.obs.Follow(pool)
	if l.m != nil {
		// Right after the observer follows the new pool: from then on it
		// records kept keys under their new ids, and what it records must
		// not be dropped (stopping the poller below may take a while).
		for _, id := range dropped {
			l.m.DeleteKey(id)
		}
	}
	l.src.Follow(pool, set)
	if l.m != nil {
		// New and renumbered ids start at 0, as at start-up; only once the
		// gauges' source lists them, as AddKey ignores an id it does not.
		for _, k := range pool.Keys() {
			l.m.AddKey(k.ID)
		}
	}
	if l.redactor != nil {
		if l.retired == nil {
			l.retired = map[[32]byte]secret.Key{}
		}
		for _, k := range oldPool.Keys() {
			// Calls in flight on removed keys may still quote them.
			l.retired[k.Secret.Digest()] = k.Secret
		}
		secrets := make([]secret.Key, 0, pool.Len()+len(l.retired))
		for _, k := range pool.Keys() {
			secrets = append(secrets, k.Secret)
			delete(l.retired, k.Secret.Digest())
		}
		for _, k := range l.retired {
			secrets = append(secrets, k)
		}
		l.redactor.Replace(secrets)
	}
	l.stopPoller()
	var confirm relay.Confirmer
	if l.confirm {
		confirm = poller
	}
	// Kept keys' calls in flight and made count on the new pool from
	// now on, those still on the old one too.
	oldPool.Forward(pool)
	l.relay.Swap(pool, set, confirm)
	l.startPoller()
}
