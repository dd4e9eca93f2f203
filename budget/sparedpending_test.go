package budget

import (
	"testing"
	"time"

	"github.com/keygate/keygate/fault"
)

// TestSparedConfirmKeepsPendingInference401: a blind path's 401 (Spared)
// that comes while an inference 401 of the same key waits for its GET /key
// must not take the inference one's place: when GET /key then fails, the
// inference 401 stands as the key's (as it did before the Spared case),
// not dropped as the blind one would be.
func TestSparedConfirmKeepsPendingInference401(t *testing.T) {
	noLeaks(t)
	p, set, pool, u, clock := newPoller(t, 2)
	k := pool.Keys()[0]
	tr, err := set.For(k).Allow()
	if err != nil {
		t.Fatal(err)
	}
	inference := fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth, Retry: true}
	blind := inference
	blind.Spared = true
	tr.Hold(inference.Reason, inference.Status, clock().Add(5*time.Second))

	u.mu.Lock() // GET /key waits until both faults are in
	u.status["Bearer sk-or-v1-"+pad(1)] = 500
	before := u.polls.Load()
	p.Confirm(k, inference)
	for u.polls.Load() == before {
		time.Sleep(time.Millisecond)
	}
	p.Confirm(k, blind) // a client's GET /v1/keys meanwhile
	u.mu.Unlock()
	waitIdle(t, p, k, u, before)

	r, _, until := set.Rest(k)
	if r != fault.Auth || until.Sub(clock()) <= 5*time.Second {
		t.Fatalf("after an inference 401 whose GET /key failed: %v until %v; want the 401 standing as the key's rest", r, until)
	}
}

func pad(n int) string {
	s := "0000000000000000000000000000000000000000000000000000000000000000"
	d := []byte(s)
	d[len(d)-1] = byte('0' + n)
	return string(d)
}
