package budget

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/keygate/keygate/keyring"
)

// Share is how a Poller works with other replicas reading the same keys:
// it tells them what it reads and spends, and polls a key only while it
// holds that key's lease, so that the fleet reads each key about once per
// interval.
type Share interface {
	// Polled: k's figures were read; account is its label, and spent and
	// free what answers on k took while the poll was out (US dollars,
	// free-model requests of the account), which f does not hold.
	Polled(k *keyring.Key, account string, f *Figures, spent float64, free int)
	// Spent: an answer on k cost usd. Called on the hot path: it must
	// not block.
	Spent(k *keyring.Key, usd float64)
	// UsedFree: a free-model request was made on k, one fewer left to its
	// account today. Called on the hot path: it must not block.
	UsedFree(k *keyring.Key)
	// Lease reports whether this replica polls k now (for ttl); true when
	// it cannot tell.
	Lease(k *keyring.Key, ttl time.Duration) bool
}

// scheduled polls k on its schedule: like start, but only if the Share
// gives this replica the key's lease; otherwise the key's next turn comes
// an interval later (another replica's poll reaches this one through the
// Share meanwhile).
func (p *Poller) scheduled(k *keyring.Key) {
	if p.o.Share == nil {
		p.start(k)
		return
	}
	s := &p.slots[k.Slot()]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !s.polling.CompareAndSwap(false, true) {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// The lease lasts less than the shortest jittered interval, so
		// that its holder gets it again on its next turn.
		if s.pending.Load() == nil && !p.o.Share.Lease(k, p.o.Interval*3/4) {
			s.next.Store(p.nextTurn(p.o.Now()))
			// A fault that came to be confirmed while the lease was
			// asked has its poll now.
			p.polled(k)
			return
		}
		f, c, err := p.poll(p.ctx, k)
		p.settle(k, f, c, err)
		p.polled(k)
	}()
}

// nextTurn is a poll time one jittered interval after now (unix ns).
func (p *Poller) nextTurn(now time.Time) int64 {
	jitter := 0.8 + 0.4*rand.Float64()
	return now.Add(time.Duration(float64(p.o.Interval) * jitter)).UnixNano()
}

// due is the time of a key's next periodic poll after one at now whose
// figures are f (nil when unknown): nextTurn, or a few seconds after f's
// cap or free quota renews if that comes first, so that the new period's
// figures are read rather than assumed for an interval.
func (p *Poller) due(now time.Time, f *Figures) int64 {
	next := p.nextTurn(now)
	if f == nil {
		return next
	}
	if r := renewal(f); r.After(now) && r.UnixNano() < next {
		// Keys renew at the same boundary: their polls spread over 5 s.
		return r.Add(time.Duration(rand.Int64N(int64(5 * time.Second)))).UnixNano()
	}
	return next
}

// ApplyFigures takes k's figures as another replica polled them, unless
// this replica's are newer, with spent and free the fleet's spend on k and
// free-model requests of its account that they do not hold (since that
// poll was sent). The Share is not told again; k's next poll moves an
// interval on, as if this replica had polled.
func (p *Poller) ApplyFigures(k *keyring.Key, f *Figures, spent float64, free int) {
	s := &p.slots[k.Slot()]
	cur := s.figures.Load()
	if cur != nil && cur.CheckedAt.UnixMilli() > f.CheckedAt.UnixMilli() {
		return
	}
	if cur == nil || cur.CheckedAt.UnixMilli() < f.CheckedAt.UnixMilli() {
		s.freeUsed.Store(int64(max(0, free)))
		s.figures.Store(f)
		if p.o.Interval > 0 && !p.unsupported.Load() {
			s.next.Store(p.due(f.CheckedAt, f))
		}
	}
	if spent >= 0 && !math.IsNaN(spent) && !math.IsInf(spent, 0) {
		s.spent.Store(math.Float64bits(spent))
	}
	// The gauges follow the shared figures as they follow this replica's
	// polls: the dashboard takes their max over the replicas.
	if f := s.figures.Load(); f != nil && p.o.Observer != nil {
		p.gauge(k, s, f, string(p.set.Account(k)), p.o.Now())
	}
}

// ApplySpend takes usd that another replica spent on k off its figures,
// and rests k if its cap is spent now.
func (p *Poller) ApplySpend(k *keyring.Key, usd float64) {
	if usd <= 0 || math.IsNaN(usd) || math.IsInf(usd, 0) {
		return
	}
	s := &p.slots[k.Slot()]
	for {
		old := s.spent.Load()
		if s.spent.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+usd)) {
			break
		}
	}
	if f := s.figures.Load(); f != nil {
		left, ok := remaining(f, s, time.Time{})
		if ok && left <= 0 {
			now := p.o.Now()
			if left, _ = remaining(f, s, now); left <= 0 {
				p.apply(k, f, now, false)
			}
		}
		if ok && p.o.Observer != nil {
			p.o.Observer.Remaining(k, left, true)
		}
	}
}

// ApplyFreeUse counts n free-model requests that another replica made on
// k against k's account, and blocks the account's free-model calls when
// none are left, as UseFree does. The Share is not told again.
func (p *Poller) ApplyFreeUse(k *keyring.Key, n int) {
	if n > 0 {
		p.useFree(k, int64(n), false)
	}
}

// MarshalFigures is f as other replicas read it with UnmarshalFigures; the
// account id is not in it.
func MarshalFigures(f *Figures) ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("budget: encoding figures: %w", err)
	}
	return b, nil
}

// UnmarshalFigures reads figures written by MarshalFigures, polled at at.
func UnmarshalFigures(b []byte, at time.Time) (*Figures, error) {
	var f Figures
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("budget: reading shared figures: %w", err)
	}
	f.Limit, f.LimitRemaining = finite(f.Limit), finite(f.LimitRemaining)
	if f.Limit == nil {
		f.LimitRemaining = nil
	}
	if f.FreeRemaining != nil && *f.FreeRemaining < 0 {
		f.FreeRemaining = nil
	}
	f.CheckedAt = at
	return &f, nil
}
