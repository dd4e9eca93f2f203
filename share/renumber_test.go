package share

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

const renumberSecret = "sk-or-v1-" + "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a"

// replicaUnder is newBackReplica with the key under id.
func replicaUnder(t *testing.T, url, keyURL string, id int) *backReplica {
	t.Helper()
	store, err := cluster.NewRedis(cluster.Options{URL: url, HealInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ad := New(store, nil)
	pool, err := keyring.New([]keyring.Entry{{ID: id, Secret: secret.New(renumberSecret)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := breaker.NewSet(pool, breaker.Settings{Sink: ad, Trials: ad})
	poller := budget.New(pool, set, budget.Options{URL: keyURL, Share: ad})
	ad.Attach(set, poller, pool.Keys())
	x := &backReplica{key: pool.Keys()[0], set: set, poller: poller}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = store.Run(ctx, ad.Apply); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = store.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for !store.Up() {
		if time.Now().After(deadline) {
			t.Fatal("redis not up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	set.SetAccount(x.key, "user_A")
	return x
}

// TestCapLiftAcrossIds: the same key numbered 1 on replica a and 2 on
// replica b (mid rolling reload, or a's own rest written before a reload
// renumbered it). a rests it until its cap's monthly reset; b's budget poll
// shows the cap raised and lifts it. The lift must end the rest on both
// replicas and stay ended: the README says facts follow the key (its
// digest), not its id.
func TestCapLiftAcrossIds(t *testing.T) {
	rs := redistest.Start(t)
	keyAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data":{"limit":10,"limit_remaining":4,"limit_reset":"monthly","creator_user_id":"user_A"}}`))
	}))
	defer keyAPI.Close()
	a := replicaUnder(t, rs.URL(), keyAPI.URL+"/key", 1)
	b := replicaUnder(t, rs.URL(), keyAPI.URL+"/key", otherID)
	now := time.Now()
	a.set.RestKey(a.key, fault.KeyLimit, http.StatusPaymentRequired, budget.NextReset("monthly", now))
	waitBack(t, "cap rest reaches b", func() bool { r, _, _ := b.set.Rest(b.key); return r == fault.KeyLimit })
	b.poller.PollNow(b.key) // the cap was raised: credit left
	waitBack(t, "the poll lifts the cap rest on b", func() bool { r, _, _ := b.set.Rest(b.key); return r == fault.NoReason })
	time.Sleep(200 * time.Millisecond)
	rested := map[string]int{}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		for name, x := range map[string]*backReplica{"a (id 1)": a, "b (id 2, polled)": b} {
			if r, _, _ := x.set.Rest(x.key); r != fault.NoReason {
				rested[name]++
			}
		}
	}
	for name, n := range rested {
		t.Errorf("replica %s: the lifted cap rest came back (key out of rotation) in %d samples over 1.5s", name, n)
	}
	out, _ := rs.Do("KEYS", "*")
	t.Logf("redis keys: %s", out)
}

// otherID is the key's id on the second replica.
const otherID = 2
