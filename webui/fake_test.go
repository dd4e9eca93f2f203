package webui

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/secret"
)

// Raw keys of the fake pool; none may ever reach the page beyond its mask.
var rawKeys = []string{
	"sk-or-v1-0a1b2c3d4e5f60718293a4b5c6d7e8f9aaaa1111",
	"sk-or-v1-1a1b2c3d4e5f60718293a4b5c6d7e8f9bbbb2222",
	"sk-or-v1-2a1b2c3d4e5f60718293a4b5c6d7e8f9cccc3333",
	"sk-or-v1-3a1b2c3d4e5f60718293a4b5c6d7e8f9dddd4444",
}

// fakePool is a Source and an admin.Pool over the same keys, whose state the
// test changes while the page watches.
type fakePool struct {
	mu      sync.Mutex
	keys    []Key
	calls   []string
	renamed map[int]secret.Key // the key Named finds under an id, when set
}

func newFakePool() *fakePool {
	f64 := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	reset := "monthly" // budget.View.LimitReset
	at := time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)
	p := &fakePool{}
	for n, raw := range rawKeys {
		k := Key{
			ID: n + 1, Masked: secret.New(raw), Account: []string{"a1b2c3d4", "a1b2c3d4", "e5f6a7b8", ""}[n],
			State: StateActive, Calls: uint64(100 * (n + 1)), InFlight: int64(n % 2),
			Failures:    map[string]uint64{"upstream": uint64(n)},
			LatencyMean: Seconds(time.Duration(400+100*n) * time.Millisecond),
		}
		if n < 3 {
			k.Budget = &admin.Budget{Limit: f64(5), LimitRemaining: f64(4.2 - float64(n)), LimitReset: &reset,
				Usage: 0.8, UsageDaily: 0.1, FreeRequestsRemaining: i(50 - n), CheckedAt: at}
		}
		p.keys = append(p.keys, k)
	}
	return p
}

func (p *fakePool) Snapshot(context.Context) Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	up := true
	keys := make([]Key, len(p.keys))
	copy(keys, p.keys)
	for i := range keys {
		// As gateway.StatusSource fills it in.
		keys[i].Fingerprint = keys[i].Masked.Fingerprint()
	}
	return Snapshot{Replica: "test-1", Strategy: "round-robin", RedisUp: &up, At: time.Now(), Keys: keys}
}

// set changes key id's row.
func (p *fakePool) set(id int, fn func(*Key)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.keys {
		if p.keys[i].ID == id {
			fn(&p.keys[i])
		}
	}
}

// add puts k in the pool; remove takes key id out.
func (p *fakePool) add(k Key) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, k)
}

func (p *fakePool) remove(id int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = slices.DeleteFunc(p.keys, func(k Key) bool { return k.ID == id })
}

func (p *fakePool) record(call string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call)
}

func (p *fakePool) called() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *fakePool) toggle(id int, off bool) error {
	found := false
	p.set(id, func(k *Key) {
		found = true
		k.Disabled = off
		k.State = StateActive
		if off {
			k.State = StateDisabled
		}
	})
	if !found {
		return admin.ErrUnknownKey
	}
	return nil
}

// Named names key id, or the key renamed puts under it: a reload the page
// has not polled since.
func (p *fakePool) Named(id int) (admin.KeyName, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.renamed[id]; ok {
		return admin.KeyName{Masked: k.String(), Fingerprint: k.Fingerprint()}, true
	}
	for _, k := range p.keys {
		if k.ID == id {
			return admin.KeyName{Masked: k.Masked.String(), Fingerprint: k.Masked.Fingerprint()}, true
		}
	}
	return admin.KeyName{}, false
}

func (p *fakePool) Disable(_ context.Context, id int) error {
	p.record("disable " + itoa(id))
	return p.toggle(id, true)
}

func (p *fakePool) Enable(_ context.Context, id int) error {
	p.record("enable " + itoa(id))
	return p.toggle(id, false)
}

func (p *fakePool) Check(_ context.Context, id int) (admin.Budget, error) {
	p.record("check " + itoa(id))
	var b *admin.Budget
	p.set(id, func(k *Key) { b = k.Budget })
	if b == nil {
		return admin.Budget{}, admin.ErrUnknownKey
	}
	return *b, nil
}

func (p *fakePool) Reload(context.Context) (admin.ReloadResult, error) {
	p.record("reload")
	return admin.ReloadResult{Keys: 4, Kept: []int{1, 2, 3, 4}, Renumbered: []admin.Move{{From: 5, To: 4}}}, nil
}
