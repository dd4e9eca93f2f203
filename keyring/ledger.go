package keyring

import (
	"sync/atomic"
)

// Ledger stores each key's live state: its rest deadline, calls in flight,
// calls made, and the round-robin cursor. Keys are addressed by slot (their
// index in the pool). MemoryLedger is the default; a shared implementation
// (Redis, say) lets several gateway replicas agree on cooldowns, rotation and
// usage without touching strategies or handlers.
//
// Every method is called on the hot path and must be safe for concurrent use.
type Ledger interface {
	// RestUntil is the end of the key's rest in unix nanoseconds; a value
	// not after now means the key is in rotation.
	RestUntil(slot int) int64
	// ExtendRest moves the rest deadline to until unless a later one is
	// already set (a new failure never shortens a rest), and returns the
	// deadline in force.
	ExtendRest(slot int, until int64) int64
	// InFlight is the number of calls on the key now.
	InFlight(slot int) int64
	// AddInFlight adds delta to the calls in flight.
	AddInFlight(slot int, delta int64)
	// Used is the number of calls ever started on the key.
	Used(slot int) uint64
	// AddUsed counts one more call on the key.
	AddUsed(slot int)
	// Cursor returns the round-robin position and advances it by one.
	Cursor() uint64
}

// MemoryLedger is a Ledger in process memory, lock-free.
type MemoryLedger struct {
	slots  []ledgerSlot
	cursor paddedUint64
}

// ledgerSlot is padded to a cache line so that keys busy on different cores
// do not contend on one line.
type ledgerSlot struct {
	restUntil atomic.Int64
	inFlight  atomic.Int64
	used      atomic.Uint64
	_         [40]byte
}

type paddedUint64 struct {
	_ [64]byte
	v atomic.Uint64
	_ [56]byte
}

// NewMemoryLedger returns a ledger for n keys.
func NewMemoryLedger(n int) *MemoryLedger {
	return &MemoryLedger{slots: make([]ledgerSlot, n)}
}

// RestUntil implements Ledger.
func (l *MemoryLedger) RestUntil(slot int) int64 { return l.slots[slot].restUntil.Load() }

// ExtendRest implements Ledger.
func (l *MemoryLedger) ExtendRest(slot int, until int64) int64 {
	s := &l.slots[slot].restUntil
	for {
		cur := s.Load()
		if cur >= until {
			return cur
		}
		if s.CompareAndSwap(cur, until) {
			return until
		}
	}
}

// InFlight implements Ledger.
func (l *MemoryLedger) InFlight(slot int) int64 { return l.slots[slot].inFlight.Load() }

// AddInFlight implements Ledger.
func (l *MemoryLedger) AddInFlight(slot int, delta int64) { l.slots[slot].inFlight.Add(delta) }

// Used implements Ledger.
func (l *MemoryLedger) Used(slot int) uint64 { return l.slots[slot].used.Load() }

// AddUsed implements Ledger.
func (l *MemoryLedger) AddUsed(slot int) { l.slots[slot].used.Add(1) }

// Cursor implements Ledger.
func (l *MemoryLedger) Cursor() uint64 { return l.cursor.v.Add(1) - 1 }
