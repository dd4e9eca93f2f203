package breaker

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// cause is one reason a key rests: its own fault, or its account's.
type cause struct {
	until  int64 // unix ns; 0 when none
	reason fault.Reason
	status int
}

func (c *cause) extend(until int64, r fault.Reason, status int) {
	if until > c.until {
		*c = cause{until: until, reason: r, status: status}
	}
}

// account is what keygate knows of one upstream account: the rest of all its
// keys and the end of a block on its free-model calls.
type account struct {
	rest cause
	free int64 // unix ns; free-model calls blocked until then
}

// book keeps why each key rests, apart by cause, so that a fact learned
// later (a budget poll shows credit, an operator enables a key) lifts one
// cause and not the others. The effective deadline, the latest cause, goes
// into the pool's ledger, which is all a pick reads. The book is written on
// faults and polls only, never on a successful call, so a mutex is fine.
type book struct {
	mu    sync.Mutex
	own   []cause  // by slot: the key's own faults
	acct  []string // by slot: the account label; "" while unknown
	accts map[string]*account
	// group is each slot's account as a number, the lowest slot of its
	// account, so that siblings are found without the lock.
	group []atomic.Int32
	// free is each slot's free-model block, copied from its account.
	free []atomic.Int64
	// afford is the tokens each slot was last said to afford, until
	// affordUntil (unix ns); affordNotes: some slot ever had a note.
	// affordLarge marks a note that binds large requests only.
	afford      []atomic.Int64
	affordUntil []atomic.Int64
	affordLarge []atomic.Bool
	affordNotes atomic.Bool
	// disabled marks the slots an operator took out of rotation: a cause
	// of its own that never ends by itself, beside the automatic ones.
	disabled []bool
}

func newBook(n int) *book {
	b := &book{own: make([]cause, n), acct: make([]string, n), accts: map[string]*account{},
		group: make([]atomic.Int32, n), free: make([]atomic.Int64, n), disabled: make([]bool, n),
		afford: make([]atomic.Int64, n), affordUntil: make([]atomic.Int64, n), affordLarge: make([]atomic.Bool, n)}
	for i := range b.group {
		b.group[i].Store(int32(i))
	}
	return b
}

// AccountLabel is the short digest that names an account in /keys, logs,
// metrics and Redis: the account id itself never leaves keygate.
func AccountLabel(id string) string {
	sum := sha256.Sum256([]byte("keygate account\x00" + id))
	return hex.EncodeToString(sum[:4])
}

// accountOf returns slot's account, nil while unknown. Call with mu held.
func (b *book) accountOf(slot int) *account {
	if b.acct[slot] == "" {
		return nil
	}
	return b.accts[b.acct[slot]]
}

// effective is slot's deadline: the latest of its causes. Call with mu held.
func (b *book) effective(slot int) cause {
	c := b.own[slot]
	if a := b.accountOf(slot); a != nil && a.rest.until > c.until {
		c = a.rest
	}
	return c
}

// sync writes slot's effective deadline to the ledger, the end of time while
// the key is disabled. Call with mu held.
func (b *book) sync(l keyring.Ledger, slot int) {
	until := b.effective(slot).until
	if b.disabled[slot] {
		until = math.MaxInt64
	}
	l.SetRest(slot, until)
	// A key whose account is not known yet keeps its own free-model
	// block (BlockFree), which join carries into the account once known.
	if a := b.accountOf(slot); a != nil {
		b.free[slot].Store(a.free)
	}
}

// join puts slot in the account with label, and carries a free-model block
// the slot learned while its account was unknown into the account, whose
// other keys are blocked as long. It reports whether that made the
// account's block longer. Call with mu held.
func (b *book) join(slot int, label string) (a *account, longer bool) {
	prev := b.acct[slot]
	b.acct[slot] = label
	a = b.account(label)
	if f := b.free[slot].Load(); prev == "" && f > a.free {
		a.free, longer = f, true
		b.members(label, func(m int) { b.free[m].Store(f) })
	}
	return a, longer
}

// members calls f for every slot of label's account. Call with mu held.
func (b *book) members(label string, f func(slot int)) {
	for s, l := range b.acct {
		if l == label {
			f(s)
		}
	}
}

// SetAccount records that k belongs to the account with id (from its budget
// answer's creator_user_id, or an error body's user_id). It returns the
// account's label.
func (s *Set) SetAccount(k *keyring.Key, id string) string {
	if id == "" {
		return ""
	}
	label := AccountLabel(id)
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	if b.acct[slot] == label {
		return label
	}
	a, longer := b.join(slot, label)
	b.regroup()
	b.sync(s.pool.Ledger(), slot)
	s.tell(Fact{Kind: AccountKnown, Key: k, Account: label})
	if longer {
		s.tell(Fact{Kind: FreeBlocked, Account: label, Reason: fault.FreeQuota, Until: time.Unix(0, a.free)})
	}
	return label
}

