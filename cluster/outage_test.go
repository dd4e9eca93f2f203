package cluster

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keygate/keygate/cluster/redistest"
)

func TestFrozenRedis(t *testing.T) {
	srv := redistest.Start(t)
	reg := prometheus.NewRegistry()
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond, Registerer: reg}
	a, _, logs := running(t, srv.URL(), o)
	gauge := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "keygate_redis_up" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	if gauge() != 1 {
		t.Fatalf("keygate_redis_up = %v, want 1", gauge())
	}
	srv.Freeze()
	until := time.Now().Add(time.Minute)
	// Neither call may hang on the frozen server; TryTrial lets this
	// replica decide alone.
	returned := make(chan bool)
	go func() {
		a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "auth", Status: 401})
		returned <- a.TryTrial(ctx, "1:ab", time.Now())
	}()
	select {
	case ok := <-returned:
		if !ok {
			t.Fatal("TryTrial against a frozen Redis = false, want true (local decides)")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish or TryTrial hangs on a frozen Redis")
	}
	eventually(t, "Up false", func() bool { return !a.Up() })
	for range 20 {
		if !a.TryTrial(ctx, "1:ab", time.Now()) {
			t.Fatal("TryTrial while down = false")
		}
	}
	if gauge() != 0 {
		t.Fatalf("keygate_redis_up = %v while down, want 0", gauge())
	}
	srv.Thaw()
	eventually(t, "Up again", a.Up)
	c := direct(t, srv.URL())
	eventually(t, "the rest learned while frozen reaches Redis", func() bool {
		return c.Exists(ctx, "keygate:rest:ab").Val() == 1
	})
	if n := logs.count("redis unreachable"); n != 1 {
		t.Fatalf("logged 'unreachable' %d times, want once:\n%s", n, logs.b.String())
	}
	if n := logs.count("redis is back"); n != 1 {
		t.Fatalf("logged 'back' %d times, want once", n)
	}
	if testutil.CollectAndCount(reg, "keygate_redis_up") != 1 || gauge() != 1 {
		t.Fatalf("keygate_redis_up = %v after thaw, want 1", gauge())
	}
}

func TestRestartedRedisGetsFactsBack(t *testing.T) {
	srv := redistest.Start(t)
	a, _, _ := running(t, srv.URL(), Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond})
	a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: time.Now().Add(time.Minute), Reason: "auth", Status: 401})
	a.Publish(Event{Kind: Disable, Key: "2:cd"})
	c := direct(t, srv.URL())
	eventually(t, "written", func() bool { return c.Exists(ctx, "keygate:rest:ab", "keygate:manual").Val() == 2 })
	srv.Kill()
	eventually(t, "Up false", func() bool { return !a.Up() })
	a.Publish(Event{Kind: AccountRest, Account: "a1", Until: time.Now().Add(time.Minute), Reason: "credits", Status: 402})
	srv.Restart()
	eventually(t, "the empty Redis gets A's facts back", func() bool {
		return c.Exists(ctx, "keygate:rest:ab", "keygate:manual", "keygate:arest:a1").Val() == 3
	})
}

func TestRedisGoneAtStart(t *testing.T) {
	logs := &syncBuffer{}
	s := newStore(t, "unix://"+t.TempDir()+"/none.sock", Options{Logger: slogTo(logs)})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(Event) {}) }()
	eventually(t, "the outage noticed", func() bool { return logs.count("redis unreachable") == 1 })
	if s.Up() || !s.TryTrial(ctx, "1:ab", time.Now()) || !s.TryLease(ctx, "x", time.Second) {
		t.Fatal("a store without Redis must be down and let this replica decide")
	}
	s.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: time.Now().Add(time.Minute)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx, func(Event) {}); err != ErrRunning {
		t.Fatalf("Run after Close = %v, want ErrRunning", err)
	}
}

