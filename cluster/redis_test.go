package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/keygate/keygate/cluster/redistest"
)

// backends are the servers the scripts' semantics are checked on: Debian's
// redis-server, and miniredis.
func backends(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"redis-server": func(t *testing.T) string { return redistest.Start(t).URL() },
		"miniredis":    func(t *testing.T) string { return "redis://" + miniredis.RunT(t).Addr() },
	}
}

func TestLaterDeadlineWins(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			s := newStore(t, url, Options{})
			c := direct(t, url)
			steps := []struct {
				ev   Event
				want time.Time // the deadline Redis holds after the step
			}{
				{Event{Kind: KeyRest, Key: "1:ab", Until: now.Add(10 * time.Second), Reason: "auth", Status: 401}, now.Add(10 * time.Second)},
				{Event{Kind: KeyRest, Key: "1:ab", Until: now.Add(5 * time.Second), Reason: "rate_limit", Status: 429}, now.Add(10 * time.Second)},
				{Event{Kind: KeyRest, Key: "1:ab", Until: now.Add(10 * time.Second), Reason: "rate_limit", Status: 429}, now.Add(10 * time.Second)},
				{Event{Kind: KeyRest, Key: "1:ab", Until: now.Add(20 * time.Second), Reason: "key_limit", Status: 402}, now.Add(20 * time.Second)},
				{Event{Kind: KeyRest, Key: "1:ab", Until: now.Add(-time.Second), Reason: "auth", Status: 401}, now.Add(20 * time.Second)},
			}
			for i, st := range steps {
				if err := s.put(ctx, st.ev); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				raw, err := c.Get(ctx, "keygate:rest:ab").Bytes()
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				got, _, err := decode(raw)
				if err != nil || !got.Until.Equal(st.want) {
					t.Fatalf("step %d: Redis holds %+v (%v), want until %v", i, got, err, st.want)
				}
				pttl, err := c.PTTL(ctx, "keygate:rest:ab").Result()
				if err != nil || pttl <= 0 || pttl > time.Until(st.want)+time.Second {
					t.Fatalf("step %d: PTTL %v (%v), want positive and at most the rest left", i, pttl, err)
				}
			}
		})
	}
}

