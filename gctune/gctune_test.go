package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		name              string
		floor, live, scan uint64
		base, want        int
	}{
		{"small heap: the minimum reaches the floor first", 32 * mib, 2 * mib, 3 * mib, 100, 800},
		{"scan reaches the floor before the minimum does", 32 * mib, 12 * mib, 16 * mib, 100, 125},
		{"heap past the floor: default pacing", 32 * mib, 20 * mib, 24 * mib, 100, 100},
		{"floor below Go's own minimum", 4 * mib, 1 * mib, 1 * mib, 100, 100},
		{"user's GOGC above what the floor needs", 32 * mib, 2 * mib, 3 * mib, 1000, 1000},
		{"user's GOGC, floor above its goal", 64 * mib, 2 * mib, 3 * mib, 200, 1600},
		{"empty scan is bounded", 1 << 40, 0, 0, 100, maxPercent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.floor, tc.live, tc.scan, tc.base); got != tc.want {
				t.Fatalf("Percent(%d MiB, live %d MiB, scan %d MiB, base %d) = %d, want %d",
					tc.floor/mib, tc.live/mib, tc.scan/mib, tc.base, got, tc.want)
			}
			// The goal at the result is at least the floor unless bounded.
			g := uint64(Percent(tc.floor, tc.live, tc.scan, tc.base))
			goal := max(defaultMinimum*g/100, tc.live+tc.scan*g/100)
			if goal < tc.floor && g < maxPercent {
				t.Fatalf("goal at GOGC=%d is %d MiB, under the floor", g, goal/mib)
			}
		})
	}
}

func readUint(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestPacerRaisesTheGoal: with a floor far above this test binary's heap,
// the goal after a collection is at the floor, and Stop puts GOGC back.
func TestPacerRaisesTheGoal(t *testing.T) {
	const floor = 64 * mib
	before := readUint("/gc/gogc:percent")
	p := Start(floor)
	if p == nil {
		t.Fatal("Start returned nil for a non-zero floor")
	}
	// Each collection runs the Pacer's cleanup; wait until one has.
	deadline := time.Now().Add(10 * time.Second)
	for readUint("/gc/heap/goal:bytes") < floor {
		if time.Now().After(deadline) {
			t.Fatalf("heap goal %d MiB after collections, want at least %d MiB (GOGC %d)",
				readUint("/gc/heap/goal:bytes")/mib, floor/mib, readUint("/gc/gogc:percent"))
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := p.Current(); got <= 100 {
		t.Fatalf("Current() = %d, want above 100", got)
	}
	p.Stop()
	runtime.GC()
	if got := readUint("/gc/gogc:percent"); got != before {
		t.Fatalf("GOGC after Stop = %d, want %d", got, before)
	}
	if goal := readUint("/gc/heap/goal:bytes"); goal >= floor {
		t.Fatalf("heap goal after Stop = %d MiB, want the default pacing's", goal/mib)
	}
}

func TestStartZeroIsOff(t *testing.T) {
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	if p := Start(0); p != nil {
		t.Fatal("Start(0) paced the collector")
	}
	p := (*Pacer)(nil)
	p.Stop() // a nil Pacer stops as nothing
	if got := debug.SetGCPercent(before); got != before {
		t.Fatalf("GOGC = %d, want %d", got, before)
	}
}

// TestBurst feeds a burst's counts tick by tick.
func TestBurst(t *testing.T) {
	b := burst{minPeak: 256}
	const f, o = true, true // freed, and the burst over with it
	for i, tc := range []struct {
		n          int64
		free, over bool
	}{
		{100, !f, !o}, {0, !f, !o}, {0, !f, !o}, // below minPeak: no burst
		{1000, !f, !o}, {500, !f, !o}, {500, !f, !o}, // a burst, above an eighth of its peak
		{125, !f, !o}, {125, f, !o}, // an eighth for two ticks: freed, 125 the next peak
		{125, !f, !o}, {10, !f, !o}, {10, f, o}, // an eighth of 125: freed, and 10 ends the burst
		{0, !f, !o}, {0, !f, !o}, // no burst
		{300, !f, !o}, {38, !f, !o}, {37, !f, !o}, {37, f, !o}, // 300/8 = 37; 37 is above 256/8
		{4, !f, !o}, {4, f, o}, // 37/8 = 4: freed, over
		{0, !f, !o}, {0, !f, !o},
		{4000, !f, !o}, {10, !f, !o}, {900, !f, !o}, {10, !f, !o}, {10, f, o}, // a rise resets the quiet ticks
		{0, !f, !o}, {0, !f, !o}, {0, !f, !o},
	} {
		if free, over := b.observe(tc.n); free != tc.free || over != tc.over {
			t.Fatalf("tick %d, %d in flight: free, over = %v, %v, want %v, %v", i, tc.n, free, over, tc.free, tc.over)
		}
	}
}

// TestReleaseFreesAfterABurst runs the loop on ticks of the test's own.
func TestReleaseFreesAfterABurst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	ticks := make(chan time.Time)
	freed := make(chan int64, 1)
	done := make(chan struct{})
	go func() {
		release(ctx, n.Load, ticks, 256, func(over bool) {
			if over {
				freed <- n.Load()
			}
		})
		close(done)
	}()
	for _, v := range []int64{1000, 0, 0} {
		n.Store(v)
		ticks <- time.Now()
	}
	if got := <-freed; got != 0 {
		t.Fatalf("freed at %d in flight, want 0", got)
	}
	cancel()
	<-done
}

// TestGogc: the GOGC in force is read as set, and the collector turned off
// reads as 100, Go's default, for the Pacer to restore and pace from.
func TestGogc(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	for set, want := range map[int]int{50: 50, 100: 100, 250: 250, -1: 100} {
		debug.SetGCPercent(set)
		if got := gogc(); got != want {
			t.Errorf("GOGC %d: gogc() = %d, want %d", set, got, want)
		}
	}
}
