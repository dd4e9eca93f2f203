// Package keyring holds the pool of upstream keys and the strategies that
// choose one for each call.
//
// Selection is on the hot path of every request: it reads per-key state from
// a Ledger (atomics in the default in-memory Ledger), holds no lock and
// allocates nothing.
package keyring

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/secret"
)

// ErrNoKeys is returned when a pool would be empty.
var ErrNoKeys = errors.New("keyring: no keys")

// Key is one upstream key of the pool.
type Key struct {
	// ID is the number the user gave the key (OPENROUTER_API_KEY_<ID>); it
	// names the key in logs, metrics and responses.
	ID int
	// Secret is the key itself; it only ever prints masked.
	Secret secret.Key
	// Label is ID in decimal, computed once for headers and metric labels.
	Label string
	slot  int
	// digest is the secret's SHA-256: what names the key across reloads,
	// whatever its id (Find).
	digest [32]byte
}

// Slot is the key's index in its pool, 0..Len()-1.
func (k *Key) Slot() int { return k.slot }

// Pool is a fixed set of keys and their live state.
type Pool struct {
	keys     []*Key
	byID     map[int]*Key
	bySecret map[[32]byte]*Key
	ledger   Ledger
	// next is the pool a reload put in force after this one (Forward):
	// the counts of calls on a key it kept move there.
	next atomic.Pointer[Pool]
	// mem is ledger when it is a MemoryLedger: strategies read its slices
	// directly, inlined loads instead of interface calls, which would be
	// most of a pick's cost.
	mem *MemoryLedger
}

// Entry is one key to put in a pool.
type Entry struct {
	ID     int
	Secret secret.Key
}

// New builds a pool from entries, in order. IDs must be unique and positive,
// secrets non-empty. A nil ledger means an in-memory one.
func New(entries []Entry, ledger Ledger) (*Pool, error) {
	if len(entries) == 0 {
		return nil, ErrNoKeys
	}
	if ledger == nil {
		ledger = NewMemoryLedger(len(entries))
	}
	p := &Pool{keys: make([]*Key, len(entries)), byID: make(map[int]*Key, len(entries)),
		bySecret: make(map[[32]byte]*Key, len(entries)), ledger: ledger}
	if m, ok := ledger.(*MemoryLedger); ok {
		if m.Len() < len(entries) {
			return nil, fmt.Errorf("keyring: ledger holds %d keys, pool has %d", m.Len(), len(entries))
		}
		p.mem = m
	}
	for i, e := range entries {
		if e.ID <= 0 {
			return nil, fmt.Errorf("keyring: key id %d: must be positive", e.ID)
		}
		if e.Secret.IsZero() {
			return nil, fmt.Errorf("keyring: key %d: empty", e.ID)
		}
		if _, dup := p.byID[e.ID]; dup {
			return nil, fmt.Errorf("keyring: key id %d: duplicate", e.ID)
		}
		k := &Key{ID: e.ID, Secret: e.Secret, Label: strconv.Itoa(e.ID), slot: i, digest: e.Secret.Digest()}
		p.keys[i] = k
		p.byID[e.ID] = k
		if _, dup := p.bySecret[k.digest]; !dup {
			p.bySecret[k.digest] = k
		}
	}
	return p, nil
}

// Keys returns the pool's keys in order. The slice must not be modified.
func (p *Pool) Keys() []*Key { return p.keys }

// Len is the number of keys.
func (p *Pool) Len() int { return len(p.keys) }

// ByID returns the key with the given id, or nil.
func (p *Pool) ByID(id int) *Key { return p.byID[id] }

// Find is k when k is a key of p, or else p's key with k's secret: the same
// key in another snapshot of the pool, whatever its id there (a reload that
// took a key out of a list renumbers the keys after it). Nil when p does not
// hold k's secret. A key of p costs a compare; another a map look-up.
func (p *Pool) Find(k *Key) *Key {
	if s := k.slot; s < len(p.keys) && p.keys[s] == k {
		return k
	}
	return p.bySecret[k.digest]
}

