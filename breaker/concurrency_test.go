package breaker

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRealClockNotNeeded checks that moving only the injected clock is
// enough: gobreaker's own open period is 1ns of real time, over by the time
// anyone asks.
func TestRealClockNotNeeded(t *testing.T) {
	set, p, c := newSet(t, 1, Settings{RateLimitCooldown: time.Second, MaxCooldown: time.Second})
	b := set.For(p.Keys()[0])
	for i := range 2000 {
		allow(t, b).failFor(RateLimit, 0)
		c.Add(time.Second)
		tr, err := b.Allow()
		if err != nil {
			t.Fatalf("round %d: Allow right after the rest = %v", i, err)
		}
		if i%2 == 1 {
			tr.Success()
		} else {
			tr.failFor(RateLimit, 0)
			c.Add(time.Second)
			allow(t, b).Success()
		}
	}
}

func TestOneTrialUnderConcurrency(t *testing.T) {
	set, p, c := newSet(t, 1, Settings{})
	b := set.For(p.Keys()[0])
	allow(t, b).failFor(Auth, 0)
	c.Add(10 * time.Minute)
	var ok, busy atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			_, err := b.Allow()
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrTrialBusy):
				busy.Add(1)
			default:
				t.Errorf("Allow = %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || busy.Load() != 63 {
		t.Fatalf("%d trials allowed, %d busy; want 1 and 63", ok.Load(), busy.Load())
	}
}

func TestConcurrentInvariants(t *testing.T) {
	s := Settings{AuthCooldown: time.Second, RateLimitCooldown: 100 * time.Millisecond, MaxCooldown: 4 * time.Second}
	set, p, c := newSet(t, 1, s)
	b := set.For(p.Keys()[0])
	var stop atomic.Bool
	var watch sync.WaitGroup
	watch.Go(func() {
		last := int64(0)
		for !stop.Load() {
			until := p.Ledger().RestUntil(0)
			if until < last {
				t.Errorf("rest deadline went back from %d to %d", last, until)
				return
			}
			last = until
			if st := b.State(); st != Closed && st != HalfOpen && st != Open {
				t.Errorf("state %d", st)
			}
		}
	})
	var fails, resting atomic.Int32
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range 2000 {
				tr, err := b.Allow()
				if err != nil {
					if errors.Is(err, ErrResting) {
						resting.Add(1)
					} else if !errors.Is(err, ErrTrialBusy) {
						t.Errorf("Allow = %v", err)
					}
					c.Add(time.Duration(r.IntN(int(50 * time.Millisecond))))
					continue
				}
				switch r.IntN(4) {
				case 0:
					tr.Success()
				case 1:
					tr.Abandon()
				default:
					fails.Add(1)
					reason := Reason(1 + r.IntN(2))
					if rest := tr.failFor(reason, 0); rest <= 0 {
						t.Errorf("rest %v, want > 0", rest)
					}
					// The deadline in force may be another goroutine's,
					// set from a later clock reading than this one's;
					// every deadline read was set from a clock reading
					// taken before it, so the bound holds against a
					// clock read after it.
					until := p.Ledger().RestUntil(0)
					if limit := c.Now().Add(s.MaxCooldown).UnixNano(); until > limit {
						t.Errorf("rest deadline %d beyond now + MaxCooldown (%d)", until, limit)
					}
				}
				if n := b.Strikes(); n < 0 {
					t.Errorf("strikes %d", n)
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	watch.Wait()
	if fails.Load() == 0 || resting.Load() == 0 {
		t.Fatalf("%d fails, %d refusals while resting: the test exercised nothing", fails.Load(), resting.Load())
	}
	c.Add(s.MaxCooldown)
	allow(t, b).Success()
	if b.State() != Closed || b.Strikes() != 0 {
		t.Fatalf("after a successful trial: state %v, strikes %d", b.State(), b.Strikes())
	}
}
