package share

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// backReplica is one replica on a real Redis: breakers, poller, adapter.
type backReplica struct {
	key    *keyring.Key
	set    *breaker.Set
	poller *budget.Poller
	// armed: count in wiped each re-read or push of another replica's
	// "back" fact after which the key is found out of rest.
	armed atomic.Bool
	wiped atomic.Int64
}

// newBackReplica is a replica on the Redis at url, polling keyURL, with
// the test key under id 1.
func newBackReplica(t *testing.T, url, keyURL string) *backReplica {
	t.Helper()
	return backReplicaAt(t, url, keyURL, 1)
}

// backReplicaAt is newBackReplica with the key under id (replicas may
// number a key differently mid rolling reload).
func backReplicaAt(t *testing.T, url, keyURL string, id int) *backReplica {
	t.Helper()
	store, err := cluster.NewRedis(cluster.Options{URL: url, HealInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ad := New(store, nil)
	pool, err := keyring.New([]keyring.Entry{{ID: id, Secret: secret.New("sk-or-v1-" + "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := breaker.NewSet(pool, breaker.Settings{Sink: ad, Trials: ad})
	poller := budget.New(pool, set, budget.Options{URL: keyURL, Share: ad})
	ad.Attach(set, poller, pool.Keys())
	x := &backReplica{key: pool.Keys()[0], set: set, poller: poller}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = store.Run(ctx, func(ev cluster.Event) {
			ad.Apply(ev)
			if (ev.Kind == cluster.AccountBack || ev.Kind == cluster.TrialResult) && x.armed.Load() {
				if r, _, _ := set.Rest(x.key); r == fault.NoReason {
					x.wiped.Add(1)
				}
			}
		})
		close(done)
	}()
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

// TestFreeUnblockKeepsCreditRest: an account rests for its credits (a
// confirmed 402 openrouter_credits, 10 minutes) and its free models are
// blocked for the day (a 429 free-models-per-day). A budget poll then shows
// free requests left, which ends the day's free-model block: that says
// nothing of the account's balance, and the README says an account resting
// for credits stays so ("GET /key does not show the balance"; "A
// free-model block and an account's rest are kept apart, each with its own
// deadline"). With REDIS_URL set, the poll's AccountBack (Until = the free
// block's end, midnight) must end the free block only, on both replicas
// (it ended the credit rest too, on the other replica and, through the
// re-read, on the one that polled).
func TestFreeUnblockKeepsCreditRest(t *testing.T) {
	rs := redistest.Start(t)
	keyAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":{"limit":null,"limit_remaining":null,"usage":1,"usage_daily":0,"is_free_tier":true,` +
			`"creator_user_id":"user_A","free_model_daily_requests":{"used":10,"limit":50,"remaining":40}}}`))
	}))
	defer keyAPI.Close()
	a := newBackReplica(t, rs.URL(), keyAPI.URL+"/key")
	b := newBackReplica(t, rs.URL(), keyAPI.URL+"/key")

	now := time.Now()
	creditsUntil := now.Add(10 * time.Minute)
	a.set.RestAccount(a.key, fault.Credits, http.StatusPaymentRequired, creditsUntil)
	a.set.BlockFree(a.key, relay.NextUTCMidnight(now))
	waitBack(t, "credit rest and free block reach replica b", func() bool {
		r, _, _ := b.set.Rest(b.key)
		return r == fault.Credits && !b.set.FreeBlockedUntil(b.key).IsZero()
	})

	// A's budget poll: free requests left today.
	a.poller.PollNow(a.key)
	waitBack(t, "the poll lifts the free block on a", func() bool { return a.set.FreeBlockedUntil(a.key).IsZero() })
	time.Sleep(time.Second) // pushes and a few re-reads

	for name, x := range map[string]*backReplica{"a (polled)": a, "b": b} {
		r, _, until := x.set.Rest(x.key)
		if r != fault.Credits || until.Before(creditsUntil.Add(-time.Second)) {
			t.Errorf("replica %s: the account's credit rest (until %s) was ended by a poll that only showed free requests left: rest now %v until %v",
				name, creditsUntil.Format(time.TimeOnly), r, until)
		}
	}
}

func waitBack(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFreeUnblockKeepsCreditRestAlone is the control: the same poll on
// a lone replica (no Redis) leaves the credit rest standing.
func TestFreeUnblockKeepsCreditRestAlone(t *testing.T) {
	keyAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data":{"limit":null,"limit_remaining":null,"creator_user_id":"user_A","free_model_daily_requests":{"used":10,"limit":50,"remaining":40}}}`))
	}))
	defer keyAPI.Close()
	pool, _ := keyring.New([]keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-" + "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a")}}, nil)
	set := breaker.NewSet(pool, breaker.Settings{})
	poller := budget.New(pool, set, budget.Options{URL: keyAPI.URL + "/key"})
	k := pool.Keys()[0]
	set.SetAccount(k, "user_A")
	now := time.Now()
	set.RestAccount(k, fault.Credits, http.StatusPaymentRequired, now.Add(10*time.Minute))
	set.BlockFree(k, relay.NextUTCMidnight(now))
	poller.PollNow(k)
	waitBack(t, "the poll lifts the free block", func() bool { return set.FreeBlockedUntil(k).IsZero() })
	if r, _, _ := set.Rest(k); r != fault.Credits {
		t.Fatalf("alone, the credit rest ended too: %v", r)
	}
}