func TestFactsOrderedPerKind(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			s := newStore(t, url, Options{})
			c := direct(t, url)
			for _, ev := range []Event{
				{Kind: AccountRest, Account: "a1b2", Until: now.Add(time.Hour), Reason: "free_quota", Status: 429},
				// The account's rest is kept beside its free-model block,
				// and its later deadline wins over an earlier one.
				{Kind: AccountRest, Account: "a1b2", Until: now.Add(time.Minute), Reason: "rate_limit", Status: 429},
				{Kind: AccountRest, Account: "a1b2", Until: now.Add(30 * time.Second), Reason: "in_flight_budget", Status: 402},
				{Kind: Disable, Key: "2:cd", At: now},
				{Kind: Enable, Key: "2:cd", At: now.Add(-time.Second)}, // older: a replica reconciling late
				{Kind: Budget, Key: "3:ef", At: now, Figures: json.RawMessage(`{"limit_remaining":4}`)},
				{Kind: Budget, Key: "3:ef", At: now.Add(-time.Minute), Figures: json.RawMessage(`{"limit_remaining":9}`)},
			} {
				if err := s.put(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			check := func(raw string, err error, want func(Event) bool) {
				t.Helper()
				ev, _, derr := decode([]byte(raw))
				if err != nil || derr != nil || !want(ev) {
					t.Fatalf("Redis holds %q (%v, %v)", raw, err, derr)
				}
			}
			raw, err := c.Get(ctx, "keygate:afree:a1b2").Result()
			check(raw, err, func(e Event) bool { return e.Reason == "free_quota" && e.Until.Equal(now.Add(time.Hour)) })
			raw, err = c.Get(ctx, "keygate:arest:a1b2").Result()
			check(raw, err, func(e Event) bool { return e.Reason == "rate_limit" && e.Until.Equal(now.Add(time.Minute)) })
			raw, err = c.HGet(ctx, "keygate:manual", "cd").Result()
			check(raw, err, func(e Event) bool { return e.Kind == Disable })
			raw, err = c.Get(ctx, "keygate:budget:ef").Result()
			check(raw, err, func(e Event) bool { return string(e.Figures) == `{"limit_remaining":4}` })
			if pttl := c.PTTL(ctx, "keygate:budget:ef").Val(); pttl <= 0 || pttl > 5*time.Minute {
				t.Fatalf("budget PTTL %v, want the 5m BudgetTTL", pttl)
			}
			if ttl := c.PTTL(ctx, "keygate:manual").Val(); ttl >= 0 {
				t.Fatalf("manual hash PTTL %v: a disable must not expire", ttl)
			}
			// A free block's end, however late, drops the block and
			// leaves the rest: free requests left say nothing of credits.
			if err := s.put(ctx, Event{Kind: AccountBack, Account: "a1b2", Reason: freeQuota, Until: now.Add(2 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if c.Exists(ctx, "keygate:arest:a1b2").Val() != 1 || c.Exists(ctx, "keygate:afree:a1b2").Val() != 0 {
				t.Fatal("a free block's end until 2h: want the 1h free block dropped and the 1m rest kept")
			}
			// A rest's end drops the rest only, and sits under a key of
			// its own beside the free block's end.
			if err := s.put(ctx, Event{Kind: AccountRest, Account: "a1b2", Reason: freeQuota, Until: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if err := s.put(ctx, Event{Kind: AccountBack, Account: "a1b2", Until: now.Add(2 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			if c.Exists(ctx, "keygate:arest:a1b2").Val() != 0 || c.Exists(ctx, "keygate:afree:a1b2").Val() != 1 {
				t.Fatal("a rest's end until 2h: want the 1m rest dropped and the 1h free block kept")
			}
			u := ":" + strconv.FormatInt(now.Add(2*time.Hour).UnixMilli(), 10)
			if c.Exists(ctx, "keygate:aback:a1b2"+u).Val() != 1 || c.Exists(ctx, "keygate:afreeback:a1b2"+u).Val() != 1 {
				t.Fatal("want the rest's end and the free block's end under keys of their own")
			}
		})
	}
}

func TestBudgetResetsSpend(t *testing.T) {
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			s := newStore(t, url, Options{})
			c := direct(t, url)
			for range 3 {
				if err := s.put(ctx, Event{Kind: Spend, Key: "1:ab", Account: "a1", USD: 0.25}); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.Get(ctx, "keygate:spend:ab").Val(); got != "0.75" {
				t.Fatalf("spend %q, want 0.75", got)
			}
			if err := s.put(ctx, Event{Kind: Budget, Key: "1:ab", At: time.Now(), Figures: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			if n := c.Exists(ctx, "keygate:spend:ab").Val(); n != 0 {
				t.Fatal("a new budget poll left the spend it already counts")
			}
		})
	}
}

func TestTrialTokenExclusive(t *testing.T) {
	srv := redistest.Start(t)
	var stores []*Redis
	for range 3 {
		s, _, _ := running(t, srv.URL(), Options{HotTimeout: 5 * time.Second, HealInterval: time.Hour})
		stores = append(stores, s)
	}
	restUntil := time.Now()
	for _, tc := range []struct {
		name string
		try  func(s *Redis) bool
	}{
		{"trial", func(s *Redis) bool { return s.TryTrial(ctx, "4:aa", restUntil) }},
		{"next rest's trial", func(s *Redis) bool { return s.TryTrial(ctx, "4:aa", restUntil.Add(time.Minute)) }},
		{"lease", func(s *Redis) bool { return s.TryLease(ctx, "budget:4:aa", time.Minute) }},
		// A reload renumbered the key on some replicas, not yet on the
		// others: it is the same key, with one trial.
		{"trial of a key under two ids", func(s *Redis) bool {
			ref := KeyRef("5:bb")
			if s == stores[0] {
				ref = "2:bb"
			}
			return s.TryTrial(ctx, ref, restUntil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 24 {
				wg.Go(func() {
					if tc.try(stores[i%len(stores)]) {
						wins.Add(1)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d callers won, want exactly 1", wins.Load())
			}
		})
	}
	if pttl := direct(t, srv.URL()).PTTL(ctx, "keygate:lease:budget:4:aa").Val(); pttl <= 0 || pttl > time.Minute {
		t.Fatalf("lease PTTL %v, want its minute", pttl)
	}
}

func TestPushReachesOtherReplica(t *testing.T) {
	srv := redistest.Start(t)
	// No re-read within the test: only the push can deliver.
	a, recA, _ := running(t, srv.URL(), Options{HealInterval: time.Hour})
	_, recB, _ := running(t, srv.URL(), Options{HealInterval: time.Hour})
	c := direct(t, srv.URL())
	eventually(t, "both subscribed", func() bool { return c.PubSubNumSub(ctx, "keygate:events").Val()["keygate:events"] == 2 })
	until := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "auth", Status: 401})
	a.Publish(Event{Kind: Spend, Key: "1:ab", Account: "a1", USD: 0.5})
	eventually(t, "B applies A's rest", func() bool {
		ev, ok := recB.find(func(e Event) bool { return e.Kind == KeyRest })
		return ok && ev.Key == "1:ab" && ev.Until.Equal(until) && ev.Reason == "auth" && ev.Status == 401
	})
	eventually(t, "B applies A's spend (flushed by A's next round)", func() bool {
		ev, ok := recB.find(func(e Event) bool { return e.Kind == Spend })
		return ok && ev.USD == 0.5 && ev.Account == "a1"
	})
	if _, ok := recA.find(func(e Event) bool { return e.Kind == KeyRest }); ok {
		t.Fatal("A applied its own push")
	}
}

func TestHealPicksUpMissedFacts(t *testing.T) {
	srv := redistest.Start(t)
	a, _, _ := running(t, srv.URL(), Options{})
	until := time.Now().Add(time.Minute)
	a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "auth", Status: 401})
	a.Publish(Event{Kind: Disable, Key: "2:cd"})
	a.Publish(Event{Kind: Budget, Key: "3:ef", Account: "a1", At: time.Now(), Figures: json.RawMessage(`{"limit":5}`)})
	a.Publish(Event{Kind: Spend, Key: "3:ef", USD: 1.5})
	c := direct(t, srv.URL())
	eventually(t, "A wrote its facts", func() bool {
		return c.Exists(ctx, "keygate:rest:ab", "keygate:budget:ef", "keygate:spend:ef").Val() == 3
	})
	// B starts late: it missed every push.
	_, recB, _ := running(t, srv.URL(), Options{})
	eventually(t, "B heals the rest, the disable and the budget with its spend", func() bool {
		_, rest := recB.find(func(e Event) bool { return e.Kind == KeyRest && e.Key == "1:ab" })
		_, off := recB.find(func(e Event) bool { return e.Kind == Disable && e.Key == "2:cd" })
		b, budget := recB.find(func(e Event) bool { return e.Kind == Budget && e.Key == "3:ef" })
		return rest && off && budget && b.USD == 1.5 && string(b.Figures) == `{"limit":5}`
	})
}

func TestPublishNeverBlocks(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), Options{QueueSize: 2})
	until := time.Now().Add(time.Minute)
	// Not running yet: nobody drains the queue.
	for i := range 5 {
		s.Publish(Event{Kind: KeyRest, Key: KeyRef(strings.Repeat("k", i+1)), Until: until})
	}
	s.Publish(Event{Kind: "nonsense", Key: "x"})
	if len(s.queue) != 2 {
		t.Fatalf("queue holds %d, want 2 (the newest)", len(s.queue))
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(Event) {}) }()
	c := direct(t, srv.URL())
	eventually(t, "dropped events written from the replica's record", func() bool {
		return c.Exists(ctx, "keygate:rest:k", "keygate:rest:kkk", "keygate:rest:kkkkk").Val() == 3
	})
	_ = s.Close()
	<-done
}

func TestBackEndsOnlyTheRestItEnded(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			s := newStore(t, url, Options{})
			c := direct(t, url)
			steps := []struct {
				ev   Event
				key  string
				left bool // whether the rest is still in Redis after ev
			}{
				{Event{Kind: KeyRest, Key: "1:ab", Until: now.Add(time.Hour), Reason: "key_limit", Status: 402}, "keygate:rest:ab", true},
				{Event{Kind: TrialResult, Key: "1:ab", Until: now.Add(time.Minute), OK: true}, "keygate:rest:ab", true}, // an older rest's trial
				{Event{Kind: TrialResult, Key: "1:ab", Until: now.Add(time.Hour), OK: false}, "keygate:rest:ab", true},
				{Event{Kind: TrialResult, Key: "1:ab", Until: now.Add(2 * time.Hour), OK: true}, "keygate:rest:ab", false},
				{Event{Kind: AccountRest, Account: "a1", Until: now.Add(time.Hour), Reason: "credits", Status: 402}, "keygate:arest:a1", true},
				{Event{Kind: AccountBack, Account: "a1", Until: now.Add(time.Minute)}, "keygate:arest:a1", true},
				{Event{Kind: AccountBack, Account: "a1", Until: now.Add(time.Hour)}, "keygate:arest:a1", false},
			}
			for i, st := range steps {
				if err := s.put(ctx, st.ev); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if left := c.Exists(ctx, st.key).Val() == 1; left != st.left {
					t.Fatalf("step %d (%s): rest in Redis = %v, want %v", i, st.ev.Kind, left, st.left)
				}
			}
			if pttl := c.PTTL(ctx, "keygate:trialres:ab:"+strconv.FormatInt(now.Add(2*time.Hour).UnixMilli(), 10)).Val(); pttl <= 0 || pttl > trialResultTTL {
				t.Fatalf("trial result PTTL %v, want within %v", pttl, trialResultTTL)
			}
		})
	}
}

func TestReconcileKeepsEndedRestsEnded(t *testing.T) {
	s := newStore(t, "unix:///nonexistent.sock", Options{})
	until := time.Now().Add(time.Hour)
	s.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until})
	s.Publish(Event{Kind: KeyRest, Key: "2:cd", Until: until.Add(time.Hour)})
	s.Publish(Event{Kind: AccountRest, Account: "a1", Until: until})
	s.Publish(Event{Kind: TrialResult, Key: "1:ab", Until: until, OK: true})
	s.Publish(Event{Kind: TrialResult, Key: "2:cd", Until: until, OK: true}) // not the rest 2:cd is in
	s.Publish(Event{Kind: AccountBack, Account: "a1", Until: until})
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, want := range map[string]bool{"keygate:rest:ab": false, "keygate:rest:cd": true, "keygate:arest:a1": false, "keygate:trialres:ab:" + strconv.FormatInt(until.UnixMilli(), 10): true} {
		if _, ok := s.mine[k]; ok != want {
			t.Errorf("replica's record has %s = %v, want %v", k, ok, want)
		}
	}
}

