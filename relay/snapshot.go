package relay

import (
	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
)

// setPool fills a snapshot's pool-bound fields.
func (r *Relay) setPool(pool *keyring.Pool, breakers *breaker.Set, confirm Confirmer) {
	r.pool, r.breakers, r.confirm = pool, breakers, confirm
	r.limiter = newRestLimiter(r.restShare, r.restWindow, pool.Len())
	r.keyHeader = make([][]string, pool.Len())
	for _, k := range pool.Keys() {
		r.keyHeader[k.Slot()] = []string{k.Label}
	}
}

// Swap puts a new pool in force, with its breakers and confirmer (nil: none),
// and returns the snapshot it replaces. Calls begun on that one finish on
// it: their outcomes reach its pool and breakers only. The bound on rests
// per client starts afresh.
func (r *Relay) Swap(pool *keyring.Pool, breakers *breaker.Set, confirm Confirmer) *Relay {
	old := r.live.Load()
	next := &Relay{live: r.live, pinned: true, restShare: old.restShare, restWindow: old.restWindow,
		transport: old.transport, watch: old.watch, obs: old.obs, confirmHold: old.confirmHold, hold: old.hold}
	next.setPool(pool, breakers, confirm)
	return r.live.Swap(next)
}

// Snapshot is the snapshot in force: a Relay pinned to the pool in force now, for a
// request that makes several calls (POST /run) and must make them all on
// one pool.
func (r *Relay) Snapshot() *Relay { return r.live.Load() }

// cur is the snapshot r's methods act on.
func (r *Relay) cur() *Relay {
	if r.pinned {
		return r
	}
	return r.live.Load()
}

// Pool is the key pool in force (a snapshot's own).
func (r *Relay) Pool() *keyring.Pool { return r.cur().pool }

// Breakers are the per-key breakers of the pool in force.
func (r *Relay) Breakers() *breaker.Set { return r.cur().breakers }
