package share

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// bus is a cluster.Store that hands every event straight to the peer
// replica's adapter, and records what was published and asked.
type bus struct {
	mu        sync.Mutex
	peer      *Adapter
	published []cluster.Event
	asked     []string
	reply     bool
}

func (b *bus) Publish(ev cluster.Event) {
	b.mu.Lock()
	b.published = append(b.published, ev)
	peer := b.peer
	b.mu.Unlock()
	if peer != nil {
		peer.Apply(ev)
	}
}

func (b *bus) TryTrial(_ context.Context, k cluster.KeyRef, until time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked = append(b.asked, "trial:"+string(k)+":"+fmt.Sprint(until.UnixMilli()))
	return b.reply
}

func (b *bus) TryLease(_ context.Context, name string, _ time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked = append(b.asked, "lease:"+name)
	return b.reply
}

func (b *bus) Run(ctx context.Context, _ func(cluster.Event)) error { <-ctx.Done(); return nil }
func (b *bus) Up() bool                                             { return true }
func (b *bus) Close() error                                         { return nil }

func (b *bus) took() []cluster.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.published
	b.published = nil
	return got
}

// side is one replica: its pool, breakers, poller and adapter.
type side struct {
	pool   *keyring.Pool
	set    *breaker.Set
	poller *budget.Poller
	ad     *Adapter
	bus    *bus
}

var start = time.Unix(1_800_000_000, 0)

func newSide(t testing.TB, b *bus, ad *Adapter) *side {
	t.Helper()
	entries := make([]keyring.Entry, 3)
	for i := range entries {
		entries[i] = keyring.Entry{ID: i + 1, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", i))}
	}
	return newSideOf(t, b, ad, entries)
}

// newSideOf is newSide with a pool of entries.
func newSideOf(t testing.TB, b *bus, ad *Adapter, entries []keyring.Entry) *side {
	t.Helper()
	pool, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return start }
	set := breaker.NewSet(pool, breaker.Settings{Now: now, Sink: ad, Trials: ad})
	poller := budget.New(pool, set, budget.Options{Now: now, Share: ad})
	ad.Attach(set, poller, pool.Keys())
	return &side{pool: pool, set: set, poller: poller, ad: ad, bus: b}
}

// pair is two replicas whose adapters hear each other.
func pair(t *testing.T) (a, b *side) {
	ba, bb := &bus{reply: true}, &bus{reply: true}
	a, b = newSide(t, ba, New(ba, nil)), newSide(t, bb, New(bb, nil))
	ba.peer, bb.peer = b.ad, a.ad
	return a, b
}