// roundTrips counts what a client sends: lone commands and pipelines;
// with refuseLoad, SCRIPT LOAD fails without reaching Redis.
type roundTrips struct {
	lone, pipelines atomic.Int64
	refuseLoad      atomic.Bool
}

func (*roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" && cmd.Name() != "ping" {
			r.lone.Add(1)
		}
		if cmd.Name() == "script" && r.refuseLoad.Load() {
			err := errors.New("ERR refused by the test")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

// The spend of every key goes out in one round trip; a Redis that lost
// its scripts (restarted, SCRIPT FLUSH) gets each call again whole, and
// no spend is counted twice; spend that could not go out waits for the
// next flush.
func TestFlushIsOneRoundTrip(t *testing.T) {
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			s := newStore(t, url, Options{})
			connect(t, s)
			rt := &roundTrips{}
			s.client.AddHook(rt)
			c := direct(t, url)
			refs := []KeyRef{"1:ab", "2:cd", "3:ef", "4:gh", "5:ij"}
			spend := func() {
				for _, ref := range refs {
					s.Publish(Event{Kind: Spend, Key: ref, Account: "a1", USD: 0.25})
				}
			}
			for i, step := range []struct {
				name      string
				lone      int64
				pipelines int64
				want      string
			}{
				// The pipeline's EVALSHAs fail before they run; one
				// SCRIPT LOAD, and they go again in a second pipeline.
				{"scripts not loaded yet", 1, 2, "0.25"},
				{"scripts loaded", 0, 1, "0.5"},
				{"after SCRIPT FLUSH", 1, 2, "0.75"},
			} {
				if i == 2 {
					if err := c.ScriptFlush(ctx).Err(); err != nil {
						t.Fatal(err)
					}
				}
				rt.lone.Store(0)
				rt.pipelines.Store(0)
				spend()
				s.flush(ctx)
				if l, p := rt.lone.Load(), rt.pipelines.Load(); l != step.lone || p != step.pipelines {
					t.Fatalf("%s: %d lone commands and %d pipelines, want %d and %d", step.name, l, p, step.lone, step.pipelines)
				}
				for _, ref := range refs {
					if got := c.Get(ctx, "keygate:spend:"+ref.Digest()).Val(); got != step.want {
						t.Fatalf("%s: spend of %s %q, want %s", step.name, ref, got, step.want)
					}
				}
				if len(s.pending) != 0 {
					t.Fatalf("%s: %d keys' spend left over", step.name, len(s.pending))
				}
			}
			// Redis refuses the writes: the spend stays for the next flush.
			if err := c.Set(ctx, "keygate:spend:ef", "not a number", 0).Err(); err != nil {
				t.Fatal(err)
			}
			spend()
			s.flush(ctx)
			if p, ok := s.pending["3:ef"]; len(s.pending) != 1 || !ok || p.usd != 0.25 || p.account != "a1" {
				t.Fatalf("after a refused write pending = %v, want 3:ef's 0.25 alone", s.pending)
			}
			// One round trip refused is one failure for the health
			// breaker, as a lone call's would be.
			s.health.mu.Lock()
			fails := s.health.fails
			s.health.mu.Unlock()
			if fails != 1 {
				t.Fatalf("health counts %d failures after one refused round trip, want 1", fails)
			}
		})
	}
}

