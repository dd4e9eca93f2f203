package budget

import (
	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
)

// CarryFrom gives the keys of kept their budget in old: the last figures,
// the spend and free requests taken off since, and the time of the next
// poll, so that a reload neither forgets a key's budget nor polls every
// kept key again at once; a fault of a kept key held for confirmation is
// moved here and its GET /key asked again. Call it before Run; old's polls
// still out settle into old.
func (p *Poller) CarryFrom(old *Poller, kept []breaker.Pair) {
	if old.unsupported.Load() {
		p.unsupported.Store(true)
	}
	for _, k := range kept {
		from, to := &old.slots[k.Old.Slot()], &p.slots[k.New.Slot()]
		to.figures.Store(from.figures.Load())
		to.spent.Store(from.spent.Load())
		to.freeUsed.Store(from.freeUsed.Load())
		to.next.Store(from.next.Load())
		if v := from.pending.Swap(nil); v != nil {
			// A fault held for its GET /key when the reload came is
			// settled here, for the key in the new pool: the old
			// poller's poll, stopped with it, would settle it in the
			// old pool, which no call picks from.
			to.pending.Store(v)
			p.spawn(k.New)
		}
	}
}

// Pool is the pool the poller keeps budgets for.
func (p *Poller) Pool() *keyring.Pool { return p.pool }
