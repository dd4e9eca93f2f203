// Package gctune paces Go's garbage collector for a proxy. A gateway's live
// heap is small (a few MiB) while it allocates tens of MiB a second, so Go's
// default pacing (GOGC=100, a 4 MiB minimum goal) collects some thirty times
// a second under load, and each cycle scans every goroutine's stack: in the
// benchmark that was a fifth of keygate's CPU per request. A Pacer keeps the
// heap goal at or above a floor instead, and leaves the default pacing in
// force once the live heap is large enough for it, so that memory at scale
// (thousands of open streams) grows as it always did. Release hands the
// memory of a burst of streams back to the system once the burst is over.
package gctune

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// defaultMinimum is Go's heap goal floor at GOGC=100; it scales with GOGC.
const defaultMinimum = 4 << 20

// maxPercent bounds the GOGC a Pacer sets, whatever the floor asks.
const maxPercent = 10000

// Pacer raises GOGC after each collection just enough that the next goal
// is at least its floor. Stop it to restore the GOGC it found.
type Pacer struct {
	floor uint64
	base  int

	mu      sync.Mutex // orders a cycle's SetGCPercent against Stop's
	stopped bool
	percent int
	samples []metrics.Sample
}

// Start paces the collector so that the heap goal stays at or above floor
// bytes. It replaces the GOGC in force (the caller leaves GOGC set by the
// user alone by not calling it) and returns nil when floor is 0.
func Start(floor uint64) *Pacer {
	if floor == 0 {
		return nil
	}
	base := gogc()
	p := &Pacer{floor: floor, base: base, percent: base, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	p.cycle()
	return p
}

// gogc is the GOGC in force, read without setting it; 100 when the
// collector is off or the runtime does not say.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		if v := s[0].Value.Uint64(); v > 0 && v <= math.MaxInt32 {
			return int(v)
		}
	}
	return 100
}

// sentinel is an object whose collection marks the end of a GC cycle; it
// holds a pointer so that it is never tiny-allocated beside other objects.
type sentinel struct{ _ *sentinel }

// arm runs p.cycle after the next collection.
func (p *Pacer) arm() {
	runtime.AddCleanup(new(sentinel), (*Pacer).cycle, p)
}

// cycle sets GOGC from the heap the last collection left, and arms again.
func (p *Pacer) cycle() {
	metrics.Read(p.samples)
	live, stack, globals := p.samples[0].Value.Uint64(), p.samples[1].Value.Uint64(), p.samples[2].Value.Uint64()
	want := Percent(p.floor, live, live+stack+globals, p.base)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	// A change of less than an eighth is not worth the runtime's lock.
	if d := want - p.percent; d > p.percent/8 || -d > p.percent/8 {
		debug.SetGCPercent(want)
		p.percent = want
	}
	p.arm()
}

// Current is the GOGC the Pacer last set.
func (p *Pacer) Current() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.percent
}

// Stop restores the GOGC the Pacer found; later cycles change nothing.
func (p *Pacer) Stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	debug.SetGCPercent(p.base)
}

// Percent is the smallest GOGC, not below base, whose next heap goal is at
// least floor after a collection that left live bytes of heap and scan
// bytes to scan (heap, stacks and globals). Go's goal is the larger of
// live + scan×GOGC/100 and its minimum, 4 MiB×GOGC/100.
func Percent(floor, live, scan uint64, base int) int {
	if floor <= live+scan*uint64(base)/100 || floor <= defaultMinimum*uint64(base)/100 {
		return base
	}
	// The minimum alone reaches the floor at this GOGC.
	byMinimum := ceilDiv(100*floor, defaultMinimum)
	byScan := uint64(maxPercent)
	if scan > 0 {
		byScan = ceilDiv(100*(floor-live), scan)
	}
	return int(min(byMinimum, byScan, maxPercent))
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }

// Release hands the memory of a burst back to the system: every tick it
// reads held (requests in flight, or the connections they came on), and
// when the count has stayed at an eighth or less of a peak of at least
// minPeak for two ticks in a row, it calls free, and again each time the
// count falls as far from there, until it is an eighth of minPeak or less
// (burst). free runs FreeMemory, after whatever the caller lets go of
// first; over is true on a burst's last call, when the count is low: the
// time to close what only the burst needed (idle upstream connections).
// Without it a burst of ten thousand streams leaves the process at its
// peak resident size until the runtime's scavenger gets round to it,
// minutes later. It returns when ctx is done.
func Release(ctx context.Context, held func() int64, tick time.Duration, minPeak int64, free func(over bool)) {
	t := time.NewTicker(tick)
	defer t.Stop()
	release(ctx, held, t.C, minPeak, free)
}

// FreeMemory collects twice, which empties the sync.Pools (a collection
// moves a pool's objects to its victim cache, the next one drops them),
// and hands what is free back to the system.
func FreeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// release is Release with its ticks injected, for tests.
func release(ctx context.Context, held func() int64, ticks <-chan time.Time, minPeak int64, free func(over bool)) {
	b := burst{minPeak: minPeak}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		if now, over := b.observe(held()); now {
			free(over)
		}
	}
}

// burst tells from a tick's count in flight when the memory of a burst
// is to be handed back: a burst starts when the count reaches minPeak, and
// each time the count has then stayed at an eighth or less of its peak
// for two ticks, it is (the first time often while the last streams of
// the burst are still closing); the count at that moment is the next
// peak. The burst is over once that count is an eighth of minPeak or
// less.
type burst struct {
	minPeak, peak int64
	quiet         int
	draining      bool
}

// observe takes one tick's count and reports whether to free now, and
// whether the burst is over with that.
func (b *burst) observe(n int64) (free, over bool) {
	b.peak = max(b.peak, n)
	if b.peak >= b.minPeak {
		b.draining = true
	}
	if !b.draining || b.peak == 0 || n > b.peak/8 {
		b.quiet = 0
		return false, false
	}
	if b.quiet++; b.quiet < 2 {
		return false, false
	}
	b.peak, b.quiet = n, 0
	if n <= b.minPeak/8 {
		b.draining = false
		return true, true
	}
	return true, false
}
