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
// store), and one timer, armed while some attempt is open, checks the list
// every tick. It is not stopped when the list empties: it finds it empty
// at its next tick and is then not armed again, so that traffic of one
// call at a time arms it once a tick, not once a call. No goroutine waits
// meanwhile.
//
// Progress is noted at tick granularity, so an attempt is cancelled after
// between timeout and timeout plus two ticks of silence, never before.
type watchdog struct {
	timeout, tick time.Duration
	// base is where clock counts from; clock is the monotonic time
	// since base at the last tick (or when the timer was armed), in ns.
	base  time.Time
	clock atomic.Int64
	timer *time.Timer

	mu sync.Mutex
	// head is the list of open attempts, linked through their bodies.
	head *watchedBody
	// armed: the timer will fire.
	armed bool
}

// newWatchdog watches for silences longer than timeout. Its tick is a
// sixteenth of the timeout, within 1 ms and 1 s.
func newWatchdog(timeout time.Duration) *watchdog {
	w := &watchdog{timeout: timeout, tick: min(max(timeout/16, time.Millisecond), time.Second), base: time.Now()}
	w.timer = time.AfterFunc(time.Hour, w.check)
	w.timer.Stop()
	return w
}

// add starts watching b, silent from now on.
func (w *watchdog) add(b *watchedBody) {
	w.mu.Lock()
	if !w.armed {
		w.clock.Store(int64(time.Since(w.base)))
		w.armed = true
		w.timer.Reset(w.tick)
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

// remove stops watching b, if it still is.
func (w *watchdog) remove(b *watchedBody) {
	w.mu.Lock()
	if b.watched {
		w.unlink(b)
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

// check is the tick: it cancels the attempts silent for too long, and arms
// the timer again while some are open.
func (w *watchdog) check() {
	now := int64(time.Since(w.base))
	w.clock.Store(now)
	// The clock a body last noted is up to a tick behind the time of its
	// progress: a tick more of margin, so that none is early.
	limit := now - int64(w.timeout+w.tick)
	var late []*watchedBody
	w.mu.Lock()
	for b := w.head; b != nil; {
		next := b.next
		if b.last.Load() < limit {
			w.unlink(b)
			late = append(late, b)
		}
		b = next
	}
	if w.head != nil {
		w.timer.Reset(w.tick)
	} else {
		w.armed = false
	}
	w.mu.Unlock()
	for _, b := range late {
		b.expire()
	}
}
