package keyring

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Strategy chooses a key for a call. Pick returns nil when no key is in
// rotation outside ex; it never falls back to an unavailable key.
type Strategy interface {
	// Name is the strategy's setting value: "random", "round-robin" or
	// "least-busy".
	Name() string
	// Pick chooses a key of p available at now (unix nanoseconds) and not
	// in ex.
	Pick(p *Pool, ex *Exclude, now int64) *Key
}

// Strategy names, as KEY_ROTATION spells them.
const (
	NameRandom     = "random"
	NameRoundRobin = "round-robin"
	NameLeastBusy  = "least-busy"
)

// Names lists the strategies, default first.
var Names = [...]string{NameRandom, NameRoundRobin, NameLeastBusy}

// IntN is a source of random integers in [0, n). Injected so that tests are
// deterministic; it must be safe for concurrent use.
type IntN func(n int) int

// ByName returns the strategy called name. A nil rnd uses math/rand/v2's
// concurrency-safe global source.
func ByName(name string, rnd IntN) (Strategy, error) {
	if rnd == nil {
		rnd = rand.IntN
	}
	switch name {
	case NameRandom:
		return Random{rnd: rnd}, nil
	case NameRoundRobin:
		return RoundRobin{}, nil
	case NameLeastBusy:
		return LeastBusy{}, nil
	}
	return nil, fmt.Errorf("keyring: unknown strategy %q (want random, round-robin or least-busy)", name)
}

// Random picks uniformly among the available keys: it counts them, draws one
// number and walks to that key. Two passes over the pool cost less than a
// draw per key (reservoir sampling), and nothing is allocated.
type Random struct{ rnd IntN }

// NewRandom returns a Random strategy drawing from rnd (nil: math/rand/v2).
func NewRandom(rnd IntN) Random {
	if rnd == nil {
		rnd = rand.IntN
	}
	return Random{rnd: rnd}
}

// Name implements Strategy.
func (Random) Name() string { return NameRandom }

// Pick implements Strategy.
func (r Random) Pick(p *Pool, ex *Exclude, now int64) *Key {
	set, n := p.open(ex, now)
	if n == 0 {
		return nil
	}
	return p.nthOpen(set, ex, now, r.rnd(n))
}

// RoundRobin takes the available keys in turn: the cursor, taken modulo the
// number of keys available, indexes them. A key out of rotation thus passes
// its turns to all the others, not only to the next one (which would get a
// double share, and after a 429 the next 429). The cursor lives in the
// pool's Ledger: one atomic add per pick, exact under concurrency. The
// price of exactness is that cores picking back to back pass the cursor's
// cache line between them, so unlike the other strategies a pick does not
// get cheaper with more cores (BENCHMARKS.md).
type RoundRobin struct{}

// Name implements Strategy.
func (RoundRobin) Name() string { return NameRoundRobin }

// Pick implements Strategy.
func (RoundRobin) Pick(p *Pool, ex *Exclude, now int64) *Key {
	set, n := p.open(ex, now)
	if n == 0 {
		return nil
	}
	return p.nthOpen(set, ex, now, int(p.ledger.Cursor()%uint64(n)))
}

// LeastBusy picks the key with the fewest calls in flight, then the fewest
// calls made; remaining ties go to the first in pool order.
type LeastBusy struct{}

// Name implements Strategy.
func (LeastBusy) Name() string { return NameLeastBusy }

// Pick implements Strategy.
func (LeastBusy) Pick(p *Pool, ex *Exclude, now int64) *Key {
	best := -1
	var bestIn int64
	var bestUsed uint64
	if mem := p.mem; mem != nil && len(p.keys) <= 64 {
		// The common case, written for the in-memory ledger: half the
		// cost of the general loop below.
		skip := uint64(0)
		if ex != nil {
			skip = ex.small
		}
		rests, counts := mem.rests[:len(p.keys)], mem.counts[:len(p.keys)]
		for slot := range rests {
			if skip&(1<<uint(slot)) != 0 || rests[slot].Load() > now {
				continue
			}
			c := &counts[slot]
			in, used := c.inFlight.Load(), c.used.Load()
			if best < 0 || in < bestIn || (in == bestIn && used < bestUsed) {
				best, bestIn, bestUsed = slot, in, used
			}
		}
		if best < 0 {
			return nil
		}
		return p.keys[best]
	}
	for slot := range p.keys {
		if ex.Has(slot) || p.restUntil(slot) > now {
			continue
		}
		in, used := p.inFlight(slot), p.used(slot)
		if best < 0 || in < bestIn || (in == bestIn && used < bestUsed) {
			best, bestIn, bestUsed = slot, in, used
		}
	}
	if best < 0 {
		return nil
	}
	return p.keys[best]
}

// open counts the keys a strategy may pick: in rotation at now and not in
// ex. For a pool of up to 64 keys it also returns their slots as a bit set,
// so that nthOpen need not look again. Loops go by slot (the pool index) and
// never load a *Key; the availability test is written out, not called,
// since a helper would be too large to inline.
func (p *Pool) open(ex *Exclude, now int64) (set uint64, n int) {
	if len(p.keys) <= 64 {
		if mem := p.mem; mem != nil {
			for slot := range mem.rests[:len(p.keys)] {
				if mem.rests[slot].Load() <= now {
					set |= 1 << uint(slot)
				}
			}
		} else {
			for slot := range p.keys {
				if p.ledger.RestUntil(slot) <= now {
					set |= 1 << uint(slot)
				}
			}
		}
		if ex != nil {
			set &^= ex.small
		}
		return set, bits.OnesCount64(set)
	}
	for slot := range p.keys {
		if !ex.Has(slot) && p.restUntil(slot) <= now {
			n++
		}
	}
	return 0, n
}

// nthOpen returns the key a strategy may pick with index i among those that
// open counted, in pool order; i < n. Over 64 keys it looks again, and keys
// may have left rotation since they were counted (a rest only grows): when
// fewer than i+1 remain it returns the last one still in, nil if none.
func (p *Pool) nthOpen(set uint64, ex *Exclude, now int64, i int) *Key {
	if len(p.keys) <= 64 {
		for ; i > 0; i-- {
			set &= set - 1
		}
		return p.keys[bits.TrailingZeros64(set)]
	}
	last := -1
	for slot := range p.keys {
		if ex.Has(slot) || p.restUntil(slot) > now {
			continue
		}
		last = slot
		if i == 0 {
			break
		}
		i--
	}
	if last < 0 {
		return nil
	}
	return p.keys[last]
}