// A script Redis will not load fails its calls without sending them again:
// one pipeline, one SCRIPT LOAD, and the spend waits for the next flush.
func TestScriptThatDoesNotLoadIsNotResent(t *testing.T) {
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := newStore(t, start(t), Options{})
			connect(t, s)
			rt := &roundTrips{}
			rt.refuseLoad.Store(true)
			s.client.AddHook(rt)
			refs := []KeyRef{"1:ab", "2:cd", "3:ef"}
			for _, ref := range refs {
				s.Publish(Event{Kind: Spend, Key: ref, Account: "a1", USD: 0.25})
			}
			s.flush(ctx)
			if l, p := rt.lone.Load(), rt.pipelines.Load(); l != 1 || p != 1 {
				t.Fatalf("%d lone commands and %d pipelines, want the SCRIPT LOAD and the first pipeline alone", l, p)
			}
			if len(s.pending) != len(refs) {
				t.Fatalf("pending = %v, want every key's spend kept", s.pending)
			}
			for _, ref := range refs {
				if p := s.pending[ref]; p.usd != 0.25 || p.account != "a1" {
					t.Fatalf("pending[%s] = %+v, want 0.25 of a1", ref, p)
				}
			}
		})
	}
}

// Facts that wait in the queue together go out in one round trip.
func TestQueuedFactsGoOutTogether(t *testing.T) {
	srv := redistest.Start(t)
	s := newStore(t, srv.URL(), Options{})
	connect(t, s)
	if err := factScript.Load(ctx, s.client).Err(); err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{}
	s.client.AddHook(rt)
	until := time.Now().Add(time.Minute)
	refs := []KeyRef{"1:ab", "2:cd", "3:ef", "4:gh", "5:ij"}
	for _, ref := range refs { // the writer is not running yet: they wait in the queue
		s.Publish(Event{Kind: KeyRest, Key: ref, Until: until, Reason: "auth", Status: 401})
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.write(wctx) }()
	defer func() { stop(); <-done }()
	c := direct(t, srv.URL())
	eventually(t, "all five written", func() bool {
		return c.Exists(ctx, "keygate:rest:ab", "keygate:rest:cd", "keygate:rest:ef", "keygate:rest:gh", "keygate:rest:ij").Val() == 5
	})
	if l, p := rt.lone.Load(), rt.pipelines.Load(); l != 0 || p != 1 {
		t.Fatalf("five queued facts took %d lone commands and %d pipelines, want one pipeline", l, p)
	}
}

