package breaker

import (
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// FactKind says what a Fact is about.
type FactKind uint8

// The kinds of Fact.
const (
	// KeyRested: Key rests (for its own fault) until Until.
	KeyRested FactKind = iota + 1
	// AccountRested: every key of Account rests until Until.
	AccountRested
	// FreeBlocked: Account may take no free-model call until Until.
	FreeBlocked
	// KeyBack: Key's rest that ended at Until is over: its trial call
	// succeeded, or a budget poll lifted it early.
	KeyBack
	// AccountBack: Account's rest (Reason other than fault.FreeQuota) or
	// its free-model block (fault.FreeQuota) that ends at Until is over
	// early (a budget poll showed it is not due). Each ends only its own:
	// free requests left say nothing of the account's credits.
	AccountBack
	// AccountKnown: Key belongs to Account (its label); nothing to share,
	// but a sink may want the label without asking the Set.
	AccountKnown
)

// Fact is something the Set decided that other replicas should know.
type Fact struct {
	Kind    FactKind
	Key     *keyring.Key // nil for AccountRested, FreeBlocked, AccountBack
	Account string       // the account's label
	Reason  fault.Reason
	Status  int
	Until   time.Time
}

// Sink learns the Set's own facts, to share them with other replicas. Fact
// may be called with the Set's book locked: it must not block nor call the
// Set.
// Facts applied through the Apply methods are not told again.
type Sink interface {
	Fact(f Fact)
}

// Trials is asked, before a half-open key's trial call goes out, whether
// this replica is the one to send it: of all replicas sharing the key, one
// sends the trial of each rest's end. It must answer within a few
// milliseconds, and true when it cannot tell.
type Trials interface {
	TryTrial(k *keyring.Key, restUntil time.Time) bool
}

// trialWait is how long a replica refused a key's trial waits before it
// asks again: the trial's result comes meanwhile, or its token expires.
const trialWait = 250 * time.Millisecond

func (s *Set) tell(f Fact) {
	if s.settings.Sink != nil {
		s.settings.Sink.Fact(f)
	}
}

// mayTrial reports whether the trial call after the rest that ended at
// rest (unix ns) is this replica's to send.
func (b *Breaker) mayTrial(rest int64) bool {
	t := b.settings.Trials
	if t == nil || rest == 0 {
		return true
	}
	if b.won.Load() == rest {
		return true
	}
	now := b.settings.Now().UnixNano()
	if now < b.askAfter.Load() {
		return false
	}
	if !t.TryTrial(b.key, time.Unix(0, rest)) {
		b.askAfter.Store(now + int64(trialWait))
		return false
	}
	b.won.Store(rest)
	return true
}

// millis is a unix-ns deadline at the millisecond precision shared facts
// carry.
func millis(ns int64) int64 { return time.Unix(0, ns).UnixMilli() }

// ApplyKeyRest takes a rest of k that another replica learned: later
// deadline wins. A key whose breaker is closed trips, so that when the rest
// ends it comes back through one trial call, as on the replica that rested
// it.
func (s *Set) ApplyKeyRest(k *keyring.Key, r fault.Reason, status int, until time.Time) {
	b := s.book
	b.mu.Lock()
	slot := k.Slot()
	old := b.own[slot].until
	b.own[slot].extend(until.UnixNano(), r, status)
	changed := b.own[slot].until != old
	b.sync(s.pool.Ledger(), slot)
	b.mu.Unlock()
	if !changed || !until.After(s.settings.Now()) {
		return
	}
	br := s.For(k)
	if br.open.Load() {
		return
	}
	if done, err := br.cb.Allow(); err == nil {
		done(errKeyFault)
	}
}

// ApplyKeyBack ends k's own rest if it is the one that ends at until
// (another replica's trial after it succeeded, or its poll lifted it) and
// closes the key's breaker: the fleet's one trial was sent. Only that rest:
// a back stays in Redis a while and is read again, and a rest learned after
// it, though shorter, is not the one it ended.
func (s *Set) ApplyKeyBack(k *keyring.Key, until time.Time) {
	b := s.book
	b.mu.Lock()
	slot := k.Slot()
	u := until.UnixMilli()
	back := b.own[slot].until != 0 && millis(b.own[slot].until) == u
	// A trial names the rest in force when it went out, which is the
	// account's when that outlasted the key's own (over by now, as the
	// key's own is): the key's breaker, tripped by its own rest, closes
	// all the same.
	if !back && b.own[slot].until != 0 && millis(b.own[slot].until) <= u && !until.After(s.settings.Now()) {
		back = millis(b.effective(slot).until) == u
	}
	if back {
		b.own[slot] = cause{}
		b.sync(s.pool.Ledger(), slot)
	}
	b.mu.Unlock()
	if !back {
		return
	}
	if done, err := s.For(k).cb.Allow(); err == nil {
		done(nil)
	}
}

// account returns label's account, made if unknown (a fact may come before
// this replica has learned which keys the account holds). Call with mu held.
func (b *book) account(label string) *account {
	a := b.accts[label]
	if a == nil {
		a = &account{}
		b.accts[label] = a
	}
	return a
}

// ApplyAccountRest rests every key of the account with label until until,
// as another replica learned; later deadline wins.
func (s *Set) ApplyAccountRest(label string, r fault.Reason, status int, until time.Time) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	b.account(label).rest.extend(until.UnixNano(), r, status)
	b.members(label, func(m int) { b.sync(s.pool.Ledger(), m) })
}

// ApplyFreeBlock blocks free-model calls of the account with label until
// until, as another replica learned; later deadline wins.
func (s *Set) ApplyFreeBlock(label string, until time.Time) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.account(label)
	a.free = max(a.free, until.UnixNano())
	b.members(label, func(m int) { b.free[m].Store(a.free) })
}

// ApplyAccountBack ends the account's free-model block (free) or its rest
// (not free) if it is the one that ends at until: another replica's budget
// poll lifted it. Not a later-learned one, as ApplyKeyBack.
func (s *Set) ApplyAccountBack(label string, until time.Time, free bool) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	a := b.accts[label]
	if a == nil {
		return
	}
	u := until.UnixMilli()
	if !free && a.rest.until != 0 && millis(a.rest.until) == u {
		a.rest = cause{}
	}
	if free && a.free != 0 && millis(a.free) == u {
		a.free = 0
	}
	b.members(label, func(m int) { b.sync(s.pool.Ledger(), m) })
}

// ApplyAccount records that k belongs to the account with label, as
// another replica's budget poll found.
func (s *Set) ApplyAccount(k *keyring.Key, label string) {
	if label == "" {
		return
	}
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	if b.acct[slot] == label {
		return
	}
	b.join(slot, label)
	b.regroup()
	b.sync(s.pool.Ledger(), slot)
}
