package main

import (
	"flag"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// selectionResult is one strategy's pick cost at 1 and at 2 CPUs, measured
// like keyring's BenchmarkPick: b.RunParallel over a pool of 4 keys.
type selectionResult struct {
	Strategy     string  `json:"strategy"`
	NsPerOp1CPU  float64 `json:"ns_per_op_1cpu"`
	NsPerOp2CPU  float64 `json:"ns_per_op_2cpu"`
	AllocsPerOp  int64   `json:"allocs_per_op"`
	TwoOverOne   float64 `json:"two_cpu_over_one"`
	Measurements int     `json:"iterations_2cpu"`
}

// measureSelection runs the pick benchmark of every strategy for about
// benchtime at each CPU count. It must run while nothing else loads the
// machine.
func measureSelection(benchtime time.Duration) ([]selectionResult, error) {
	entries := make([]keyring.Entry, 4)
	for i := range entries {
		entries[i] = keyring.Entry{ID: i + 1, Secret: secret.New("sk-or-v1-selection-key-" + string(rune('a'+i)) + "-0123456789")}
	}
	pool, err := keyring.New(entries, nil)
	if err != nil {
		return nil, err
	}
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	var out []selectionResult
	for _, name := range keyring.Names {
		st, err := keyring.ByName(name, nil)
		if err != nil {
			return nil, err
		}
		r := selectionResult{Strategy: name}
		for _, procs := range []int{1, 2} {
			runtime.GOMAXPROCS(procs)
			res := benchFor(benchtime, func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					var ex keyring.Exclude
					for pb.Next() {
						if st.Pick(pool, &ex, 1) == nil {
							panic("no key")
						}
					}
				})
			})
			ns := round(float64(res.T.Nanoseconds())/float64(max(res.N, 1)), 2)
			if procs == 1 {
				r.NsPerOp1CPU = ns
			} else {
				r.NsPerOp2CPU, r.Measurements = ns, res.N
			}
			r.AllocsPerOp = max(r.AllocsPerOp, res.AllocsPerOp())
		}
		r.TwoOverOne = round(r.NsPerOp2CPU/r.NsPerOp1CPU, 3)
		out = append(out, r)
	}
	return out, nil
}

var initTesting sync.Once

// benchFor runs f like testing.Benchmark for about d (its -test.benchtime).
func benchFor(d time.Duration, f func(b *testing.B)) testing.BenchmarkResult {
	initTesting.Do(testing.Init)
	_ = flag.Set("test.benchtime", d.String())
	return testing.Benchmark(f)
}
