package breaker

import (
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// facts records what a Set tells its Sink.
type facts struct {
	mu  sync.Mutex
	got []Fact
}

func (f *facts) Fact(x Fact) {
	f.mu.Lock()
	f.got = append(f.got, x)
	f.mu.Unlock()
}

func (f *facts) take() []Fact {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := f.got
	f.got = nil
	return got
}

// trials answers TryTrial from a fixed reply and counts the asks.
type trials struct {
	mu    sync.Mutex
	reply bool
	asked []time.Time
}

func (tr *trials) TryTrial(_ *keyring.Key, rest time.Time) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.asked = append(tr.asked, rest)
	return tr.reply
}

func TestSetTellsItsFacts(t *testing.T) {
	sink := &facts{}
	set, p, c := newSet(t, 3, Settings{Sink: sink})
	k := p.Keys()
	now := c.Now()
	label := set.SetAccount(k[0], "user_A")
	set.SetAccount(k[1], "user_A")
	cases := []struct {
		name string
		do   func()
		want []Fact
	}{
		{"key rest", func() { set.RestKey(k[2], fault.RateLimit, 429, now.Add(time.Minute)) },
			[]Fact{{Kind: KeyRested, Key: k[2], Reason: fault.RateLimit, Status: 429, Until: now.Add(time.Minute)}}},
		{"an earlier rest is no news", func() { set.RestKey(k[2], fault.RateLimit, 429, now.Add(time.Second)) }, nil},
		{"account rest", func() { set.RestAccount(k[0], fault.Credits, 402, now.Add(time.Hour)) },
			[]Fact{{Kind: AccountRested, Account: label, Reason: fault.Credits, Status: 402, Until: now.Add(time.Hour)}}},
		{"account lifted", func() { set.Lift(k[1], fault.Credits) },
			[]Fact{{Kind: AccountBack, Account: label, Until: now.Add(time.Hour)}}},
		{"a lift of nothing is no news", func() { set.Lift(k[1], fault.Credits) }, nil},
		{"free block", func() { set.BlockFree(k[0], now.Add(3*time.Hour)) },
			[]Fact{{Kind: FreeBlocked, Account: label, Reason: fault.FreeQuota, Until: now.Add(3 * time.Hour)}}},
		{"free unblocked", func() { set.UnblockFree(k[1], now) },
			[]Fact{{Kind: AccountBack, Account: label, Reason: fault.FreeQuota, Until: now.Add(3 * time.Hour)}}},
		{"key lifted", func() { set.Lift(k[2], fault.RateLimit) },
			[]Fact{{Kind: KeyBack, Key: k[2], Until: now.Add(time.Minute)}}},
	}
	sink.take()
	for _, tc := range cases {
		tc.do()
		got := sink.take()
		if len(got) != len(tc.want) {
			t.Fatalf("%s: told %+v, want %+v", tc.name, got, tc.want)
		}
		for i := range got {
			if got[i].Kind != tc.want[i].Kind || got[i].Key != tc.want[i].Key || got[i].Account != tc.want[i].Account ||
				got[i].Reason != tc.want[i].Reason || got[i].Status != tc.want[i].Status || !got[i].Until.Equal(tc.want[i].Until) {
				t.Errorf("%s: told %+v, want %+v", tc.name, got[i], tc.want[i])
			}
		}
	}
}

func TestAppliedFactsAreNotToldAgain(t *testing.T) {
	sink := &facts{}
	set, p, c := newSet(t, 3, Settings{Sink: sink})
	k := p.Keys()
	now := c.Now()
	label := AccountLabel("user_A")
	set.ApplyAccount(k[0], label)
	set.ApplyAccount(k[1], label)
	set.ApplyKeyRest(k[2], fault.Auth, 401, now.Add(time.Minute))
	set.ApplyAccountRest(label, fault.Credits, 402, now.Add(time.Hour))
	set.ApplyFreeBlock(label, now.Add(2*time.Hour))
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("applied facts were told again: %+v", got)
	}
	ns := now.UnixNano()
	for i := range k {
		if p.Available(k[i], ns) {
			t.Errorf("key %d available after the applied rests", i+1)
		}
	}
	if set.Account(k[1]) != label || set.FreeBlockedUntil(k[0]).IsZero() {
		t.Fatalf("account %q, free block %v", set.Account(k[1]), set.FreeBlockedUntil(k[0]))
	}
	// A key back (at millisecond precision) ends the rest it names, not a
	// later one.
	set.ApplyKeyBack(k[2], now.Add(time.Second))
	if p.Available(k[2], ns) {
		t.Fatal("a key back for an earlier rest ended a later one")
	}
	set.ApplyKeyBack(k[2], now.Add(time.Minute).Truncate(time.Millisecond))
	if !p.Available(k[2], ns) || set.For(k[2]).State() != Closed {
		t.Fatalf("key 3 after its key back: available %v, state %v", p.Available(k[2], ns), set.For(k[2]).State())
	}
	// A free block's end leaves the account's rest (free requests left
	// say nothing of its credits), though the rest ends before it.
	set.ApplyAccountBack(label, now.Add(2*time.Hour), true)
	if !set.FreeBlockedUntil(k[0]).IsZero() {
		t.Fatal("a free block's end did not lift the free block")
	}
	if p.Available(k[0], ns) {
		t.Fatal("a free block's end ended the account's credit rest")
	}
	set.ApplyFreeBlock(label, now.Add(2*time.Hour))
	set.ApplyAccountBack(label, now.Add(time.Hour), false)
	if set.FreeBlockedUntil(k[0]).IsZero() {
		t.Fatal("a rest's end lifted the free block")
	}
	if !p.Available(k[0], ns) {
		t.Fatal("account back did not end the account's rest")
	}
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("applied facts were told again: %+v", got)
	}
}

