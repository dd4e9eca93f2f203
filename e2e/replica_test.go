package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/simulator"
)

const (
	paidModel = "openai/gpt-4o-mini"
	freeModel = "meta-llama/llama-3.3-70b-instruct:free"
)

// startSim runs a simulator for the rest of t.
func startSim(t *testing.T, o simulator.Options) *simulator.Server {
	t.Helper()
	sim, err := simulator.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// startFleet runs n replicas of bin with env.
func startFleet(t *testing.T, bin string, n int, env []string) []*replica {
	t.Helper()
	fleet := make([]*replica, n)
	for i := range fleet {
		fleet[i] = startReplica(t, bin, env...)
	}
	return fleet
}

// learnRevoked sends calls to first until the revoked key has had its one
// call (or, with budget polls on, its start-up GET /key rested it), then
// waits until every other replica keeps it out.
func learnRevoked(t *testing.T, sim *simulator.Server, fleet []*replica, revoked string, id int) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; sim.Stats().Keys[revoked].Requests == 0 && !resting(t, fleet[0].url, id); i++ {
		if i > 10 {
			t.Fatal("the revoked key was never picked")
		}
		if code, _ := chat(client, fleet[0].url, paidModel); code != http.StatusOK {
			t.Fatalf("call on replica 0: %d", code)
		}
	}
	for _, r := range fleet[1:] {
		waitFor(t, 5*time.Second, "key "+string(rune('0'+id))+" to rest on "+r.url, func() bool { return resting(t, r.url, id) })
	}
}