// TestBudgetCarriesSpendWhileOut: a Budget fact's USD (what was spent
// while its poll was out) reaches every replica's re-read, plus what was
// spent after it was written; the publisher's unwritten spend from before
// the poll, which the figures hold already, is dropped rather than counted
// a second time.
func TestBudgetCarriesSpendWhileOut(t *testing.T) {
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			a := newStore(t, url, Options{})
			a.Publish(Event{Kind: Spend, Key: "1:ab", Account: "a1", USD: 0.25}) // before the poll: not yet written
			a.Publish(Event{Kind: Budget, Key: "1:ab", Account: "a1", At: time.Now(), Figures: json.RawMessage(`{"limit":5}`), USD: 0.5})
			done := make(chan error, 1)
			go func() { done <- a.Run(context.Background(), func(Event) {}) }()
			defer func() { _ = a.Close(); <-done }()
			c := direct(t, url)
			eventually(t, "A wrote its budget", func() bool { return c.Exists(ctx, "keygate:budget:ab").Val() == 1 })
			_, rec, _ := running(t, url, Options{})
			usd := func(want float64) func() bool {
				return func() bool {
					b, ok := rec.find(func(e Event) bool { return e.Kind == Budget && e.Key == "1:ab" })
					return ok && math.Abs(b.USD-want) < 1e-9
				}
			}
			eventually(t, "B re-reads the budget with the spend while its poll was out", usd(0.5))
			a.Publish(Event{Kind: Spend, Key: "1:ab", Account: "a1", USD: 0.125})
			eventually(t, "B re-reads it with the spend since, too", usd(0.625))
		})
	}
}

