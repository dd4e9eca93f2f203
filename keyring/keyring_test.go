package keyring

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/keygate/keygate/secret"
)

const now = int64(1_000_000_000)

func testPool(tb testing.TB, n int) *Pool {
	tb.Helper()
	return testPoolWith(tb, n, nil)
}

func testPoolWith(tb testing.TB, n int, l Ledger) *Pool {
	tb.Helper()
	p, err := New(testEntries(n), l)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func testEntries(n int) []Entry {
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{ID: i + 1, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", i))}
	}
	return entries
}

// outsideLedger is a Ledger the pool cannot read directly, as a shared
// (Redis, say) one would be: strategies go through the interface. onRest,
// when set, runs before every RestUntil.
type outsideLedger struct {
	*MemoryLedger
	onRest func(slot int)
}

func (l *outsideLedger) RestUntil(slot int) int64 {
	if l.onRest != nil {
		l.onRest(slot)
	}
	return l.MemoryLedger.RestUntil(slot)
}

// ledgers makes a pool of n keys over each kind of ledger.
var ledgers = map[string]func(n int) Ledger{
	"memory":  func(n int) Ledger { return nil },
	"outside": func(n int) Ledger { return &outsideLedger{MemoryLedger: NewMemoryLedger(n)} },
}

func TestNew(t *testing.T) {
	k := func(id int, raw string) Entry { return Entry{ID: id, Secret: secret.New(raw)} }
	tests := []struct {
		name    string
		entries []Entry
		wantErr string
	}{
		{"nil", nil, ErrNoKeys.Error()},
		{"empty", []Entry{}, ErrNoKeys.Error()},
		{"duplicate id", []Entry{k(1, "a"), k(2, "b"), k(1, "c")}, "keyring: key id 1: duplicate"},
		{"zero id", []Entry{k(0, "a")}, "keyring: key id 0: must be positive"},
		{"negative id", []Entry{k(1, "a"), k(-3, "b")}, "keyring: key id -3: must be positive"},
		{"empty secret", []Entry{k(1, "a"), {ID: 2}}, "keyring: key 2: empty"},
		{"blank secret", []Entry{k(4, "   ")}, "keyring: key 4: empty"},
		{"ok with gaps", []Entry{k(7, "a"), k(2, "b"), k(30, "c")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.entries, nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || p != nil {
					t.Fatalf("New = %v, %v; want error %q", p, err, tt.wantErr)
				}
				if len(tt.entries) == 0 && !errors.Is(err, ErrNoKeys) {
					t.Fatalf("error %v is not ErrNoKeys", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Len() != len(tt.entries) || len(p.Keys()) != len(tt.entries) {
				t.Fatalf("Len = %d", p.Len())
			}
			for i, e := range tt.entries {
				got := p.Keys()[i]
				if got.ID != e.ID || got.Slot() != i || got.Label != strconv.Itoa(e.ID) ||
					!got.Secret.Equal(e.Secret) || p.ByID(e.ID) != got {
					t.Fatalf("key %d = %+v", i, got)
				}
			}
			if p.ByID(1) != nil || p.Ledger() == nil {
				t.Fatal("ByID of an unknown id or nil ledger")
			}
		})
	}
}

func TestNewLedgerTooSmall(t *testing.T) {
	if p, err := New(testEntries(3), NewMemoryLedger(2)); err == nil || p != nil {
		t.Fatalf("New with a 2-slot ledger for 3 keys = %v, %v", p, err)
	}
	if _, err := New(testEntries(3), NewMemoryLedger(5)); err != nil {
		t.Fatalf("a larger ledger is fine: %v", err)
	}
}

func TestExclude(t *testing.T) {
	tests := []struct {
		name  string
		slots []int
	}{
		{"empty", nil},
		{"first", []int{0}},
		{"small", []int{0, 5, 63}},
		{"boundary", []int{63, 64}},
		{"large only", []int{64, 127, 128, 300}},
		{"mixed", []int{1, 2, 3, 64, 65, 191, 192, 1000}},
		{"repeated", []int{7, 7, 70, 70}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Exclude
			for _, s := range tt.slots {
				e.Add(s)
			}
			want := slices.Compact(slices.Sorted(slices.Values(tt.slots)))
			for s := range 1100 {
				if got := e.Has(s); got != slices.Contains(want, s) {
					t.Fatalf("Has(%d) = %v", s, got)
				}
			}
			if e.Len() != len(want) {
				t.Fatalf("Len = %d, want %d", e.Len(), len(want))
			}
			var c Exclude
			c.Add(2)
			c.Add(500)
			c.CopyFrom(&e)
			c.Add(999)
			if e.Has(999) || !c.Has(999) || c.Len() != len(want)+boolInt(!slices.Contains(want, 999)) {
				t.Fatal("CopyFrom shares storage or kept old slots")
			}
			e.Reset()
			if e.Len() != 0 || e.Has(0) || e.Has(64) || e.Has(1000) {
				t.Fatal("Reset left slots")
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestExcludeNilIsEmpty(t *testing.T) {
	var e *Exclude
	if e.Has(0) || e.Has(100) || e.Len() != 0 {
		t.Fatal("nil Exclude is not empty")
	}
}

func TestExcludeSmallDoesNotAllocate(t *testing.T) {
	n := testing.AllocsPerRun(100, func() {
		var e Exclude
		for s := range 64 {
			e.Add(s)
		}
		if !e.Has(63) || e.Len() != 64 {
			t.Fatal("lost a slot")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func TestExtendRestNeverShortens(t *testing.T) {
	tests := []struct {
		name  string
		calls []int64
		want  []int64 // deadline in force after each call
	}{
		{"first", []int64{50}, []int64{50}},
		{"later wins", []int64{50, 80}, []int64{50, 80}},
		{"earlier ignored", []int64{80, 50}, []int64{80, 80}},
		{"equal", []int64{80, 80}, []int64{80, 80}},
		{"mixed", []int64{10, 90, 30, 100, 99}, []int64{10, 90, 90, 100, 100}},
		{"past is a no-op on a fresh key", []int64{-5}, []int64{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewMemoryLedger(2)
			for i, until := range tt.calls {
				if got := l.ExtendRest(1, until); got != tt.want[i] || l.RestUntil(1) != tt.want[i] {
					t.Fatalf("ExtendRest(%d) = %d (RestUntil %d), want %d", until, got, l.RestUntil(1), tt.want[i])
				}
			}
			if l.RestUntil(0) != 0 {
				t.Fatal("another slot changed")
			}
		})
	}
}

func TestExtendRestConcurrentMaxWins(t *testing.T) {
	l := NewMemoryLedger(1)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 1000 {
				if got := l.ExtendRest(0, int64(i*16+g)); got < int64(i*16+g) {
					t.Errorf("ExtendRest returned %d below its own deadline", got)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := l.RestUntil(0); got != 999*16+15 {
		t.Fatalf("RestUntil = %d", got)
	}
}

func TestNextAvailable(t *testing.T) {
	tests := []struct {
		name  string
		rests []int64
		want  int64 // 0: the zero time
		count int
	}{
		{"fresh", []int64{0, 0, 0}, 0, 3},
		{"one available", []int64{now + 50, 0, now + 10}, 0, 1},
		{"rest ending now", []int64{now + 50, now, now + 10}, 0, 1},
		{"all resting: earliest", []int64{now + 50, now + 7, now + 10}, now + 7, 0},
		{"past rests", []int64{now - 1, now - 100, now + 3}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(t, len(tt.rests))
			for s, r := range tt.rests {
				p.Ledger().ExtendRest(s, r)
			}
			got := p.NextAvailable(now)
			if (tt.want == 0) != got.IsZero() || (tt.want != 0 && got.UnixNano() != tt.want) {
				t.Fatalf("NextAvailable = %v, want %d", got, tt.want)
			}
			if c := p.CountAvailable(now); c != tt.count {
				t.Fatalf("CountAvailable = %d, want %d", c, tt.count)
			}
		})
	}
}

func TestNextAvailableSkipsDisabled(t *testing.T) {
	p, err := New([]Entry{{ID: 1, Secret: secret.New("sk-or-v1-next-available-00001")}, {ID: 2, Secret: secret.New("sk-or-v1-next-available-00002")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Ledger().SetRest(0, math.MaxInt64)
	p.Ledger().SetRest(1, 50)
	if got := p.NextAvailable(10); got.UnixNano() != 50 {
		t.Errorf("NextAvailable = %v, want the resting key's end", got)
	}
	p.Ledger().SetRest(1, math.MaxInt64)
	if got := p.NextAvailable(10); !got.IsZero() {
		t.Errorf("NextAvailable with every key disabled = %v, want zero", got)
	}
}

// TestFind: a pool finds its own key, and the key of another snapshot by
// its secret whatever its id there; not a key it does not hold.
func TestFind(t *testing.T) {
	old := testPool(t, 3)
	e := testEntries(3)
	// Key 1 is gone, 2 and 3 are renumbered 1 and 2; a new 3.
	next, err := New([]Entry{{ID: 1, Secret: e[1].Secret}, {ID: 2, Secret: e[2].Secret},
		{ID: 3, Secret: secret.New("sk-or-v1-new")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		k    *Key
		want *Key
	}{
		{"its own", next.ByID(3), next.ByID(3)},
		{"renumbered", old.ByID(2), next.ByID(1)},
		{"renumbered too", old.ByID(3), next.ByID(2)},
		{"removed, its id taken", old.ByID(1), nil},
	}
	for _, tt := range tests {
		if got := next.Find(tt.k); got != tt.want {
			t.Errorf("%s: Find(#%d) = %v, want %v", tt.name, tt.k.ID, got, tt.want)
		}
	}
}

// TestForward: calls in flight on a pool a reload replaced count on the
// new one, for the keys it kept (by secret, renumbered or not), whether
// they began before Forward or after, on whichever goroutine; a key the
// new pool does not hold keeps its counts.
func TestForward(t *testing.T) {
	old := testPool(t, 3)
	e := testEntries(3)
	// Key 1 is gone; 2 is renumbered 1; 3 stays.
	next, err := New([]Entry{{ID: 1, Secret: e[1].Secret}, {ID: 3, Secret: e[2].Secret}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const calls = 200
	var started, forwarded, ended sync.WaitGroup
	gate := make(chan struct{})
	forwarded.Add(1)
	for i := range calls {
		started.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			k := old.Keys()[i%3]
			old.Begin(k)
			started.Done()
			if i%2 == 0 {
				<-gate // half end after Forward
			}
			old.End(k)
		}()
		if i == calls/2 {
			go func() { old.Forward(next); forwarded.Done() }()
		}
	}
	started.Wait()
	forwarded.Wait()
	// The odd calls may be over; the even ones are in flight.
	for _, k := range old.Keys()[1:] {
		nk := next.Find(k)
		if n := next.Ledger().InFlight(nk.Slot()); n < calls/6 {
			t.Errorf("key #%d (was #%d): %d in flight on the new pool, want the even calls'", nk.ID, k.ID, n)
		}
	}
	close(gate)
	ended.Wait()
	for _, tt := range []struct {
		p    *Pool
		k    *Key
		used uint64
	}{
		{old, old.ByID(1), 67}, // removed: its counts stay
		{next, next.ByID(1), 67},
		{next, next.ByID(3), 66},
		{old, old.ByID(2), 0},
		{old, old.ByID(3), 0},
	} {
		if n := tt.p.Ledger().InFlight(tt.k.Slot()); n != 0 {
			t.Errorf("key #%d: %d in flight after every call ended", tt.k.ID, n)
		}
		if u := tt.p.Ledger().Used(tt.k.Slot()); u != tt.used {
			t.Errorf("key #%d: %d calls, want %d", tt.k.ID, u, tt.used)
		}
	}
}
