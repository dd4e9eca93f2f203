package keyring

import (
	"fmt"
	"testing"
)

// BenchmarkPick measures one selection on the hot path: every key in
// rotation, nothing excluded, the default (global math/rand/v2) random
// source.
func BenchmarkPick(b *testing.B) {
	for _, name := range Names {
		for _, n := range []int{4, 16} {
			b.Run(fmt.Sprintf("%s/keys=%d", name, n), func(b *testing.B) {
				p := testPool(b, n)
				st, err := ByName(name, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					var ex Exclude
					for pb.Next() {
						if st.Pick(p, &ex, 1) == nil {
							b.Error("no key")
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkPickCall adds what a real call does around a pick, Begin and
// End, so LeastBusy reads counters that other cores are writing.
func BenchmarkPickCall(b *testing.B) {
	for _, name := range Names {
		for _, n := range []int{4, 16} {
			b.Run(fmt.Sprintf("%s/keys=%d", name, n), func(b *testing.B) {
				p := testPool(b, n)
				st, err := ByName(name, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					var ex Exclude
					for pb.Next() {
						k := st.Pick(p, &ex, 1)
						if k == nil {
							b.Error("no key")
							return
						}
						p.Begin(k)
						p.End(k)
					}
				})
			})
		}
	}
}

// BenchmarkPickSkipping has half the keys resting and one excluded.
func BenchmarkPickSkipping(b *testing.B) {
	for _, name := range Names {
		for _, n := range []int{4, 16} {
			b.Run(fmt.Sprintf("%s/keys=%d", name, n), func(b *testing.B) {
				p := testPool(b, n)
				st, _ := ByName(name, nil)
				for i := 0; i < n; i += 2 {
					p.Ledger().ExtendRest(i, 1e18)
				}
				var ex Exclude
				ex.Add(1)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					ex := ex
					for pb.Next() {
						if st.Pick(p, &ex, 1) == nil {
							b.Error("no key")
							return
						}
					}
				})
			})
		}
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	for _, st := range strategies(t) {
		for _, n := range []int{4, 70} {
			t.Run(fmt.Sprintf("%s/%d", st.Name(), n), func(t *testing.T) {
				p := testPool(t, n)
				p.Ledger().ExtendRest(1, now+1)
				var ex Exclude
				ex.Add(0)
				ex.Add(n - 1)
				if a := testing.AllocsPerRun(200, func() { st.Pick(p, &ex, now) }); a != 0 {
					t.Fatalf("%v allocs per pick", a)
				}
			})
		}
	}
}
