package budget

import (
	"context"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
)

// TestCarryFrom: a kept key's figures, spend and free requests used go into
// the new poller, and its Run does not poll a carried key again before its
// turn, but polls a new one at once.
func TestCarryFrom(t *testing.T) {
	noLeaks(t)
	p, set, pool, u, clock := newPoller(t, 2)
	k := pool.Keys()[0]
	u.set(1, 0, `{"data":{"limit":5,"limit_remaining":4,"usage":1,"creator_user_id":"u1","free_model_daily_requests":{"used":5,"limit":50,"remaining":45}}}`)
	u.set(2, 0, `{"data":{"limit":null,"usage":0}}`)
	if _, err := p.Check(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	p.Spend(k, "m", 0.5)
	p.UseFree(k)
	p.slots[k.Slot()].next.Store(clock().Add(time.Hour).UnixNano())

	// The new pool has key 1 and key 2 in other slots.
	np, err := keyring.New([]keyring.Entry{{ID: 2, Secret: pool.Keys()[1].Secret}, {ID: 1, Secret: k.Secret}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := breaker.NewSet(np, breaker.Settings{Now: clock})
	kept := []breaker.Pair{{New: np.ByID(1), Old: k}}
	ns.CarryFrom(set, kept)
	q := New(np, ns, p.o)
	q.o.Interval = time.Hour
	q.CarryFrom(p, kept)
	v := q.View(np.ByID(1))
	if v == nil || *v.LimitRemaining != 3.5 || *v.FreeRequestsRemaining != 44 || v.Usage != 1.5 {
		t.Fatalf("carried view %+v", v)
	}
	if q.View(np.ByID(2)) != nil {
		t.Fatal("a key not kept has a budget")
	}
	before := u.polls.Load()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for q.View(np.ByID(2)) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the new key was not polled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := u.polls.Load() - before; n != 1 {
		t.Errorf("Run polled %d times, want once (the new key only)", n)
	}
}