func TestOneTrialPerRestEnd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply bool
	}{{"this replica sends it", true}, {"another replica sends it", false}} {
		t.Run(tc.name, func(t *testing.T) {
			sink, tr := &facts{}, &trials{reply: tc.reply}
			set, p, c := newSet(t, 1, Settings{Sink: sink, Trials: tr, AuthCooldown: time.Minute})
			k := p.Keys()[0]
			b := set.For(k)
			// Closed: a call asks nobody.
			allow(t, b).Success()
			// Another replica's rest trips the breaker here too.
			until := c.Now().Add(time.Minute)
			set.ApplyKeyRest(k, fault.Auth, 401, until)
			denied(t, b, ErrResting)
			c.Add(time.Minute + time.Millisecond)
			sink.take()
			if !tc.reply {
				denied(t, b, ErrTrialBusy)
				denied(t, b, ErrTrialBusy) // not asked again so soon
				if len(tr.asked) != 1 || !tr.asked[0].Equal(until) {
					t.Fatalf("asked %v, want once for the rest until %v", tr.asked, until)
				}
				// The winner's key back closes it here.
				set.ApplyKeyBack(k, until)
				allow(t, b).Success()
				if len(tr.asked) != 1 || len(sink.take()) != 0 {
					t.Fatalf("asked %d times, told %d facts", len(tr.asked), len(sink.take()))
				}
				return
			}
			trial := allow(t, b)
			trial.Success()
			got := sink.take()
			if len(got) != 1 || got[0].Kind != KeyBack || !got[0].Until.Equal(until) {
				t.Fatalf("a trial's success told %+v, want its key back", got)
			}
			if b.State() != Closed {
				t.Fatalf("state %v after the trial", b.State())
			}
			allow(t, b).Success()
			if len(tr.asked) != 1 {
				t.Fatalf("asked %d times, want once", len(tr.asked))
			}
		})
	}
}

// sinkFunc is a Sink that calls itself.
type sinkFunc func(Fact)

func (f sinkFunc) Fact(x Fact) { f(x) }

// A trial that fails sends the key to its next rest before the breaker lets
// another call through: a call picked between the two (the old rest over,
// the breaker open and, after its nanosecond, half-open again) would be a
// second trial of the same rest, which this replica won already. The same
// for a trial held for confirmation, and a fault confirmed.
func TestNoSecondTrialWhileAFaultSettles(t *testing.T) {
	auth := fault.Verdict{Status: 401, Reason: fault.Auth, Scope: fault.Key}
	for _, tc := range []struct {
		name   string
		settle func(set *Set, k *keyring.Key, trial Trial)
	}{
		{"trial fails", func(_ *Set, _ *keyring.Key, trial Trial) { trial.Fail(auth) }},
		{"trial held", func(set *Set, _ *keyring.Key, trial Trial) { trial.Hold(fault.Auth, 401, set.Now().Add(5*time.Second)) }},
		{"fault confirmed", func(set *Set, k *keyring.Key, trial Trial) {
			trial.Abandon()
			set.Confirmed(k, auth)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b *Breaker
			var racing []error
			armed := false
			// Another request picks the key while the fault settles:
			// when the new rest is told, before the ledger has it.
			sink := sinkFunc(func(f Fact) {
				if !armed || f.Kind != KeyRested {
					return
				}
				armed = false
				time.Sleep(time.Millisecond) // gobreaker's open state times out
				second, err := b.Allow()
				if err == nil {
					second.Abandon()
				}
				racing = append(racing, err)
			})
			set, p, c := newSet(t, 1, Settings{Trials: &trials{reply: true}, Sink: sink, AuthCooldown: time.Second})
			k := p.Keys()[0]
			b = set.For(k)
			allow(t, b).Fail(auth)
			c.Add(2 * time.Second)
			trial := allow(t, b) // the rest's one trial, this replica's
			armed = true
			tc.settle(set, k, trial)
			if len(racing) != 1 {
				t.Fatalf("the new rest was told %d times, want once", len(racing))
			}
			if racing[0] == nil {
				t.Fatal("a second call went out as the rest's trial while the first trial's fault settled")
			}
			denied(t, b, ErrResting)
		})
	}
}
