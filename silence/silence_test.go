package silence_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/silence"
)

// expirer records when it was told its entry expired.
type expirer chan time.Time

func (x expirer) Expire() { x <- time.Now() }

// expiredAfter waits up to limit for x and returns how long it took from
// start; ok is false when it was not told.
func expiredAfter(x expirer, start time.Time, limit time.Duration) (d time.Duration, ok bool) {
	select {
	case at := <-x:
		return at.Sub(start), true
	case <-time.After(limit):
		return 0, false
	}
}

// TestWatch: an entry silent for the timeout expires, never before it; one
// that makes progress does not; an entry removed in time does not, and
// Remove tells which did; once the list is empty the timer stops and no
// goroutine is left.
func TestWatch(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const timeout = 80 * time.Millisecond
	w := silence.New(timeout)

	t.Run("silent", func(t *testing.T) {
		var e silence.Entry
		x := make(expirer, 1)
		start := time.Now()
		w.Add(&e, x)
		d, ok := expiredAfter(x, start, 10*timeout)
		if !ok {
			t.Fatal("a silent entry did not expire")
		}
		// Scheduling may delay the expiry on a loaded machine, never
		// bring it forward.
		if d < timeout {
			t.Fatalf("expired after %v of silence, before the timeout %v", d, timeout)
		}
		if !w.Remove(&e) {
			t.Fatal("Remove does not tell that the entry expired")
		}
	})

	t.Run("progress keeps it", func(t *testing.T) {
		var e silence.Entry
		x := make(expirer, 1)
		w.Add(&e, x)
		end := time.Now().Add(4 * timeout)
		for time.Now().Before(end) {
			time.Sleep(timeout / 8)
			w.Touch(&e)
			if len(x) > 0 {
				t.Fatal("an entry making progress expired")
			}
		}
		d, ok := expiredAfter(x, time.Now(), 10*timeout)
		if !ok || d < timeout {
			t.Fatalf("after its progress stopped: expired %v, after %v (timeout %v)", ok, d, timeout)
		}
	})

	t.Run("removed in time", func(t *testing.T) {
		es := make([]silence.Entry, 3)
		x := make(expirer, 3)
		for i := range es {
			w.Add(&es[i], x)
		}
		// Off the list from the middle, the end and the start.
		for _, i := range []int{1, 2, 0} {
			if w.Remove(&es[i]) {
				t.Fatalf("entry %d removed at once is said to have expired", i)
			}
		}
		if _, ok := expiredAfter(x, time.Now(), 3*timeout); ok {
			t.Fatal("an entry no longer watched expired")
		}
	})
}

// TestTick: a sixteenth of the timeout, within 1 ms and 1 s.
func TestTick(t *testing.T) {
	for _, tc := range []struct{ timeout, tick time.Duration }{
		{120 * time.Second, time.Second},
		{8 * time.Second, 500 * time.Millisecond},
		{80 * time.Millisecond, 5 * time.Millisecond},
		{10 * time.Millisecond, time.Millisecond},
	} {
		if got := silence.Tick(tc.timeout); got != tc.tick {
			t.Errorf("timeout %v: tick %v, want %v", tc.timeout, got, tc.tick)
		}
	}
}

// BenchmarkTouch is a read's note of progress, with other goroutines
// adding and removing entries meanwhile as calls start and end.
func BenchmarkTouch(b *testing.B) {
	w := silence.New(time.Minute)
	b.RunParallel(func(pb *testing.PB) {
		var e silence.Entry
		w.Add(&e, nopExpirer{})
		defer w.Remove(&e)
		for i := 0; pb.Next(); i++ {
			w.Touch(&e)
			if i%64 == 0 {
				var other silence.Entry
				w.Add(&other, nopExpirer{})
				w.Remove(&other)
			}
		}
	})
}

type nopExpirer struct{}

func (nopExpirer) Expire() {}
