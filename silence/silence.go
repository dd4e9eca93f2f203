// Package silence cuts off what has made no progress for longer than a
// timeout: the relay's upstream calls whose answer stopped coming. It
// stands in for a runtime timer per call, made at its start and moved on
// every read: with several such timer changes per call, timers were a few
// percent of keygate's CPU under load. Here a call's Entry goes on a list
// (a lock and two pointers), progress stores the time of the last tick
// (one atomic store), and one timer, armed while some entry is on the
// list, checks the list every tick. It is not stopped when the list empties: it finds it empty
// at its next tick and is then not armed again, so that traffic of one
// call at a time arms it once a tick, not once a call. No goroutine waits
// meanwhile.
//
// Progress is noted at tick granularity, so an entry expires after between
// the timeout and the timeout plus two ticks of silence, never before.
package silence

import (
	"sync"
	"sync/atomic"
	"time"
)

// Expirer is told that its entry was silent for too long. Expire runs with
// the watch's lock held, so that once Remove returns it has run or never
// will: it must be quick and must not call the Watch.
type Expirer interface{ Expire() }

// Entry is one watched call, kept in the caller's own struct (no
// allocation); its zero value is ready for Add.
type Entry struct {
	last       atomic.Int64
	prev, next *Entry
	on         Expirer
	// watched: on the list; expired: taken off it by the timeout.
	watched, expired bool
}

// Watch watches entries for silences longer than its timeout. Safe for
// concurrent use.
type Watch struct {
	timeout, tick time.Duration
	// base is where clock counts from; clock is the monotonic time
	// since base at the last tick (or when the timer was armed), in ns.
	base  time.Time
	timer *time.Timer
	// clock is read on every read of every watched answer: it has a cache
	// line of its own, away from mu, which every call's start and end
	// writes.
	_     [64]byte
	clock atomic.Int64
	_     [56]byte

	mu sync.Mutex
	// head is the list of watched entries.
	head *Entry
	// armed: the timer will fire.
	armed bool
}

// New watches for silences longer than timeout. Its tick is a sixteenth of
// the timeout, within 1 ms and 1 s.
func New(timeout time.Duration) *Watch {
	w := &Watch{timeout: timeout, tick: Tick(timeout), base: time.Now()}
	w.timer = time.AfterFunc(time.Hour, w.check)
	w.timer.Stop()
	return w
}

// Tick is the tick of a Watch over timeout: a sixteenth of it, within 1 ms
// and 1 s. A silent entry expires at most two ticks after the timeout.
func Tick(timeout time.Duration) time.Duration {
	return min(max(timeout/16, time.Millisecond), time.Second)
}

// Add starts watching e, silent from now on; on is told if it stays so.
func (w *Watch) Add(e *Entry, on Expirer) {
	w.mu.Lock()
	if !w.armed {
		w.clock.Store(int64(time.Since(w.base)))
		w.armed = true
		w.timer.Reset(w.tick)
	}
	e.last.Store(w.clock.Load())
	e.on, e.watched, e.expired = on, true, false
	e.prev, e.next = nil, w.head
	if w.head != nil {
		w.head.prev = e
	}
	w.head = e
	w.mu.Unlock()
}

// Remove stops watching e, if it still is, and reports whether it expired
// first (its Expire has then run). After Remove, e's Expire is not called.
func (w *Watch) Remove(e *Entry) (expired bool) {
	w.mu.Lock()
	if e.watched {
		w.unlink(e)
	}
	expired = e.expired
	w.mu.Unlock()
	return expired
}

// unlink takes e off the list; w.mu is held.
func (w *Watch) unlink(e *Entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		w.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	}
	e.prev, e.next, e.watched = nil, nil, false
}

// Touch notes progress on e: its silence starts again. The clock moves
// once a tick, so most reads of a busy call find it noted already and
// only load: an atomic store (a locked instruction) on every read of a
// stream's answer was a few percent of keygate's CPU per chunk.
func (w *Watch) Touch(e *Entry) {
	if now := w.clock.Load(); e.last.Load() != now {
		e.last.Store(now)
	}
}

// check is the tick: it expires the entries silent for too long, and arms
// the timer again while some are left.
func (w *Watch) check() {
	now := int64(time.Since(w.base))
	w.clock.Store(now)
	// The clock an entry last noted is up to a tick behind the time of
	// its progress: a tick more of margin, so that none is early.
	limit := now - int64(w.timeout+w.tick)
	w.mu.Lock()
	defer w.mu.Unlock()
	for e := w.head; e != nil; {
		next := e.next
		if e.last.Load() < limit {
			w.unlink(e)
			e.expired = true
			e.on.Expire()
		}
		e = next
	}
	if w.head != nil {
		w.timer.Reset(w.tick)
	} else {
		w.armed = false
	}
}
