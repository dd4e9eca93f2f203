package gateway

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// keyStats are one key's counts for /keys and the status page: failed
// answers by status ("error" for no answer), apart by whose fault they
// were (the key's or its account's in by, anybody else's in other), the
// same by fault class, and the mean time to response headers.
type keyStats struct {
	mu    sync.Mutex
	by    map[string]uint64
	other map[string]uint64
	class map[string]uint64
	// mean is an exponentially weighted mean of upstream durations in
	// nanoseconds (float64 bits), updated lock-free on every answer.
	mean atomic.Uint64
}

func newKeyStats() *keyStats {
	return &keyStats{by: map[string]uint64{}, other: map[string]uint64{}, class: map[string]uint64{}}
}

func (s *keyStats) count(label string, keys bool, class string) {
	s.mu.Lock()
	if keys {
		s.by[label]++
	} else {
		s.other[label]++
	}
	s.class[class]++
	s.mu.Unlock()
}

// latencyWeight is the weight of the newest duration in the mean: about the
// last ten answers count.
const latencyWeight = 0.1

func (s *keyStats) latency(d time.Duration) {
	v := float64(d)
	for {
		old := s.mean.Load()
		next := v
		if old != 0 {
			m := math.Float64frombits(old)
			next = m + latencyWeight*(v-m)
		}
		if next == 0 {
			next = 1 // 0 means no answer yet
		}
		if s.mean.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// Latency is the mean time to response headers; 0 before the first answer.
func (s *keyStats) Latency() time.Duration {
	return time.Duration(math.Float64frombits(s.mean.Load()))
}

// classes is a copy of the failures by fault class.
func (s *keyStats) classes() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.class))
	for c, n := range s.class {
		out[c] = n
	}
	return out
}

// failureClass names whose fault a failed answer was, for the status page.
func failureClass(v fault.Verdict) string {
	if v.Spared {
		// The key's by its answer, but nothing rested: shown apart, as
		// /keys counts it among the other errors.
		return "spared"
	}
	switch v.Scope {
	case fault.Key:
		return "key"
	case fault.Account:
		return "account"
	case fault.Request:
		return "request"
	case fault.Upstream:
		return "upstream"
	}
	return "other"
}

// statsTable maps a pool's keys to their stats, by slot. keys is nil while
// the observer is not bound to a pool (NewObserver's n slots).
type statsTable struct {
	pool  *keyring.Pool
	stats []*keyStats
}

// Follow binds the observer's counts to pool: a key of the previous pool
// with the same secret keeps its counts, under its id or a new one; a new
// key starts at zero;
// a removed key's counts are dropped, and calls still in flight on it
// count nowhere.
func (o *Observer) Follow(pool *keyring.Pool) {
	prev := o.stats.Load()
	t := &statsTable{pool: pool, stats: make([]*keyStats, pool.Len())}
	for _, k := range pool.Keys() {
		var st *keyStats
		if prev.pool != nil {
			if pk := prev.pool.Find(k); pk != nil {
				st = prev.stats[pk.Slot()]
			}
		} else if k.Slot() < len(prev.stats) {
			st = prev.stats[k.Slot()]
		}
		if st == nil {
			st = newKeyStats()
		}
		t.stats[k.Slot()] = st
	}
	o.stats.Store(t)
}

// of is k's stats, nil for a key no longer in the pool. A key of an older
// snapshot that the pool kept counts on: it is the same key.
func (o *Observer) of(k *keyring.Key) *keyStats {
	t := o.stats.Load()
	slot := k.Slot()
	if t.pool == nil {
		if slot < len(t.stats) {
			return t.stats[slot]
		}
		return nil
	}
	if nk := t.pool.Find(k); nk != nil {
		return t.stats[nk.Slot()]
	}
	return nil
}

// Stats are what the status page shows of k's calls: failures by class and
// mean latency.
func (o *Observer) Stats(k *keyring.Key) (classes map[string]uint64, latency time.Duration) {
	st := o.of(k)
	if st == nil {
		return map[string]uint64{}, 0
	}
	return st.classes(), st.Latency()
}