// regroup sets every slot's group to the lowest slot of its account. Call
// with mu held.
func (b *book) regroup() {
	first := map[string]int32{}
	for i, l := range b.acct {
		g := int32(i)
		if l != "" {
			if f, ok := first[l]; ok {
				g = f
			} else {
				first[l] = g
			}
		}
		b.group[i].Store(g)
	}
}

// Account is k's account label, "" while unknown (the key is then an
// account of its own).
func (s *Set) Account(k *keyring.Key) string {
	s.book.mu.Lock()
	defer s.book.mu.Unlock()
	return s.book.acct[k.Slot()]
}

// Siblings adds to ex every key of k's account, k included.
func (s *Set) Siblings(k *keyring.Key, ex *keyring.Exclude) {
	s.siblings(k, ex.Add)
}

// SiblingSlots appends to dst the slot of every key of k's account, k's
// included (k's alone while its account is unknown).
func (s *Set) SiblingSlots(k *keyring.Key, dst []int) []int {
	s.siblings(k, func(slot int) { dst = append(dst, slot) })
	return dst
}

// siblings calls f with the slot of every key of k's account, k's included.
func (s *Set) siblings(k *keyring.Key, f func(slot int)) {
	g := s.book.group[k.Slot()].Load()
	for i := range s.book.group {
		if s.book.group[i].Load() == g {
			f(i)
		}
	}
}

// FreeBlocked adds to ex every key whose account may not take a free-model
// call at now (unix ns): its free requests for the day are used up.
func (s *Set) FreeBlocked(ex *keyring.Exclude, now int64) {
	for i := range s.book.free {
		if s.book.free[i].Load() > now {
			ex.Add(i)
		}
	}
}

// RestKey rests k alone until until for r (later deadline wins) and returns
// the deadline in force.
func (s *Set) RestKey(k *keyring.Key, r fault.Reason, status int, until time.Time) time.Time {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	if b.own[slot].until < until.UnixNano() {
		s.tell(Fact{Kind: KeyRested, Key: k, Reason: r, Status: status, Until: until})
	}
	b.own[slot].extend(until.UnixNano(), r, status)
	b.sync(s.pool.Ledger(), slot)
	return time.Unix(0, b.effective(slot).until)
}

// RestAccount rests every key of k's account until until for r, or k alone
// while its account is unknown. It returns the keys now resting for it.
func (s *Set) RestAccount(k *keyring.Key, r fault.Reason, status int, until time.Time) []*keyring.Key {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	a := b.accountOf(slot)
	if a == nil {
		if b.own[slot].until < until.UnixNano() {
			s.tell(Fact{Kind: KeyRested, Key: k, Reason: r, Status: status, Until: until})
		}
		b.own[slot].extend(until.UnixNano(), r, status)
		b.sync(s.pool.Ledger(), slot)
		return []*keyring.Key{k}
	}
	if a.rest.until < until.UnixNano() {
		s.tell(Fact{Kind: AccountRested, Account: b.acct[slot], Reason: r, Status: status, Until: until})
	}
	a.rest.extend(until.UnixNano(), r, status)
	var rested []*keyring.Key
	b.members(b.acct[slot], func(m int) {
		b.sync(s.pool.Ledger(), m)
		rested = append(rested, s.pool.Keys()[m])
	})
	return rested
}

// BlockFree keeps free-model calls off k's account until until (its free
// requests for the day are used up); paid calls go on.
func (s *Set) BlockFree(k *keyring.Key, until time.Time) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	a := b.accountOf(slot)
	if a == nil {
		b.free[slot].Store(max(b.free[slot].Load(), until.UnixNano()))
		return
	}
	if a.free < until.UnixNano() {
		s.tell(Fact{Kind: FreeBlocked, Account: b.acct[slot], Reason: fault.FreeQuota, Until: until})
	}
	a.free = max(a.free, until.UnixNano())
	b.members(b.acct[slot], func(m int) { b.free[m].Store(a.free) })
}

// UnblockFree lifts a free-model block of k's account that ends at or
// after from: a budget poll shows free requests left for the day, which
// ends a day's block (from: about the next UTC midnight), not a
// per-minute one, which the day's figures do not show.
func (s *Set) UnblockFree(k *keyring.Key, from time.Time) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	if a := b.accountOf(slot); a != nil {
		if a.free < from.UnixNano() {
			return
		}
		if a.free > s.settings.Now().UnixNano() {
			s.tell(Fact{Kind: AccountBack, Account: b.acct[slot], Reason: fault.FreeQuota, Until: time.Unix(0, a.free)})
		}
		a.free = 0
		b.members(b.acct[slot], func(m int) { b.free[m].Store(0) })
		return
	}
	if b.free[slot].Load() >= from.UnixNano() {
		b.free[slot].Store(0)
	}
}

