package breaker

import (
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

var epoch = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(epoch.UnixNano())
	return c
}

func (c *clock) Now() time.Time               { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration)          { c.ns.Add(int64(d)) }
func (c *clock) Until(ns int64) time.Duration { return time.Duration(ns - c.ns.Load()) }

func newSet(t testing.TB, keys int, s Settings) (*Set, *keyring.Pool, *clock) {
	t.Helper()
	entries := make([]keyring.Entry, keys)
	for i := range entries {
		entries[i] = keyring.Entry{ID: i + 1, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", i))}
	}
	p, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	s.Now = c.Now
	return NewSet(p, s), p, c
}

func allow(t *testing.T, b *Breaker) Trial {
	t.Helper()
	tr, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow: %v (state %v)", err, b.State())
	}
	return tr
}

func denied(t *testing.T, b *Breaker, want error) {
	t.Helper()
	if _, err := b.Allow(); !errors.Is(err, want) {
		t.Fatalf("Allow = %v, want %v", err, want)
	}
}

func TestStateNames(t *testing.T) {
	for s, want := range map[State]string{Closed: "closed", HalfOpen: "half-open", Open: "open"} {
		if s.String() != want {
			t.Errorf("State(%d) = %q", s, s)
		}
	}
}

// report settles tr as the gateway does for an upstream status.
func report(tr Trial, status int, hint time.Duration) time.Duration {
	if v := fault.Classify(status, http.Header{}, nil, tr.b.settings.Now()); v.Learns() {
		return tr.failFor(v.Reason, hint)
	}
	tr.Success()
	return 0
}

func TestStatusOpensOrNot(t *testing.T) {
	tests := []struct {
		status int
		rest   time.Duration // 0: stays closed
	}{
		{200, 0}, {404, 0}, {500, 0}, {502, 0}, {503, 0},
		// A 403 is the request's (moderation, guardrail): the key stays.
		{403, 0},
		{401, 10 * time.Minute}, {402, 10 * time.Minute},
		{429, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			set, p, c := newSet(t, 2, Settings{})
			b := set.For(p.Keys()[0])
			if got := report(allow(t, b), tt.status, 0); got != tt.rest {
				t.Fatalf("rest %v, want %v", got, tt.rest)
			}
			if tt.rest == 0 {
				if b.State() != Closed || !p.Available(p.Keys()[0], c.ns.Load()) {
					t.Fatalf("state %v after %d", b.State(), tt.status)
				}
				allow(t, b).Success()
				return
			}
			if b.State() != Open || p.Available(p.Keys()[0], c.ns.Load()) {
				t.Fatalf("state %v after %d", b.State(), tt.status)
			}
			if got := c.Until(p.Ledger().RestUntil(0)); got != tt.rest {
				t.Fatalf("ledger rest %v, want %v", got, tt.rest)
			}
			denied(t, b, ErrResting)
			if other := set.For(p.Keys()[1]); other.State() != Closed {
				t.Fatalf("the other key is %v", other.State())
			}
		})
	}
}

func TestRestThenOneTrial(t *testing.T) {
	for _, outcome := range []string{"success", "fail", "abandon"} {
		t.Run(outcome, func(t *testing.T) {
			set, p, c := newSet(t, 1, Settings{AuthCooldown: time.Minute})
			b := set.For(p.Keys()[0])
			allow(t, b).failFor(Auth, 0)
			for _, d := range []time.Duration{0, time.Second, time.Minute - time.Second - 1} {
				c.Add(d)
				if b.State() != Open {
					t.Fatalf("state %v during the rest", b.State())
				}
				denied(t, b, ErrResting)
			}
			c.Add(1) // exactly at the deadline: back
			if b.State() != HalfOpen {
				t.Fatalf("state %v after the rest", b.State())
			}
			tr := allow(t, b)
			for range 3 {
				denied(t, b, ErrTrialBusy)
			}
			if b.State() != HalfOpen {
				t.Fatalf("state %v during the trial", b.State())
			}
			switch outcome {
			case "success":
				tr.Success()
				if b.State() != Closed || b.Strikes() != 0 {
					t.Fatalf("state %v, strikes %d after success", b.State(), b.Strikes())
				}
				a, bb := allow(t, b), allow(t, b) // closed: no trial limit
				a.Success()
				bb.Success()
			case "fail":
				if rest := tr.failFor(Auth, 0); rest != 2*time.Minute {
					t.Fatalf("rest %v after a failed trial, want 2m", rest)
				}
				if b.State() != Open || b.Strikes() != 1 {
					t.Fatalf("state %v, strikes %d after failed trial", b.State(), b.Strikes())
				}
				denied(t, b, ErrResting)
			case "abandon":
				tr.Abandon()
				if b.State() != HalfOpen || b.Strikes() != 0 {
					t.Fatalf("state %v, strikes %d after abandon", b.State(), b.Strikes())
				}
				allow(t, b).Success() // the slot is free again
				if b.State() != Closed {
					t.Fatalf("state %v", b.State())
				}
			}
		})
	}
}

