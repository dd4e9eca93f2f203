package keyring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func pcg(seed uint64) IntN {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return r.IntN(n)
	}
}

func strategies(t *testing.T) []Strategy {
	t.Helper()
	var out []Strategy
	for _, name := range Names {
		st, err := ByName(name, pcg(1))
		if err != nil {
			t.Fatal(err)
		}
		if st.Name() != name {
			t.Fatalf("ByName(%q).Name() = %q", name, st.Name())
		}
		out = append(out, st)
	}
	return out
}

func TestStrategiesSkipAndNeverFallBack(t *testing.T) {
	tests := []struct {
		name    string
		resting []int // slots resting past now
		ended   []int // slots whose rest ends exactly at now
		exclude []int
		want    []int // the slots a pick may return; empty means nil
	}{
		{"all available", nil, nil, nil, []int{0, 1, 2, 3}},
		{"resting skipped", []int{0, 2}, nil, nil, []int{1, 3}},
		{"rest ending now is over", []int{1, 2, 3}, []int{0}, nil, []int{0}},
		{"excluded skipped", nil, nil, []int{1, 3}, []int{0, 2}},
		{"both", []int{0}, nil, []int{2, 3}, []int{1}},
		{"all resting", []int{0, 1, 2, 3}, nil, nil, nil},
		{"all excluded", nil, nil, []int{0, 1, 2, 3}, nil},
		{"resting or excluded", []int{0, 1}, nil, []int{2, 3}, nil},
	}
	for _, st := range strategies(t) {
		for _, tt := range tests {
			for lname, ledger := range ledgers {
				t.Run(st.Name()+"/"+lname+"/"+tt.name, func(t *testing.T) {
					p := testPoolWith(t, 4, ledger(4))
					for _, s := range tt.resting {
						p.Ledger().ExtendRest(s, now+1)
					}
					for _, s := range tt.ended {
						p.Ledger().ExtendRest(s, now)
					}
					var ex Exclude
					for _, s := range tt.exclude {
						ex.Add(s)
					}
					seen := map[int]bool{}
					for range 200 {
						k := st.Pick(p, &ex, now)
						if len(tt.want) == 0 {
							if k != nil {
								t.Fatalf("picked key %d, want nil", k.ID)
							}
							continue
						}
						if k == nil || !slices.Contains(tt.want, k.Slot()) {
							t.Fatalf("picked %v, want one of slots %v", k, tt.want)
						}
						seen[k.Slot()] = true
					}
					if st.Name() != NameLeastBusy && len(seen) != len(tt.want) {
						t.Fatalf("picked only %v of %v", seen, tt.want)
					}
					if got := p.CountAvailable(now); got != 4-len(tt.resting) {
						t.Fatalf("CountAvailable = %d", got)
					}
				})
			}
		}
	}
}

func TestPickNilExclude(t *testing.T) {
	for _, st := range strategies(t) {
		for _, n := range []int{3, 70} {
			t.Run(fmt.Sprintf("%s/%d", st.Name(), n), func(t *testing.T) {
				p := testPool(t, n)
				for s := range n - 1 {
					p.Ledger().ExtendRest(s, now+1)
				}
				if k := st.Pick(p, nil, now); k == nil || k.Slot() != n-1 {
					t.Fatalf("picked %v, want the last slot", k)
				}
			})
		}
	}
}

// TestPickWhileKeysLeave sends keys to rest after a pick has counted the
// pool and before it chooses (over 64 keys the choice looks again): the
// pick returns a key still in rotation, or nil when none is left.
func TestPickWhileKeysLeave(t *testing.T) {
	tests := []struct {
		name  string
		leave func(slot int) bool
	}{
		{"all leave", func(int) bool { return true }},
		{"all but the first leave", func(s int) bool { return s > 0 }},
		{"all but the last leave", func(s int) bool { return s < 69 }},
		{"the upper half leaves", func(s int) bool { return s >= 35 }},
	}
	const keys = 70
	for _, st := range strategies(t) {
		for _, tt := range tests {
			t.Run(st.Name()+"/"+tt.name, func(t *testing.T) {
				for pick := range 40 {
					l := &outsideLedger{MemoryLedger: NewMemoryLedger(keys)}
					p := testPoolWith(t, keys, l)
					for range pick * 7 {
						l.Cursor()
					}
					calls := 0
					l.onRest = func(int) {
						if calls++; calls == keys+1 {
							for s := range keys {
								if tt.leave(s) {
									l.ExtendRest(s, now+1)
								}
							}
						}
					}
					k := st.Pick(p, nil, now)
					if calls <= keys {
						continue // a single pass: nothing left mid-pick
					}
					if k == nil && p.CountAvailable(now) > 0 {
						t.Fatal("nil while a key is in rotation")
					}
					if k != nil && !p.Available(k, now) {
						t.Fatalf("picked slot %d, which had left", k.Slot())
					}
				}
			})
		}
	}
}