// Lift ends k's rests for any of reasons, its own and its account's: a fact
// learned later says they no longer hold. Other causes stay.
func (s *Set) Lift(k *keyring.Key, reasons ...fault.Reason) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	slot := k.Slot()
	has := func(r fault.Reason) bool {
		for _, x := range reasons {
			if x == r {
				return true
			}
		}
		return false
	}
	now := s.settings.Now().UnixNano()
	if has(b.own[slot].reason) {
		if b.own[slot].until > now {
			s.tell(Fact{Kind: KeyBack, Key: k, Until: time.Unix(0, b.own[slot].until)})
		}
		b.own[slot] = cause{}
	}
	if a := b.accountOf(slot); a != nil && has(a.rest.reason) {
		if a.rest.until > now {
			s.tell(Fact{Kind: AccountBack, Account: b.acct[slot], Until: time.Unix(0, a.rest.until)})
		}
		a.rest = cause{}
		b.members(b.acct[slot], func(m int) { b.sync(s.pool.Ledger(), m) })
		return
	}
	b.sync(s.pool.Ledger(), slot)
}

// Rest says why k rests and until when, by its automatic causes; a zero
// until means it does not. A manual disable is apart: see Disabled.
func (s *Set) Rest(k *keyring.Key) (r fault.Reason, status int, until time.Time) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	return s.inForce(b.effective(k.Slot()))
}

// AccountRest is the rest in force of k's account, or k's own while its
// account is unknown (what RestAccount would extend): its reason and end;
// fault.NoReason and zero when there is none.
func (s *Set) AccountRest(k *keyring.Key) (fault.Reason, time.Time) {
	b := s.book
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.own[k.Slot()]
	if a := b.accountOf(k.Slot()); a != nil {
		c = a.rest
	}
	r, _, until := s.inForce(c)
	return r, until
}

// inForce is c's reason, status and end while it has not ended;
// fault.NoReason, 0 and zero once it has.
func (s *Set) inForce(c cause) (fault.Reason, int, time.Time) {
	if c.until <= s.settings.Now().UnixNano() {
		return fault.NoReason, 0, time.Time{}
	}
	return c.reason, c.status, time.Unix(0, c.until)
}

// FreeBlockedUntil is when k's account may take free-model calls again;
// zero when it may now.
func (s *Set) FreeBlockedUntil(k *keyring.Key) time.Time {
	if f := s.book.free[k.Slot()].Load(); f > s.settings.Now().UnixNano() {
		return time.Unix(0, f)
	}
	return time.Time{}
}

// NextFreeAvailable is when the first key may take a free-model call again
// after now (unix ns): the later of its rest and its account's free block,
// earliest over the pool. Zero when one may now.
func (s *Set) NextFreeAvailable(now int64) time.Time {
	first := int64(0)
	l := s.pool.Ledger()
	for i := range s.book.free {
		until := max(l.RestUntil(i), s.book.free[i].Load())
		if until <= now {
			return time.Time{}
		}
		if until == math.MaxInt64 {
			continue // disabled by hand: never back by itself
		}
		if first == 0 || until < first {
			first = until
		}
	}
	if first == 0 {
		return time.Time{}
	}
	return time.Unix(0, first)
}

// NoteAfford records that k's account (or, with onKey, k's own cap) can
// afford about m tokens of a request until until: upstream said so in a 402
// "can only afford m". Calls that may ask for more (SkipUnaffordable) go to
// other keys meanwhile, instead of being refused there first. With large,
// the 402 is about the request's prompt (fault.Verdict.Large): the note
// binds large requests only, and smaller ones still go to k.
func (s *Set) NoteAfford(k *keyring.Key, m int, onKey, large bool, until time.Time) {
	var ex keyring.Exclude
	if onKey {
		ex.Add(k.Slot())
	} else {
		s.Siblings(k, &ex)
	}
	for i := range s.book.afford {
		if ex.Has(i) {
			s.book.afford[i].Store(int64(m))
			s.book.affordLarge[i].Store(large)
			s.book.affordUntil[i].Store(until.UnixNano())
		}
	}
	s.book.affordNotes.Store(true)
}

// AffordNoted reports whether any key has a note of what it can afford, so
// that callers read a request's max_tokens only then.
func (s *Set) AffordNoted() bool { return s.book.affordNotes.Load() }

// unsaidMaxTokens is what a request without max_tokens is taken to ask for:
// OpenRouter checks it against the model's default output limit, which is
// tens of thousands of tokens (65,536 often, more for a few models). Taken
// as more than any note, one call's "can only afford 8000000" (an absurd
// max_tokens) would keep every such call off a rich account for minutes.
const unsaidMaxTokens = 1 << 18

// SkipUnaffordable adds to ex every key noted at now (unix ns) as unable to
// afford a request of maxTokens (0: not said, unsaidMaxTokens); a note that
// binds large requests only (about their prompt, whatever max_tokens), for
// a large one.
func (s *Set) SkipUnaffordable(ex *keyring.Exclude, maxTokens int, large bool, now int64) {
	if maxTokens <= 0 {
		maxTokens = unsaidMaxTokens
	}
	for i := range s.book.afford {
		if s.book.affordUntil[i].Load() <= now {
			continue
		}
		if s.book.affordLarge[i].Load() {
			if large {
				ex.Add(i)
			}
			continue
		}
		if m := s.book.afford[i].Load(); int64(maxTokens) > m {
			ex.Add(i)
		}
	}
}