// TestFreeUseReachesOtherReplica: free-model requests go out summed per
// key, like spend, and reach another replica as one FreeUse; nothing of
// them is stored.
func TestFreeUseReachesOtherReplica(t *testing.T) {
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			a := newStore(t, url, Options{})
			a.Publish(Event{Kind: FreeUse, Key: "1:ab", Account: "a1", N: 1})
			a.Publish(Event{Kind: FreeUse, Key: "1:ab", Account: "a1", N: 1})
			a.Publish(Event{Kind: FreeUse, Key: "1:ab", N: 0}) // not an event: dropped
			_, rec, _ := running(t, url, Options{HealInterval: time.Hour})
			c := direct(t, url)
			eventually(t, "B subscribed", func() bool { return c.PubSubNumSub(ctx, "keygate:events").Val()["keygate:events"] == 1 })
			done := make(chan error, 1)
			go func() { done <- a.Run(context.Background(), func(Event) {}) }()
			defer func() { _ = a.Close(); <-done }()
			eventually(t, "B applies A's free use", func() bool {
				ev, ok := rec.find(func(e Event) bool { return e.Kind == FreeUse })
				return ok && ev.Key == "1:ab" && ev.Account == "a1" && ev.N == 2
			})
			if keys := c.Keys(ctx, "keygate:*").Val(); slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, "1:ab") }) {
				t.Fatalf("free use stored: %v", keys)
			}
		})
	}
}

// TestBudgetCarriesFreeUseWhileOut: a Budget fact's N (the free-model
// requests used while its poll was out) reaches the other replicas with
// it, and the publisher's unsent free use of that account, on any of its
// keys, is dropped: the figures hold the account's quota from before the
// poll, N what was used since. Sent after the fact, it counted twice.
func TestBudgetCarriesFreeUseWhileOut(t *testing.T) {
	for name, start := range backends(t) {
		t.Run(name, func(t *testing.T) {
			url := start(t)
			a := newStore(t, url, Options{})
			a.Publish(Event{Kind: FreeUse, Key: "1:ab", Account: "a1", N: 2})
			a.Publish(Event{Kind: FreeUse, Key: "2:cd", Account: "a1", N: 1}) // the same account's other key
			a.Publish(Event{Kind: FreeUse, Key: "3:ef", Account: "a2", N: 1}) // another account's
			a.Publish(Event{Kind: Budget, Key: "1:ab", Account: "a1", At: time.Now(), Figures: json.RawMessage(`{"limit":5}`), N: 4})
			_, rec, _ := running(t, url, Options{})
			c := direct(t, url)
			eventually(t, "B subscribed", func() bool { return c.PubSubNumSub(ctx, "keygate:events").Val()["keygate:events"] == 1 })
			done := make(chan error, 1)
			go func() { done <- a.Run(context.Background(), func(Event) {}) }()
			defer func() { _ = a.Close(); <-done }()
			eventually(t, "B gets the budget with the free use while its poll was out", func() bool {
				b, ok := rec.find(func(e Event) bool { return e.Kind == Budget && e.Key == "1:ab" })
				return ok && b.N == 4
			})
			eventually(t, "B gets the other account's free use", func() bool {
				ev, ok := rec.find(func(e Event) bool { return e.Kind == FreeUse && e.Account == "a2" })
				return ok && ev.N == 1
			})
			// A fact sent after the flush comes after all of it.
			a.Publish(Event{Kind: KeyRest, Key: "9:zz", Until: time.Now().Add(time.Minute)})
			eventually(t, "B gets a later fact", func() bool {
				_, ok := rec.find(func(e Event) bool { return e.Kind == KeyRest && e.Key == "9:zz" })
				return ok
			})
			if ev, ok := rec.find(func(e Event) bool { return e.Kind == FreeUse && e.Account == "a1" }); ok {
				t.Fatalf("the polled account's free use went out after its budget: %+v", ev)
			}
		})
	}
}