// Ledger returns the pool's per-key state store.
func (p *Pool) Ledger() Ledger { return p.ledger }

// Available reports whether k is in rotation at now (unix nanoseconds):
// its rest, if any, has ended.
func (p *Pool) Available(k *Key, now int64) bool {
	return p.restUntil(k.slot) <= now
}

func (p *Pool) restUntil(slot int) int64 {
	if p.mem != nil {
		return p.mem.rests[slot].Load()
	}
	return p.ledger.RestUntil(slot)
}

func (p *Pool) inFlight(slot int) int64 {
	if p.mem != nil {
		return p.mem.counts[slot].inFlight.Load()
	}
	return p.ledger.InFlight(slot)
}

func (p *Pool) used(slot int) uint64 {
	if p.mem != nil {
		return p.mem.counts[slot].used.Load()
	}
	return p.ledger.Used(slot)
}

// CountAvailable is the number of keys in rotation at now.
func (p *Pool) CountAvailable(now int64) int {
	n := 0
	for _, k := range p.keys {
		if p.Available(k, now) {
			n++
		}
	}
	return n
}

// NextAvailable is when the first resting key comes back; the zero time if
// a key is available now, or if none will come back by itself (every key
// out of rotation is disabled by hand: its rest is the end of time).
func (p *Pool) NextAvailable(now int64) time.Time {
	first := int64(0)
	for _, k := range p.keys {
		until := p.restUntil(k.slot)
		if until <= now {
			return time.Time{}
		}
		if until == math.MaxInt64 {
			continue
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

// AllDisabled reports whether every key is out of rotation with no end to
// it (disabled by hand): none will come back by itself.
func (p *Pool) AllDisabled() bool {
	for _, k := range p.keys {
		if p.restUntil(k.slot) != math.MaxInt64 {
			return false
		}
	}
	return len(p.keys) > 0
}

// Begin marks a call on k as started: one more in flight, one more use.
func (p *Pool) Begin(k *Key) {
	p.ledger.AddInFlight(k.slot, 1)
	p.ledger.AddUsed(k.slot)
	if p.next.Load() != nil {
		p.move(k)
	}
}

// End marks a call on k as finished.
func (p *Pool) End(k *Key) {
	p.ledger.AddInFlight(k.slot, -1)
	if p.next.Load() != nil {
		p.move(k)
	}
}

// Forward makes next, the pool a reload puts in force after p, the one
// that counts the calls on every key it keeps (by secret, whatever its id):
// the counts p holds move there, and so does each Begin and End of a call
// still on p, so that a kept key's calls in flight and calls made stay
// right across reloads (least-busy weighs the first). A key next does not
// hold keeps its counts in p. Call it once, before next serves a call.
// Both pools need a MemoryLedger; one shared by replicas names keys by id
// and needs no forwarding.
func (p *Pool) Forward(next *Pool) {
	if p.mem == nil || next.mem == nil || next == p {
		return
	}
	p.next.Store(next)
	for _, k := range p.keys {
		p.move(k)
	}
}

// move hands what p counts of k to the pool p forwards to, if it holds k.
// Each delta is added to p first and then taken by an atomic swap, by the
// call that added it or by Forward, whichever comes later: none is lost
// or moved twice.
func (p *Pool) move(k *Key) {
	next := p.next.Load()
	nk := next.Find(k)
	if nk == nil {
		return
	}
	c := &p.mem.counts[k.slot]
	n, u := c.inFlight.Swap(0), c.used.Swap(0)
	if n == 0 && u == 0 {
		return
	}
	nc := &next.mem.counts[nk.slot]
	nc.inFlight.Add(n)
	nc.used.Add(u)
	if next.next.Load() != nil {
		next.move(nk)
	}
}