func TestByNameUnknown(t *testing.T) {
	for _, name := range []string{"", "Random", "roundrobin", "least_busy"} {
		if st, err := ByName(name, nil); err == nil || st != nil {
			t.Fatalf("ByName(%q) = %v, %v", name, st, err)
		}
	}
}

// chiSquare is Pearson's statistic of counts against a uniform expectation.
func chiSquare(counts []int, total int) float64 {
	exp := float64(total) / float64(len(counts))
	x := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		x += d * d / exp
	}
	return x
}

func TestRandomUniformAmongAvailable(t *testing.T) {
	tests := []struct {
		name    string
		keys    int
		resting []int
		exclude []int
	}{
		{"all", 8, nil, nil},
		{"some resting", 8, []int{1, 5}, nil},
		{"resting and excluded", 10, []int{0, 9}, []int{4}},
		{"two left", 16, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, nil},
		{"beyond 64 slots", 70, []int{0, 10, 20}, []int{65, 69}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(t, tt.keys)
			for _, s := range tt.resting {
				p.Ledger().ExtendRest(s, now+1)
			}
			var ex Exclude
			for _, s := range tt.exclude {
				ex.Add(s)
			}
			var avail []int
			for s := range tt.keys {
				if !slices.Contains(tt.resting, s) && !slices.Contains(tt.exclude, s) {
					avail = append(avail, s)
				}
			}
			const perKey = 5000
			total := perKey * len(avail)
			st := NewRandom(pcg(42))
			counts := make([]int, len(avail))
			for range total {
				k := st.Pick(p, &ex, now)
				i := -1
				if k != nil {
					i = slices.Index(avail, k.Slot())
				}
				if i < 0 {
					t.Fatalf("picked %v, want one of slots %v", k, avail)
				}
				counts[i]++
			}
			// Under uniform picks the statistic has mean df = len-1 and
			// standard deviation sqrt(2 df); allow df + 10 sd + 20, far
			// beyond chance, well below any real bias at 5000 per key.
			df := float64(len(avail) - 1)
			if x := chiSquare(counts, total); x > df+10*math.Sqrt(2*df)+20 {
				t.Fatalf("chi-square %.1f for %d keys: %v", x, len(avail), counts)
			}
			for i, c := range counts {
				if c < perKey*90/100 || c > perKey*110/100 {
					t.Fatalf("slot %d picked %d times, want about %d: %v", avail[i], c, perKey, counts)
				}
			}
		})
	}
}

func TestRandomIntNArgument(t *testing.T) {
	for _, n := range []int{6, 70} {
		p := testPool(t, n)
		p.Ledger().ExtendRest(2, now+1)
		var ex Exclude
		ex.Add(4)
		for _, draw := range []func(int) int{func(int) int { return 0 }, func(n int) int { return n - 1 }} {
			st := NewRandom(func(m int) int {
				if m != n-2 {
					t.Errorf("IntN(%d) with %d keys available", m, n-2)
				}
				return draw(m)
			})
			if k := st.Pick(p, &ex, now); k == nil || k.Slot() == 2 || k.Slot() == 4 {
				t.Fatalf("picked %v", k)
			}
		}
	}
}

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		resting []int
		exclude []int
		want    []int
	}{
		{"in turn", nil, nil, []int{0, 1, 2, 3, 0, 1, 2, 3, 0}},
		{"one resting", []int{2}, nil, []int{0, 1, 3, 0, 1, 3, 0, 1, 3}},
		{"first resting", []int{0}, nil, []int{1, 2, 3, 1, 2, 3}},
		{"resting and excluded", []int{1}, []int{3}, []int{0, 2, 0, 2, 0, 2}},
		{"one left", []int{0, 1, 3}, nil, []int{2, 2, 2}},
	}
	for _, tt := range tests {
		for lname, ledger := range ledgers {
			t.Run(lname+"/"+tt.name, func(t *testing.T) {
				p := testPoolWith(t, 4, ledger(4))
				for _, s := range tt.resting {
					p.Ledger().ExtendRest(s, now+1)
				}
				var ex Exclude
				for _, s := range tt.exclude {
					ex.Add(s)
				}
				var got []int
				for range tt.want {
					got = append(got, RoundRobin{}.Pick(p, &ex, now).Slot())
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("sequence %v, want %v", got, tt.want)
				}
			})
		}
	}
}