func TestFailedTrialsDouble(t *testing.T) {
	const m = time.Minute
	tests := []struct {
		name   string
		s      Settings
		reason Reason
		hint   time.Duration
		want   []time.Duration // the first rest, then after each failed trial
	}{
		{"auth to the cap", Settings{AuthCooldown: 10 * m, MaxCooldown: time.Hour}, Auth, 0,
			[]time.Duration{10 * m, 20 * m, 40 * m, 60 * m, 60 * m}},
		{"cap below the first rest", Settings{AuthCooldown: 10 * m, MaxCooldown: 5 * m}, Auth, 0,
			[]time.Duration{10 * m, 10 * m, 10 * m}},
		{"rate limit default", Settings{}, RateLimit, 0,
			[]time.Duration{30 * time.Second, m, 2 * m, 4 * m, 8 * m, 16 * m, 32 * m, 60 * m, 60 * m}},
		{"rate limit hint", Settings{MaxCooldown: 30 * time.Second}, RateLimit, 5 * time.Second,
			[]time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"hint above the cap", Settings{MaxCooldown: m}, RateLimit, 2 * time.Hour,
			[]time.Duration{2 * time.Hour, 2 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, p, c := newSet(t, 1, tt.s)
			b := set.For(p.Keys()[0])
			for i, want := range tt.want {
				if i > 0 {
					if b.State() != HalfOpen {
						t.Fatalf("state %v after rest %d", b.State(), i)
					}
				}
				if rest := allow(t, b).failFor(tt.reason, tt.hint); rest != want {
					t.Fatalf("rest %d = %v, want %v", i, rest, want)
				}
				if b.Strikes() != i {
					t.Fatalf("strikes %d, want %d", b.Strikes(), i)
				}
				c.Add(want)
			}
			allow(t, b).Success()
			if b.Strikes() != 0 || b.State() != Closed {
				t.Fatalf("strikes %d, state %v after success", b.Strikes(), b.State())
			}
			if rest := allow(t, b).failFor(tt.reason, tt.hint); rest != tt.want[0] {
				t.Fatalf("rest after recovery %v, want %v", rest, tt.want[0])
			}
		})
	}
}

func TestRestFromHintOrReason(t *testing.T) {
	s := Settings{AuthCooldown: 7 * time.Minute, RateLimitCooldown: 45 * time.Second}
	tests := []struct {
		name   string
		s      Settings
		reason Reason
		hint   time.Duration
		want   time.Duration
	}{
		{"rate limit, no hint", s, RateLimit, 0, 45 * time.Second},
		{"rate limit, hint", s, RateLimit, 3 * time.Second, 3 * time.Second},
		{"rate limit, negative hint", s, RateLimit, -time.Second, 45 * time.Second},
		{"rate limit, long hint", s, RateLimit, 20 * time.Hour, 20 * time.Hour},
		{"auth", s, Auth, 0, 7 * time.Minute},
		{"auth ignores a hint", s, Auth, 3 * time.Second, 7 * time.Minute},
		{"default auth", Settings{}, Auth, 0, 10 * time.Minute},
		{"default rate limit", Settings{}, RateLimit, 0, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, p, c := newSet(t, 1, tt.s)
			if rest := allow(t, set.For(p.Keys()[0])).failFor(tt.reason, tt.hint); rest != tt.want {
				t.Fatalf("rest %v, want %v", rest, tt.want)
			}
			if got := c.Until(p.Ledger().RestUntil(0)); got != tt.want {
				t.Fatalf("ledger rest %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLaterDeadlineWins(t *testing.T) {
	tests := []struct {
		name         string
		first, later Reason
		hint         time.Duration // of the later fault
		want         time.Duration // rest in force after the later fault
	}{
		{"short 429 after 401", Auth, RateLimit, 5 * time.Second, 10 * time.Minute},
		{"401 after short 429", RateLimit, Auth, 0, 10 * time.Minute},
		{"long 429 after 401", Auth, RateLimit, 20 * time.Hour, 20 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, p, c := newSet(t, 1, Settings{})
			b := set.For(p.Keys()[0])
			t1, t2 := allow(t, b), allow(t, b) // two calls out while closed
			t1.failFor(tt.first, 5*time.Second)
			c.Add(time.Second)
			if rest := t2.failFor(tt.later, tt.hint); rest != tt.want-time.Second && rest != tt.want {
				t.Fatalf("rest %v, want %v", rest, tt.want)
			}
			if b.Strikes() != 0 {
				t.Fatalf("a late fault of an old call counted as a failed trial")
			}
		})
	}
}

func TestStaleOutcomesIgnored(t *testing.T) {
	set, p, c := newSet(t, 1, Settings{RateLimitCooldown: time.Second})
	b := set.For(p.Keys()[0])
	early := allow(t, b)
	allow(t, b).failFor(RateLimit, 0)
	c.Add(time.Second)
	early.Success() // began before the trip: says nothing of the key now
	if b.State() != HalfOpen {
		t.Fatalf("state %v after a stale success", b.State())
	}
	allow(t, b).Success()
	if b.State() != Closed {
		t.Fatalf("state %v", b.State())
	}
}

func TestSetClockAndDefaults(t *testing.T) {
	set, p, c := newSet(t, 3, Settings{})
	if !set.Now().Equal(epoch) {
		t.Fatalf("Now = %v", set.Now())
	}
	c.Add(time.Hour)
	if !set.Now().Equal(epoch.Add(time.Hour)) {
		t.Fatal("Now does not follow the injected clock")
	}
	seen := map[*Breaker]bool{}
	for _, k := range p.Keys() {
		seen[set.For(k)] = true
	}
	if len(seen) != 3 {
		t.Fatal("keys share a breaker")
	}
	s := Settings{}
	s.defaults()
	if s.AuthCooldown != 10*time.Minute || s.RateLimitCooldown != 30*time.Second || s.MaxCooldown != time.Hour || s.Now == nil {
		t.Fatalf("defaults %+v", s)
	}
}

// failFor reports a fault of reason r with a reset hint of hint from now
// (0: none), as a verdict would carry it.
func (t Trial) failFor(r Reason, hint time.Duration) time.Duration {
	v := fault.Verdict{Reason: r, Scope: fault.Key}
	if hint > 0 {
		v.Until = t.b.settings.Now().Add(hint)
	}
	return t.Fail(v)
}
