package breaker

import (
	"github.com/sony/gobreaker/v2"

	"github.com/keygate/keygate/keyring"
)

// Pair is a key a reload keeps: New in the set being built, Old in the set
// it replaces.
type Pair struct {
	New, Old *keyring.Key
}

// CarryFrom gives the keys of kept what they had in old: their own rest
// causes, their account (its rest and free-model block), what a 402 noted
// they can afford, failed trials and breaker state. A key whose breaker
// was open or half-open is tripped here: it stays out of rotation for the
// rest carried, then comes back through one trial call (half-open), not
// closed. Call it on a new set before it serves a call; old may go on
// serving the calls begun on it.
func (s *Set) CarryFrom(old *Set, kept []Pair) {
	if len(kept) == 0 {
		return
	}
	type carried struct {
		own    cause
		label  string
		acct   account
		free   int64
		open   bool
		strike int32
		// What a 402 "can only afford M" noted (NoteAfford).
		afford, affordUntil int64
		affordLarge         bool
	}
	got := make([]carried, len(kept))
	ob := old.book
	ob.mu.Lock()
	for i, p := range kept {
		slot := p.Old.Slot()
		c := carried{own: ob.own[slot], label: ob.acct[slot], free: ob.free[slot].Load(),
			afford: ob.afford[slot].Load(), affordUntil: ob.affordUntil[slot].Load(), affordLarge: ob.affordLarge[slot].Load()}
		if a := ob.accountOf(slot); a != nil {
			c.acct = *a
		}
		ob2 := old.For(p.Old)
		c.open = ob2.cb.State() != gobreaker.StateClosed
		c.strike = ob2.strikes.Load()
		got[i] = c
	}
	ob.mu.Unlock()

	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, p := range kept {
		c, slot := got[i], p.New.Slot()
		b.own[slot] = c.own
		b.acct[slot] = c.label
		b.free[slot].Store(c.free)
		if c.affordUntil != 0 {
			b.afford[slot].Store(c.afford)
			b.affordLarge[slot].Store(c.affordLarge)
			b.affordUntil[slot].Store(c.affordUntil)
			b.affordNotes.Store(true)
		}
		if c.label != "" {
			a := b.accts[c.label]
			if a == nil {
				a = &account{}
				b.accts[c.label] = a
			}
			a.rest.extend(c.acct.rest.until, c.acct.rest.reason, c.acct.rest.status)
			a.free = max(a.free, c.acct.free)
		}
		br := s.For(p.New)
		if c.open {
			if done, err := br.cb.Allow(); err == nil {
				done(errKeyFault)
			}
		}
		br.strikes.Store(c.strike)
	}
	b.regroup()
	for slot := range b.own {
		b.sync(s.pool.Ledger(), slot)
	}
	for i, p := range kept {
		if got[i].label == "" {
			// sync clears the free block of a key whose account is
			// unknown; its own is carried as it was.
			b.free[p.New.Slot()].Store(got[i].free)
		}
	}
}

// SetDisabled takes k out of rotation by hand (on) or ends that (off). The
// disable is a cause beside the automatic ones: while it holds the key
// never comes back by itself, and ending it leaves a rest still due in
// force.
func (s *Set) SetDisabled(k *keyring.Key, on bool) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	b.disabled[slot] = on
	b.sync(s.pool.Ledger(), slot)
}

// Disabled reports whether k is disabled by hand.
func (s *Set) Disabled(k *keyring.Key) bool {
	s.book.mu.Lock()
	defer s.book.mu.Unlock()
	return s.book.disabled[k.Slot()]
}