func TestRoundRobinExactUnderConcurrency(t *testing.T) {
	for _, keys := range []int{1, 3, 7, 16, 70} {
		t.Run(strconv.Itoa(keys), func(t *testing.T) {
			const perKey, workers = 500, 32
			p := testPool(t, keys)
			counts := make([]atomic.Int64, keys)
			var budget atomic.Int64
			budget.Store(int64(perKey * keys))
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					var ex Exclude
					for budget.Add(-1) >= 0 {
						k := RoundRobin{}.Pick(p, &ex, now)
						if k == nil {
							t.Error("nil pick")
							return
						}
						counts[k.Slot()].Add(1)
					}
				})
			}
			wg.Wait()
			for s := range counts {
				if c := counts[s].Load(); c != perKey {
					t.Fatalf("slot %d picked %d times, want %d", s, c, perKey)
				}
			}
		})
	}
}

func TestLeastBusy(t *testing.T) {
	tests := []struct {
		name     string
		inFlight []int64
		used     []int
		resting  []int
		exclude  []int
		want     int
	}{
		{"all idle, first wins ties", []int64{0, 0, 0, 0}, []int{0, 0, 0, 0}, nil, nil, 0},
		{"fewest in flight", []int64{3, 1, 2, 4}, []int{0, 9, 0, 0}, nil, nil, 1},
		{"then fewest used", []int64{1, 0, 0, 1}, []int{0, 7, 3, 0}, nil, nil, 2},
		{"tie on both: pool order", []int64{2, 1, 1, 1}, []int{0, 4, 4, 5}, nil, nil, 1},
		{"best is resting", []int64{1, 0, 1, 1}, []int{5, 0, 3, 4}, []int{1}, nil, 2},
		{"best is excluded", []int64{0, 2, 0, 2}, []int{1, 0, 2, 0}, nil, []int{0}, 2},
		{"only busy left", []int64{0, 0, 9, 0}, []int{0, 0, 99, 0}, []int{0, 1}, []int{3}, 2},
	}
	for _, tt := range tests {
		for lname, ledger := range ledgers {
			t.Run(lname+"/"+tt.name, func(t *testing.T) {
				p := testPoolWith(t, 4, ledger(4))
				for s := range p.Keys() {
					p.Ledger().AddInFlight(s, tt.inFlight[s])
					for range tt.used[s] {
						p.Ledger().AddUsed(s)
					}
				}
				for _, s := range tt.resting {
					p.Ledger().ExtendRest(s, now+1)
				}
				var ex Exclude
				for _, s := range tt.exclude {
					ex.Add(s)
				}
				if k := (LeastBusy{}).Pick(p, &ex, now); k == nil || k.Slot() != tt.want {
					t.Fatalf("picked %v, want slot %d", k, tt.want)
				}
			})
		}
	}
}

func TestLeastBusySpreadsWithBeginEnd(t *testing.T) {
	p := testPool(t, 3)
	var ex Exclude
	var got []int
	for range 6 {
		k := LeastBusy{}.Pick(p, &ex, now)
		p.Begin(k)
		got = append(got, k.Slot())
	}
	if want := []int{0, 1, 2, 0, 1, 2}; !slices.Equal(got, want) {
		t.Fatalf("picks %v, want %v", got, want)
	}
	p.End(p.Keys()[1])
	if k := (LeastBusy{}).Pick(p, &ex, now); k.Slot() != 1 {
		t.Fatalf("picked slot %d after End of slot 1", k.Slot())
	}
	if p.Ledger().InFlight(1) != 1 || p.Ledger().Used(1) != 2 {
		t.Fatalf("in flight %d, used %d", p.Ledger().InFlight(1), p.Ledger().Used(1))
	}
}