func TestFactsReachTheOtherReplica(t *testing.T) {
	a, b := pair(t)
	ka, kb := a.pool.Keys(), b.pool.Keys()
	label := breaker.AccountLabel("user_A")
	limit, left, free := 10.0, 4.0, 7
	fig := &budget.Figures{Limit: &limit, LimitRemaining: &left, FreeRemaining: &free, CheckedAt: start}
	ns := start.UnixNano()
	cases := []struct {
		name  string
		do    func()
		check func() error
	}{
		{"budget figures and the account", func() { a.ad.Polled(ka[0], label, fig, 0, 0) }, func() error {
			v := b.poller.View(kb[0])
			if v == nil || v.LimitRemaining == nil || *v.LimitRemaining != 4 || b.set.Account(kb[0]) != label {
				return fmt.Errorf("view %+v, account %q", v, b.set.Account(kb[0]))
			}
			return nil
		}},
		{"spend between polls", func() { a.ad.Spent(ka[0], 1.5) }, func() error {
			if v := b.poller.View(kb[0]); *v.LimitRemaining != 2.5 {
				return fmt.Errorf("remaining %v, want 2.5", *v.LimitRemaining)
			}
			return nil
		}},
		{"free-model use between polls", func() { a.ad.UsedFree(ka[0]) }, func() error {
			if v := b.poller.View(kb[0]); *v.FreeRequestsRemaining != 6 {
				return fmt.Errorf("free requests remaining %v, want 6", *v.FreeRequestsRemaining)
			}
			return nil
		}},
		{"a key's rest", func() { a.set.RestKey(ka[1], fault.Auth, 401, start.Add(time.Minute)) }, func() error {
			if b.pool.Available(kb[1], ns) || b.set.For(kb[1]).State() == breaker.Closed {
				return fmt.Errorf("key 2 available or its breaker closed")
			}
			return nil
		}},
		{"the key back", func() { a.set.Lift(ka[1], fault.Auth) }, func() error {
			if !b.pool.Available(kb[1], ns) || b.set.For(kb[1]).State() != breaker.Closed {
				return fmt.Errorf("key 2 still out")
			}
			return nil
		}},
		{"an account's rest", func() {
			a.set.SetAccount(ka[2], "user_A")
			a.set.RestAccount(ka[2], fault.RateLimit, 429, start.Add(time.Minute))
		}, func() error {
			if b.pool.Available(kb[0], ns) || !b.pool.Available(kb[1], ns) {
				return fmt.Errorf("key 1 available %v, key 2 %v", b.pool.Available(kb[0], ns), b.pool.Available(kb[1], ns))
			}
			return nil
		}},
		{"a free-model block", func() { a.set.BlockFree(ka[2], start.Add(time.Hour)) }, func() error {
			if !b.set.FreeBlockedUntil(kb[0]).Equal(start.Add(time.Hour)) {
				return fmt.Errorf("free block until %v", b.set.FreeBlockedUntil(kb[0]))
			}
			return nil
		}},
		{"the account back", func() { a.set.Lift(ka[2], fault.RateLimit) }, func() error {
			if !b.pool.Available(kb[0], ns) {
				return fmt.Errorf("key 1 still out")
			}
			return nil
		}},
	}
	for _, tc := range cases {
		tc.do()
		if err := tc.check(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got := b.bus.took(); len(got) != 0 {
			t.Errorf("%s: the other replica published again what it applied: %+v", tc.name, got)
		}
		if len(a.bus.took()) == 0 {
			t.Errorf("%s: nothing published", tc.name)
		}
	}
}

func TestManualDisableByLaterTime(t *testing.T) {
	a, b := pair(t)
	type call struct {
		id  int
		off bool
	}
	var got []call
	b.ad.OnManual(func(set *breaker.Set, k *keyring.Key, disabled bool) {
		if set != b.set {
			t.Error("applied to another set")
		}
		got = append(got, call{k.ID, disabled})
	})
	a.ad.Manual(a.pool.Keys()[0], true)
	ref := a.ad.Ref(a.pool.Keys()[0])
	// An older enable, re-read after the disable, changes nothing.
	b.ad.Apply(cluster.Event{Kind: cluster.Enable, Key: ref, At: start.Add(-time.Hour)})
	b.ad.Apply(cluster.Event{Kind: cluster.Enable, Key: ref, At: time.Now().Add(time.Second)})
	want := []call{{1, true}, {1, false}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
}

func TestAttachAgainAndAsk(t *testing.T) {
	a, b := pair(t)
	// A reload gives b new objects for the same keys: events apply there.
	c := newSide(t, b.bus, b.ad)
	a.set.RestKey(a.pool.Keys()[0], fault.Auth, 401, start.Add(time.Minute))
	if c.pool.Available(c.pool.Keys()[0], start.UnixNano()) {
		t.Fatal("the rest did not reach the re-attached set")
	}
	if !b.pool.Available(b.pool.Keys()[0], start.UnixNano()) {
		t.Fatal("the rest reached the replaced set")
	}
	ref := string(a.ad.Ref(a.pool.Keys()[1]))
	a.bus.reply = false
	if a.ad.TryTrial(a.pool.Keys()[1], start) || a.ad.Lease(a.pool.Keys()[1], time.Minute) {
		t.Fatal("the store's no was not passed on")
	}
	want := fmt.Sprint([]string{"trial:" + ref + ":" + fmt.Sprint(start.UnixMilli()), "lease:budget:" + cluster.KeyRef(ref).Digest()})
	if fmt.Sprint(a.bus.asked) != want {
		t.Fatalf("asked %v, want %v", a.bus.asked, want)
	}
}

func TestManualAppliedAgainAfterAttach(t *testing.T) {
	a, b := pair(t)
	var got []bool
	b.ad.OnManual(func(_ *breaker.Set, _ *keyring.Key, disabled bool) { got = append(got, disabled) })
	a.ad.Manual(a.pool.Keys()[0], true)
	sent := a.bus.took()
	if len(sent) != 1 || sent[0].Kind != cluster.Disable {
		t.Fatalf("published %+v", sent)
	}
	ev := sent[0]
	b.ad.Apply(ev) // a re-read: already applied
	newSide(t, b.bus, b.ad)
	b.ad.Apply(ev) // the same re-read after a reload: the new set needs it
	if fmt.Sprint(got) != "[true true]" {
		t.Fatalf("applied %v, want the disable once per attached set", got)
	}
}

// TestFactsOfARenumberedKey: a replica that numbers a key differently
// (another replica's reload took a key out of the list before it) still
// takes that key's facts: they name it by id and digest, and the digest is
// the key. Its rest used to be dropped, the revoked key left in rotation.
func TestFactsOfARenumberedKey(t *testing.T) {
	ba, bb := &bus{reply: true}, &bus{reply: true}
	a := newSide(t, ba, New(ba, nil))
	// b's pool after a reload dropped the first key: the others move up.
	b := newSideOf(t, bb, New(bb, nil), []keyring.Entry{
		{ID: 1, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", 1))},
		{ID: 2, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", 2))},
	})
	ba.peer, bb.peer = b.ad, a.ad
	a.set.RestKey(a.pool.ByID(2), fault.Auth, 401, start.Add(time.Hour))
	if b.pool.Available(b.pool.ByID(1), start.UnixNano()) {
		t.Fatal("the key a rested (its #2, b's #1) is in rotation on b")
	}
	if !b.pool.Available(b.pool.ByID(2), start.UnixNano()) {
		t.Fatal("b's #2 (a's #3) rests for a's #2")
	}
	b.set.RestKey(b.pool.ByID(2), fault.RateLimit, 429, start.Add(time.Minute))
	if a.pool.Available(a.pool.ByID(3), start.UnixNano()) {
		t.Fatal("the key b rested (its #2, a's #3) is in rotation on a")
	}
}

// TestPolledCarriesFreeUse: the free-model requests a poll's replica saw
// used while the poll was out reach the other replica with its figures,
// which do not hold them.
func TestPolledCarriesFreeUse(t *testing.T) {
	a, b := pair(t)
	free, limit := 7, 50
	fig := &budget.Figures{FreeRemaining: &free, FreeLimit: &limit, CheckedAt: start}
	a.ad.Polled(a.pool.Keys()[0], breaker.AccountLabel("user_A"), fig, 0.25, 2)
	v := b.poller.View(b.pool.Keys()[0])
	if v == nil || v.FreeRequestsRemaining == nil || *v.FreeRequestsRemaining != 5 || v.Usage != 0.25 {
		t.Fatalf("view %+v, want 5 free requests left and 0.25 spent", v)
	}
}

// TestLeaseFollowsTheKey: a key two replicas number differently (one has
// reloaded a keys file that renumbered it) asks for one budget lease, so
// that it is polled once between them.
func TestLeaseFollowsTheKey(t *testing.T) {
	entries := func(ids ...int) []keyring.Entry {
		var es []keyring.Entry
		for i, id := range ids {
			es = append(es, keyring.Entry{ID: id, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", i))})
		}
		return es
	}
	ba, bb := &bus{reply: true}, &bus{reply: true}
	a := newSideOf(t, ba, New(ba, nil), entries(1, 2))
	b := newSideOf(t, bb, New(bb, nil), entries(7, 8))
	a.ad.Lease(a.pool.Keys()[1], time.Minute)
	b.ad.Lease(b.pool.Keys()[1], time.Minute)
	if len(ba.asked) != 1 || len(bb.asked) != 1 || ba.asked[0] != bb.asked[0] {
		t.Fatalf("leases asked %v and %v, want one name for the key", ba.asked, bb.asked)
	}
}