func TestAuthAndTLS(t *testing.T) {
	for name, cfg := range map[string]redistest.Config{
		"password on a socket": {Password: "s3cret pass"},
		"TLS with a password":  {Password: "s3cret", TLS: true},
	} {
		t.Run(name, func(t *testing.T) {
			srv := redistest.StartWith(t, cfg)
			a, _, _ := running(t, srv.URL(), Options{TLSConfig: srv.ClientTLS()})
			_, recB, _ := running(t, srv.URL(), Options{TLSConfig: srv.ClientTLS()})
			until := time.Now().Add(time.Minute)
			a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "auth", Status: 401})
			eventually(t, "B learns A's rest", func() bool {
				_, ok := recB.find(func(e Event) bool { return e.Kind == KeyRest && e.Key == "1:ab" })
				return ok
			})
			if got, err := srv.Do("EXISTS", "keygate:rest:ab"); err != nil || got != ":1" {
				t.Fatalf("EXISTS = %q, %v", got, err)
			}

			logs := &syncBuffer{}
			bad := newStore(t, srv.URLWithPassword("wrong-password"), Options{TLSConfig: srv.ClientTLS(), Logger: slogTo(logs)})
			done := make(chan error, 1)
			go func() { done <- bad.Run(ctx, func(Event) {}) }()
			eventually(t, "a wrong password is an outage, said once", func() bool { return logs.count("redis unreachable") == 1 })
			if bad.Up() || !bad.TryTrial(ctx, "1:ab", time.Now()) {
				t.Fatal("a store that cannot log in must be down and let this replica decide")
			}
			if strings.Contains(logs.b.String(), "wrong-password") || strings.Contains(logs.b.String(), cfg.Password) {
				t.Fatalf("the log shows a password:\n%s", logs.b.String())
			}
			_ = bad.Close()
			<-done
		})
	}
}

// TestLostDataIsWrittenAgain: a Redis that loses what it held without
// being seen down (a FLUSHALL, a restart quicker than the health check
// notices) gets every replica's facts back at the next re-read, told by
// its epoch; a rest another replica ended is not among them.
func TestLostDataIsWrittenAgain(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond}
	a, _, _ := running(t, srv.URL(), o)
	b, _, _ := running(t, srv.URL(), o)
	until := time.Now().Add(time.Minute)
	a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "rate_limit", Status: 429})
	a.Publish(Event{Kind: AccountRest, Account: "a1", Until: until, Reason: "credits", Status: 402})
	b.Publish(Event{Kind: Disable, Key: "2:cd"})
	c := direct(t, srv.URL())
	eventually(t, "written", func() bool {
		return c.Exists(ctx, "keygate:rest:ab", "keygate:arest:a1", "keygate:manual", "keygate:epoch").Val() == 4
	})
	// B ends the account's rest; A hears of it.
	b.Publish(Event{Kind: AccountBack, Account: "a1", Until: until})
	eventually(t, "the rest ended", func() bool { return c.Exists(ctx, "keygate:arest:a1").Val() == 0 })
	eventually(t, "A forgot the rest it published", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		_, ok := a.mine["keygate:arest:a1"]
		return !ok
	})
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the flushed Redis gets A's and B's facts back", func() bool {
		return c.Exists(ctx, "keygate:rest:ab", "keygate:manual").Val() == 2
	})
	if c.Exists(ctx, "keygate:arest:a1").Val() != 0 {
		t.Fatal("the account rest B ended came back")
	}
	if !a.Up() || !b.Up() {
		t.Fatal("a flush counted as an outage")
	}
}

// A trial sent without its token (Redis frozen or taken for gone) is told at
// Debug, once per trial, so that the fleet's extra trials can be counted; a
// token Redis gave or refused is not.
func TestTrialWithoutTokenIsTold(t *testing.T) {
	srv := redistest.Start(t)
	logs := &syncBuffer{}
	// HotTimeout well past the default 5 ms: a loaded machine stalls
	// redis-server longer than that now and then, and a SET NX it does not
	// answer in time gives the token twice (CI). The frozen Redis below is
	// still told within IOTimeout, which bounds each command too.
	o := Options{IOTimeout: 100 * time.Millisecond, HotTimeout: time.Second, HealInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a, _, _ := running(t, srv.URL(), o)
	rest := time.Now()
	if !a.TryTrial(ctx, "1:ab", rest) || a.TryTrial(ctx, "1:ab", rest) {
		t.Fatal("want the token once")
	}
	if n := logs.count("event=trial_unshared"); n != 0 {
		t.Fatalf("told %d trials without a token while Redis answered", n)
	}
	srv.Freeze()
	defer srv.Thaw()
	for i := range 5 {
		if !a.TryTrial(ctx, "1:ab", rest.Add(time.Duration(i+1)*time.Second)) {
			t.Fatal("TryTrial against a frozen Redis = false, want true")
		}
	}
	if n := logs.count("event=trial_unshared"); n != 5 {
		t.Fatalf("told %d trials without a token, want 5", n)
	}
}