// TestReplicas runs fleets of real keygate processes sharing one real
// redis-server and one simulated upstream.
func TestReplicas(t *testing.T) {
	bin := buildKeygate(t)

	t.Run("a revoked key is called once pool-wide", func(t *testing.T) {
		keys := testKeys(3)
		sim := startSim(t, simulator.Options{Keys: map[string]simulator.Profile{keys[0]: {}, keys[1]: {Status: 401}, keys[2]: {}}})
		rs := redistest.Start(t)
		fleet := startFleet(t, bin, 3, fleetEnv(sim, rs.URL(), keys, "BUDGET_POLL_INTERVAL=0", "AUTH_FAILURE_COOLDOWN=10m"))
		learnRevoked(t, sim, fleet, keys[1], 2)
		res := loadFor(fleet, 3, paidModel, 1500*time.Millisecond)
		t.Logf("load: %s", res)
		if res.errors() != 0 {
			t.Errorf("client-visible errors: %s", res)
		}
		if n := sim.Stats().Keys[keys[1]].Requests; n != 1 {
			t.Errorf("revoked key called %d times by 3 replicas, want once in its rest", n)
		}
	})

	t.Run("an account's free-model limit on one replica holds its free calls back on all", func(t *testing.T) {
		keys := testKeys(4)
		// The simulator's minute starts now, so that the account's
		// per-minute block lasts about a minute, whenever the test runs.
		// Ahead of the wall clock, not behind: the replicas read the
		// block's end (X-RateLimit-Reset, epoch ms) by the wall clock,
		// and a simulator behind it ended the block at the wall clock's
		// next minute, moments after the limit when the test ran in a
		// minute's last seconds (CI, 23:58:5x: "gave up waiting for
		// account A's free calls to stop").
		realStart := time.Now()
		simStart := realStart.Truncate(time.Minute).Add(time.Minute)
		sim := startSim(t, simulator.Options{Now: func() time.Time { return simStart.Add(time.Since(realStart)) }, Accounts: []simulator.Account{
			// A has three keys of four: it meets its per-minute limit of
			// free calls long before B.
			{ID: "user_A", Balance: 100, Purchased: 20, Keys: []simulator.KeySpec{{Secret: keys[0]}, {Secret: keys[1]}, {Secret: keys[2]}}},
			{ID: "user_B", Balance: 100, Purchased: 20, Keys: []simulator.KeySpec{{Secret: keys[3]}}},
		}})
		rs := redistest.Start(t)
		fleet := startFleet(t, bin, 3, fleetEnv(sim, rs.URL(), keys, "BUDGET_POLL_INTERVAL=60s"))
		// Each key is polled by one replica (the lease); the others learn
		// its account from the shared figures.
		for _, r := range fleet {
			waitFor(t, 5*time.Second, "accounts known on "+r.url, func() bool {
				for _, k := range keysOf(t, r.url) {
					if k.Account == "" {
						return false
					}
				}
				return true
			})
		}
		reads := sim.Stats().BudgetReads
		t.Logf("%d budget reads of 4 keys by 3 replicas at start", reads)
		// A lease ask that Redis does not answer within its few
		// milliseconds (a loaded machine) polls anyway: generous bound.
		if reads >= 3*4 {
			t.Errorf("%d budget reads of 4 keys by 3 replicas at start: every replica polled every key", reads)
		}
		client := &http.Client{Timeout: 10 * time.Second}
		limited := func() (n int64) {
			st := sim.Stats()
			for _, k := range keys[:3] {
				n += st.Keys[k].ByStatus[429]
			}
			return n
		}
		for i := 0; limited() == 0; i++ {
			if i > 60 {
				t.Fatal("account A never hit its free-model limit")
			}
			if code, _ := chat(client, fleet[0].url, freeModel); code != http.StatusOK {
				t.Fatalf("free call %d on replica 0: %d", i, code)
			}
		}
		for _, r := range fleet {
			waitFor(t, 5*time.Second, "account A's free calls to stop on "+r.url, func() bool {
				return freeBlocked(t, r.url, 1) && freeBlocked(t, r.url, 2) && freeBlocked(t, r.url, 3)
			})
			if freeBlocked(t, r.url, 4) || resting(t, r.url, 1) {
				t.Errorf("%s: account B's free calls stop too, or account A's keys rest for paid calls", r.url)
			}
		}
		before := sim.Stats()
		for _, r := range fleet[1:] {
			for i := range 4 { // account B takes 20 a minute
				if code, _ := chat(client, r.url, freeModel); code != http.StatusOK {
					t.Fatalf("free call %d on %s: %d", i, r.url, code)
				}
			}
		}
		mid := sim.Stats()
		for _, k := range keys[:3] {
			if n := mid.Keys[k].Requests - before.Keys[k].Requests; n != 0 {
				t.Errorf("replicas 1 and 2 sent %d free calls to a key of account A", n)
			}
		}
		// Paid calls are not held back: the limit is OpenRouter's on free
		// models only.
		res := loadFor(fleet[1:], 2, paidModel, 500*time.Millisecond)
		after := sim.Stats()
		if res.errors() != 0 {
			t.Errorf("client-visible errors: %s", res)
		}
		var paidOnA int64
		for _, k := range keys[:3] {
			paidOnA += after.Keys[k].Requests - mid.Keys[k].Requests
		}
		if paidOnA == 0 {
			t.Errorf("no paid call went to account A's keys: its free-model limit held back paid calls (%s)", res)
		}
	})

	t.Run("one trial per rest end across replicas", func(t *testing.T) {
		keys := testKeys(2)
		sim := startSim(t, simulator.Options{Keys: map[string]simulator.Profile{keys[0]: {}, keys[1]: {Status: 401}}})
		rs := redistest.Start(t)
		fleet := startFleet(t, bin, 3, fleetEnv(sim, rs.URL(), keys, "BUDGET_POLL_INTERVAL=0",
			"AUTH_FAILURE_COOLDOWN=1s", "MAX_COOLDOWN=1s"))
		learnRevoked(t, sim, fleet, keys[1], 2)
		// Counted from here, not from the learning call: on a loaded
		// machine a rest can end (and its trial go out) before the load
		// starts, outside d.
		start := time.Now()
		logged := make([]int, len(fleet))
		for i, r := range fleet {
			logged[i] = len(r.out.String())
		}
		before := sim.Stats().Keys[keys[1]].Requests
		res := loadFor(fleet, 3, paidModel, 4500*time.Millisecond)
		d := time.Since(start)
		trials := sim.Stats().Keys[keys[1]].Requests - before
		// A replica whose SET NX Redis did not answer within its few
		// milliseconds (a loaded machine) sends the trial without the
		// token, by design, and says so: each such trial is one more.
		var unshared int64
		for i, r := range fleet {
			unshared += int64(strings.Count(r.out.String()[logged[i]:], "without its trial token"))
		}
		// Each rest lasts 1s and begins at the trial that ends the one
		// before: in d there are at most d/1s+1 rest ends, one trial each.
		// Without the shared token each replica would send its own.
		most := int64(d/time.Second) + 1
		t.Logf("load: %s; %d trials in %s (at most %d rest ends), %d without a token", res, trials, d.Round(time.Millisecond), most, unshared)
		if res.errors() != 0 {
			t.Errorf("client-visible errors: %s", res)
		}
		// At least two rest ends had their one trial by token: the sharing,
		// not Redis' silence, kept the others out.
		if trials-unshared < 2 || trials > most+unshared {
			t.Errorf("%d trial calls of the revoked key by 3 replicas in %s, %d of them without a token, want one per rest end (2 to %d) and one per trial sent without a token", trials, d, unshared, most)
		}
	})

	t.Run("redis frozen, killed and restarted under load", func(t *testing.T) {
		keys := testKeys(5)
		sim := startSim(t, simulator.Options{Latency: 10 * time.Millisecond, Keys: map[string]simulator.Profile{
			keys[0]: {}, keys[1]: {}, keys[2]: {}, keys[3]: {Status: 401},
			keys[4]: {RateLimitEvery: 40, RateLimitBurst: 1, RetryAfter: time.Second}}})
		rs := redistest.Start(t)
		env := fleetEnv(sim, rs.URL(), keys, "BUDGET_POLL_INTERVAL=2s", "AUTH_FAILURE_COOLDOWN=10m")
		fleet := startFleet(t, bin, 3, env)
		learnRevoked(t, sim, fleet, keys[3], 4)

		up := loadFor(fleet, 3, paidModel, 2*time.Second)
		stop := make(chan struct{})
		done := make(chan *loadResult)
		go func() { done <- runLoad(fleet, 3, paidModel, stop) }()
		time.Sleep(500 * time.Millisecond)
		rs.Freeze()
		time.Sleep(1500 * time.Millisecond)
		rs.Kill()
		time.Sleep(1000 * time.Millisecond)
		rs.Restart()
		time.Sleep(1500 * time.Millisecond)
		close(stop)
		chaos := <-done
		t.Logf("redis up: %s", up)
		t.Logf("redis frozen, killed, restarted: %s", chaos)
		t.Logf("p99 ratio %.2f (goal ≤ 1.5)", float64(chaos.p99())/float64(up.p99()))
		if up.errors() != 0 || chaos.errors() != 0 {
			t.Errorf("client-visible errors: up %d, chaos %d", up.errors(), chaos.errors())
		}
		// Generous, for a shared machine: no call waited on Redis for long.
		if chaos.p99() > 2*up.p99()+50*time.Millisecond {
			t.Errorf("p99 %s with Redis away, %s with it up", chaos.p99(), up.p99())
		}
		for _, r := range fleet {
			if n := strings.Count(r.out.String(), "redis unreachable"); n < 1 {
				t.Errorf("%s never logged Redis unreachable", r.url)
			}
			waitFor(t, 10*time.Second, "keygate_redis_up 1 on "+r.url, func() bool { return redisUp(t, r.url) })
		}
		// Reconciled, replica to Redis: the revoked key's rest is in the
		// new, empty Redis again...
		key := "keygate:rest:" + cluster.RefOf(4, secret.New(keys[3])).Digest()
		waitFor(t, 10*time.Second, "the rest written to Redis again", func() bool {
			reply, err := rs.Do("EXISTS", key)
			return err == nil && reply == ":1"
		})
		// ...and Redis to replica: one started now keeps the key out.
		late := startReplica(t, bin, env...)
		waitFor(t, 5*time.Second, "the late replica to learn the rest", func() bool { return resting(t, late.url, 4) })
		if res := loadFor([]*replica{late}, 2, paidModel, 300*time.Millisecond); res.errors() != 0 {
			t.Errorf("late replica: %s", res)
		}
		// Once in its rest at most: none when a replica's start-up poll
		// found it revoked before any call.
		if n := sim.Stats().Keys[keys[3]].Requests; n > 1 {
			t.Errorf("revoked key called %d times, want at most once in its rest", n)
		}
	})
}

// redisUp reports whether base's /metrics says keygate_redis_up 1.
func redisUp(t testing.TB, base string) bool {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return strings.Contains(b.String(), "\nkeygate_redis_up 1\n")
}
