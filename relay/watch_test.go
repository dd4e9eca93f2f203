package relay

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// watched is a body on w whose expiry is seen on its context.
func watched(t *testing.T, w *watchdog) *watchedBody {
	t.Helper()
	ctx, cancel := context.WithCancelCause(t.Context())
	t.Cleanup(func() { cancel(nil) })
	return &watchedBody{ctx: ctx, cancel: cancel, watch: w}
}

// expiredAfter waits up to limit for b's attempt to be cancelled for
// silence and returns how long that took from start; ok is false when it
// was not.
func expiredAfter(b *watchedBody, start time.Time, limit time.Duration) (d time.Duration, ok bool) {
	select {
	case <-b.ctx.Done():
		return time.Since(start), errors.Is(context.Cause(b.ctx), ErrUpstreamTimeout)
	case <-time.After(limit):
		return 0, false
	}
}

// TestWatchdogCancelsSilence: an attempt silent for the timeout is
// cancelled with ErrUpstreamTimeout, never before the timeout and within
// two ticks of margin after it; one that makes progress is not; the
// watch's timer stops once the list is empty, and no goroutine is left.
func TestWatchdogCancelsSilence(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const timeout = 80 * time.Millisecond
	w := newWatchdog(timeout)
	if w.tick != 5*time.Millisecond {
		t.Fatalf("tick %v, want a sixteenth of the timeout", w.tick)
	}

	t.Run("silent", func(t *testing.T) {
		b := watched(t, w)
		start := time.Now()
		w.add(b)
		d, ok := expiredAfter(b, start, 10*timeout)
		if !ok {
			t.Fatal("a silent attempt was not cancelled for its silence")
		}
		// Scheduling may delay the cancel on a loaded machine, never
		// bring it forward.
		if d < timeout {
			t.Fatalf("cancelled after %v of silence, before the timeout %v", d, timeout)
		}
		w.remove(b) // as its Close does; it is off the list already
	})

	t.Run("progress keeps it open", func(t *testing.T) {
		b := watched(t, w)
		w.add(b)
		end := time.Now().Add(4 * timeout)
		for time.Now().Before(end) {
			time.Sleep(timeout / 8)
			w.touch(b)
			if b.ctx.Err() != nil {
				t.Fatal("an attempt making progress was cancelled")
			}
		}
		start := time.Now()
		d, ok := expiredAfter(b, start, 10*timeout)
		if !ok || d < timeout {
			t.Fatalf("after its progress stopped: cancelled %v, after %v (timeout %v)", ok, d, timeout)
		}
	})

	t.Run("closed in time", func(t *testing.T) {
		bs := []*watchedBody{watched(t, w), watched(t, w), watched(t, w)}
		for _, b := range bs {
			w.add(b)
		}
		// Off the list from the middle, the end and the start.
		for _, i := range []int{1, 2, 0} {
			w.remove(bs[i])
		}
		if _, ok := expiredAfter(bs[0], time.Now(), 3*timeout); ok {
			t.Fatal("an attempt no longer watched was cancelled")
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.head != nil || w.armed {
			t.Fatal("the list is not empty, or its timer still armed, a tick after the last attempt")
		}
	})
}

// TestWatchdogTick: a sixteenth of the timeout, within 1 ms and 1 s.
func TestWatchdogTick(t *testing.T) {
	for _, tc := range []struct{ timeout, tick time.Duration }{
		{120 * time.Second, time.Second},
		{8 * time.Second, 500 * time.Millisecond},
		{10 * time.Millisecond, time.Millisecond},
	} {
		if got := newWatchdog(tc.timeout).tick; got != tc.tick {
			t.Errorf("timeout %v: tick %v, want %v", tc.timeout, got, tc.tick)
		}
	}
}
