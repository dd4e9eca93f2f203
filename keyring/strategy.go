package keyring

import (
	"fmt"
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

// Random picks uniformly among the available keys, by reservoir sampling:
// one pass, no allocation.
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
	var chosen *Key
	seen := 0
	for _, k := range p.keys {
		if ex.Has(k.slot) || !p.Available(k, now) {
			continue
		}
		seen++
		if seen == 1 || r.rnd(seen) == 0 {
			chosen = k
		}
	}
	return chosen
}

// RoundRobin takes the keys in turn, skipping those out of rotation. The
// cursor lives in the pool's Ledger: one atomic add per pick, exact under
// concurrency.
type RoundRobin struct{}

// Name implements Strategy.
func (RoundRobin) Name() string { return NameRoundRobin }

// Pick implements Strategy.
func (RoundRobin) Pick(p *Pool, ex *Exclude, now int64) *Key {
	n := uint64(len(p.keys))
	start := p.ledger.Cursor()
	for i := uint64(0); i < n; i++ {
		k := p.keys[(start+i)%n]
		if !ex.Has(k.slot) && p.Available(k, now) {
			return k
		}
	}
	return nil
}

// LeastBusy picks the key with the fewest calls in flight, then the fewest
// calls made; remaining ties go to the first in pool order.
type LeastBusy struct{}

// Name implements Strategy.
func (LeastBusy) Name() string { return NameLeastBusy }

// Pick implements Strategy.
func (LeastBusy) Pick(p *Pool, ex *Exclude, now int64) *Key {
	var best *Key
	var bestIn int64
	var bestUsed uint64
	for _, k := range p.keys {
		if ex.Has(k.slot) || !p.Available(k, now) {
			continue
		}
		in, used := p.ledger.InFlight(k.slot), p.ledger.Used(k.slot)
		if best == nil || in < bestIn || (in == bestIn && used < bestUsed) {
			best, bestIn, bestUsed = k, in, used
		}
	}
	return best
}
