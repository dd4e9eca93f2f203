package relay

import (
	"sync"
	"sync/atomic"
	"time"
)

// watchdog cancels the attempts whose upstream has been silent for longer
// than the timeout. It stands in for a runtime timer per attempt, made
// before the request and moved on every read of the answer: with several
// such timer changes per call, timers were a few percent of keygate's CPU
// under load. Here an attempt is put on a list (a lock and two pointers),
// a read with progress stores the time of the last tick (one atomic
// store), and one goroutine, running while some attempt is open, checks
// the list every tick.
//
// Progress is noted at tick granularity, so an attempt is cancelled after
// between timeout and timeout plus two ticks of silence, never before.
type watchdog struct {
	timeout, tick time.Duration
	// base is where clock counts from; clock is the monotonic time
	// since base at the last tick (or when the loop started), in ns.
	base  time.Time
	clock atomic.Int64

	mu sync.Mutex
	// head is the list of open attempts, linked through their bodies.
	head *watchedBody
	// stop ends the running loop; nil while none runs.
	stop chan struct{}
}

// newWatchdog watches for silences longer than timeout. Its tick is a
// sixteenth of the timeout, within 1 ms and 1 s.
func newWatchdog(timeout time.Duration) *watchdog {
	return &watchdog{timeout: timeout, tick: min(max(timeout/16, time.Millisecond), time.Second), base: time.Now()}
}

// add starts watching b, silent from now on.
func (w *watchdog) add(b *watchedBody) {
	w.mu.Lock()
	if w.stop == nil {
		w.clock.Store(int64(time.Since(w.base)))
		w.stop = make(chan struct{})
		go w.run(w.stop)
	}
	b.last.Store(w.clock.Load())
	b.watched = true
	b.prev, b.next = nil, w.head
	if w.head != nil {
		w.head.prev = b
	}
	w.head = b
	w.mu.Unlock()
}

// remove stops watching b, if it still is; the loop ends with the last.
func (w *watchdog) remove(b *watchedBody) {
	w.mu.Lock()
	if b.watched {
		w.unlink(b)
		if w.head == nil {
			close(w.stop)
			w.stop = nil
		}
	}
	w.mu.Unlock()
}

// unlink takes b off the list; w.mu is held.
func (w *watchdog) unlink(b *watchedBody) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		w.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	}
	b.prev, b.next, b.watched = nil, nil, false
}

// touch notes progress on b: its silence starts again.
func (w *watchdog) touch(b *watchedBody) { b.last.Store(w.clock.Load()) }

func (w *watchdog) run(stop chan struct{}) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var late []*watchedBody
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := int64(time.Since(w.base))
		w.clock.Store(now)
		// The clock a body last noted is up to a tick behind the time of
		// its progress: a tick more of margin, so that none is early.
		limit := now - int64(w.timeout+w.tick)
		w.mu.Lock()
		for b := w.head; b != nil; {
			next := b.next
			if b.last.Load() < limit {
				w.unlink(b)
				late = append(late, b)
			}
			b = next
		}
		if w.head == nil && len(late) > 0 {
			close(w.stop)
			w.stop = nil
		}
		w.mu.Unlock()
		for i, b := range late {
			b.expire()
			late[i] = nil
		}
		late = late[:0]
	}
}
