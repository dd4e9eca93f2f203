package budget

import (
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// confirmNow holds k for v as the relay does, asks p to confirm it, and
// waits for the confirmation's poll to end.
func confirmNow(t *testing.T, p *Poller, k *keyring.Key, v fault.Verdict, now time.Time, u *upstream) {
	t.Helper()
	tr, err := p.set.For(k).Allow()
	if err != nil {
		t.Fatal(err)
	}
	tr.Hold(v.Reason, v.Status, now.Add(5*time.Second))
	before := u.polls.Load()
	p.Confirm(k, v)
	waitIdle(t, p, k, u, before)
}

// waitIdle waits until a poll of k after before has ended.
func waitIdle(t *testing.T, p *Poller, k *keyring.Key, u *upstream, before int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for u.polls.Load() == before || p.slots[k.Slot()].polling.Load() || p.slots[k.Slot()].pending.Load() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no poll ended within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A cap with next to nothing left, the way a 402 of it says: confirmed
// spent, it rests until its reset, and routine polls showing the same
// figures keep it resting; a cap nearly dry by the 402 but with more than
// next to nothing left is noted (calls larger than it can pay go
// elsewhere) rather than tried by every such call.
func TestNearlyDryCap(t *testing.T) {
	const (
		dry    = `{"data":{"limit":1,"limit_remaining":0.0005,"limit_reset":"daily","usage":0.9995,"creator_user_id":"u"}}`
		cents  = `{"data":{"limit":5,"limit_remaining":0.005,"limit_reset":"monthly","usage":4.995,"creator_user_id":"u"}}`
		afford = `{"error":{"code":402,"message":"This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, but can only afford 500. To increase, visit https://openrouter.ai/settings/keys and create a key with a higher monthly limit","metadata":{"limit_source":"openrouter_key_limit"}}}`
		spent  = `{"error":{"code":402,"message":"Key limit exceeded","metadata":{"limit_source":"openrouter_key_limit"}}}`
	)
	cases := []struct {
		name, figures, body string
		// rests: the key rests until its reset after the confirmation
		// and after a routine poll; noted: an afford note of 500 tokens.
		rests, noted bool
	}{
		{"spent cap, dry figures", dry, spent, true, false},
		{"afford 500, dry figures", dry, afford, true, false},
		{"afford 500, half a cent left", cents, afford, false, true},
		{"spent by the 402, half a cent left", cents, spent, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, set, pool, u, clock := newPoller(t, 2)
			k := pool.Keys()[0]
			u.set(1, 0, tc.figures)
			v := fault.Classify(402, nil, []byte(tc.body), clock())
			if v.Scope != fault.Key || v.Reason != fault.KeyLimit {
				t.Fatalf("verdict %+v, want the key's cap", v)
			}
			confirmNow(t, p, k, v, clock(), u)
			check := func(when string) {
				t.Helper()
				r, _, until := set.Rest(k)
				resting := !pool.Available(k, clock().UnixNano())
				if resting != tc.rests {
					t.Fatalf("%s: resting %v (%v until %v), want %v", when, resting, r, until, tc.rests)
				}
				if tc.rests {
					if want := NextReset("daily", clock()); !until.Equal(want) {
						t.Fatalf("%s: rests until %v, want %v", when, until, want)
					}
				}
			}
			check("after the confirmation")
			p.settle(k, p.mustPoll(t, k), counted{}, nil)
			check("after a routine poll with the same figures")
			if noted := set.AffordNoted(); noted != tc.noted {
				t.Fatalf("afford noted %v, want %v", noted, tc.noted)
			}
			if tc.noted {
				for _, c := range []struct {
					tokens int
					skip   bool
				}{{400, false}, {600, true}, {0, true}} {
					var ex keyring.Exclude
					set.SkipUnaffordable(&ex, c.tokens, false, clock().UnixNano())
					if ex.Has(k.Slot()) != c.skip {
						t.Errorf("a call of %d max_tokens skips the key: %v, want %v", c.tokens, ex.Has(k.Slot()), c.skip)
					}
				}
			}
		})
	}
}

// A fault that comes to be confirmed as a poll of its key ends (after
// settle looked for one, before the poll is marked done) gets a poll of
// its own, rather than waiting for the key's next turn past its hold.
func TestConfirmAtAPollsEnd(t *testing.T) {
	p, set, pool, u, clock := newPoller(t, 2)
	k := pool.Keys()[0]
	u.set(1, 401, "")
	v := fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth, Retry: true}
	tr, err := set.For(k).Allow()
	if err != nil {
		t.Fatal(err)
	}
	tr.Hold(v.Reason, v.Status, clock().Add(5*time.Second))
	s := &p.slots[k.Slot()]
	s.polling.Store(true) // a poll is out, past settle
	p.Confirm(k, v)
	if u.polls.Load() != 0 || s.pending.Load() == nil {
		t.Fatalf("with a poll out, Confirm polled (%d) or left nothing pending", u.polls.Load())
	}
	p.polled(k) // that poll ends
	waitIdle(t, p, k, u, 0)
	if r, _, _ := set.Rest(k); r != fault.Auth {
		t.Fatalf("the 401 was not decided: rest %v", r)
	}
}