// TestFreeUnblockKeepsLaterRest: the AccountBack of that poll stays
// in Redis for a minute and every replica re-reads it each heal: an
// account rest learned after it (here a platform 429 on replica b, 30 s)
// must stand on every replica (it was ended within a second).
func TestFreeUnblockKeepsLaterRest(t *testing.T) {
	rs := redistest.Start(t)
	keyAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data":{"limit":null,"limit_remaining":null,"creator_user_id":"user_A","free_model_daily_requests":{"used":10,"limit":50,"remaining":40}}}`))
	}))
	defer keyAPI.Close()
	a := newBackReplica(t, rs.URL(), keyAPI.URL+"/key")
	b := newBackReplica(t, rs.URL(), keyAPI.URL+"/key")
	a.set.BlockFree(a.key, relay.NextUTCMidnight(time.Now()))
	waitBack(t, "free block reaches b", func() bool { return !b.set.FreeBlockedUntil(b.key).IsZero() })
	a.poller.PollNow(a.key)
	waitBack(t, "the poll lifts the free block on b", func() bool { return b.set.FreeBlockedUntil(b.key).IsZero() })

	// Later, b learns a platform rate limit of the account (30 s).
	time.Sleep(300 * time.Millisecond)
	until := time.Now().Add(30 * time.Second)
	b.set.RestAccount(b.key, fault.RateLimit, http.StatusTooManyRequests, until)
	waitBack(t, "the rest reaches a", func() bool { r, _, _ := a.set.Rest(a.key); return r == fault.RateLimit })
	a.armed.Store(true)
	b.armed.Store(true)
	watchRest(t, map[string]*backReplica{"a": a, "b (learned it)": b}, "the account's 30s rate-limit rest learned after the poll")
}

// TestCapLiftKeepsLaterKeyRest: the same with a key's own rest. A key
// rested until its cap's monthly reset is lifted by a poll that shows
// credit (KeyBack, Until = the month's end, kept in Redis for a minute and
// re-read every heal); a 401 rest of the key learned afterwards on replica
// b (10 minutes) must stand on every replica: the back ends only the rest
// whose deadline it names (it ended any shorter one within a second).
func TestCapLiftKeepsLaterKeyRest(t *testing.T) {
	rs := redistest.Start(t)
	keyAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data":{"limit":10,"limit_remaining":4,"limit_reset":"monthly","creator_user_id":"user_A"}}`))
	}))
	defer keyAPI.Close()
	a := newBackReplica(t, rs.URL(), keyAPI.URL+"/key")
	b := newBackReplica(t, rs.URL(), keyAPI.URL+"/key")
	now := time.Now()
	a.set.RestKey(a.key, fault.KeyLimit, http.StatusPaymentRequired, budget.NextReset("monthly", now))
	waitBack(t, "cap rest reaches b", func() bool { r, _, _ := b.set.Rest(b.key); return r == fault.KeyLimit })
	a.poller.PollNow(a.key) // the cap was raised: credit left
	waitBack(t, "the poll lifts the cap rest on b", func() bool { r, _, _ := b.set.Rest(b.key); return r == fault.NoReason })

	time.Sleep(300 * time.Millisecond)
	until := time.Now().Add(10 * time.Minute)
	b.set.RestKey(b.key, fault.Auth, http.StatusUnauthorized, until) // a confirmed 401 learned on b
	waitBack(t, "the rest reaches a", func() bool { r, _, _ := a.set.Rest(a.key); return r == fault.Auth })
	a.armed.Store(true)
	b.armed.Store(true)
	watchRest(t, map[string]*backReplica{"a": a, "b (learned it)": b}, "the key's 10m auth rest learned after the cap was lifted")
}

// watchRest samples each replica's key for 1.5 s (several re-reads) and
// reports every replica on which the rest was ever gone: a pick then sends
// a call on a key (or account) that should rest.
func watchRest(t *testing.T, replicas map[string]*backReplica, what string) {
	t.Helper()
	gone := map[string]int{}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		for name, x := range replicas {
			if r, _, _ := x.set.Rest(x.key); r == fault.NoReason {
				gone[name]++
			}
		}
	}
	for name, n := range gone {
		t.Errorf("replica %s: %s was lifted (key back in rotation) in %d of the samples over 1.5s", name, what, n)
	}
	for name, x := range replicas {
		if n := x.wiped.Load(); n > 0 {
			t.Errorf("replica %s: %s was ended %d times in 1.5s by the re-read of an older 'back' fact (the rest may be re-read after it in the same heal, or not: Redis' SMEMBERS order decides)", name, what, n)
		}
	}
}
