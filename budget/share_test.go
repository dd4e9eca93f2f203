package budget

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// share records what a Poller tells and answers its lease asks.
type share struct {
	lease  bool
	asked  atomic.Int32
	mu     sync.Mutex
	polled []*Figures
	// carried and carriedFree are each poll's spend and free use while
	// it was out.
	carried     []float64
	carriedFree []int
	spent       float64
	free        int
}

func (s *share) Polled(_ *keyring.Key, _ string, f *Figures, spent float64, free int) {
	s.mu.Lock()
	s.polled = append(s.polled, f)
	s.carried = append(s.carried, spent)
	s.carriedFree = append(s.carriedFree, free)
	s.mu.Unlock()
}

func (s *share) Spent(_ *keyring.Key, usd float64) {
	s.mu.Lock()
	s.spent += usd
	s.mu.Unlock()
}

func (s *share) UsedFree(*keyring.Key) {
	s.mu.Lock()
	s.free++
	s.mu.Unlock()
}

func (s *share) Lease(*keyring.Key, time.Duration) bool { s.asked.Add(1); return s.lease }

func TestScheduledPollsNeedTheLease(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lease bool
	}{{"held", true}, {"another replica's", false}} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			p, _, pool, u, _ := newPoller(t, 2)
			sh := &share{lease: tc.lease}
			p.o.Share, p.o.Interval = sh, time.Hour
			for i := 1; i <= 2; i++ {
				u.set(i, 0, `{"data":{"limit":5,"limit_remaining":4,"usage":1,"creator_user_id":"u1"}}`)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { p.Run(ctx); close(done) }()
			want := int32(0)
			if tc.lease {
				want = 2
			}
			told := func() int {
				sh.mu.Lock()
				defer sh.mu.Unlock()
				return len(sh.polled)
			}
			for deadline := time.Now().Add(5 * time.Second); sh.asked.Load() < 2 || told() < int(want); {
				if time.Now().After(deadline) {
					t.Fatalf("asked %d leases, told %d polls", sh.asked.Load(), told())
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
			<-done
			if got := u.polls.Load(); got != want {
				t.Fatalf("%d polls, want %d", got, want)
			}
			if told() != int(want) {
				t.Fatalf("told %d polls, want %d", told(), want)
			}
			if !tc.lease {
				// Another replica's figures come in instead.
				limit, left := 5.0, 3.0
				p.ApplyFigures(pool.Keys()[0], &Figures{Limit: &limit, LimitRemaining: &left, CheckedAt: epoch}, 0.5, 0)
				p.ApplySpend(pool.Keys()[0], 0.25)
				if v := p.View(pool.Keys()[0]); v == nil || *v.LimitRemaining != 2.25 {
					t.Fatalf("view %+v, want 2.25 left", v)
				}
				p.Spend(pool.Keys()[0], "m", 0.5)
				if sh.spent != 0.5 {
					t.Fatalf("told %v spent, want 0.5", sh.spent)
				}
			}
		})
	}
}

func TestSharedFiguresRoundTrip(t *testing.T) {
	limit, left, free := 5.0, 1.5, 7
	f := &Figures{Limit: &limit, LimitRemaining: &left, LimitReset: "daily", Usage: 3.5, FreeRemaining: &free, account: "user_secret", CheckedAt: epoch}
	b, err := MarshalFigures(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || strings.Contains(string(b), "user_secret") {
		t.Fatalf("shared figures %s carry the account id", b)
	}
	g, err := UnmarshalFigures(b, epoch.Truncate(time.Millisecond))
	if err != nil || *g.LimitRemaining != 1.5 || g.LimitReset != "daily" || *g.FreeRemaining != 7 || !g.CheckedAt.Equal(epoch.Truncate(time.Millisecond)) {
		t.Fatalf("%+v %v", g, err)
	}
	for _, bad := range []string{`[]`, `{"Limit":"x"}`, `nope`} {
		if _, err := UnmarshalFigures([]byte(bad), epoch); err == nil {
			t.Errorf("UnmarshalFigures(%s) accepted", bad)
		}
	}
	if g, err := UnmarshalFigures([]byte(`{"LimitRemaining":2,"FreeRemaining":-3}`), epoch); err != nil || g.LimitRemaining != nil || g.FreeRemaining != nil {
		t.Errorf("remaining without a cap or negative free requests kept: %+v", g)
	}
}

// TestSpendWhilePollIsOut: GET /key's figures hold what was spent before
// the poll was sent, not what answers took while its answer travelled.
// Those are kept (and told to the Share as the poll's carried spend);
// settling used to wipe them, so that keygate showed more left than
// upstream until the next poll.
func TestSpendWhilePollIsOut(t *testing.T) {
	noLeaks(t)
	computed, release := make(chan struct{}), make(chan struct{})
	var remaining atomic.Int64 // upstream's limit_remaining, micro-USD
	var freeLeft atomic.Int64
	remaining.Store(1_000_000)
	freeLeft.Store(40)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := fmt.Sprintf(`{"data":{"limit":1,"limit_remaining":%g,"limit_reset":"daily","creator_user_id":"u",`+
			`"free_model_daily_requests":{"used":%d,"limit":50,"remaining":%d}}}`,
			float64(remaining.Load())/1e6, 50-freeLeft.Load(), freeLeft.Load())
		computed <- struct{}{}
		<-release
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	pool, err := keyring.New([]keyring.Entry{{ID: 1, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", 1))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := breaker.NewSet(pool, breaker.Settings{})
	sh := &share{lease: true}
	p := New(pool, set, Options{URL: srv.URL + "/key", Client: srv.Client(), Share: sh})
	k := pool.Keys()[0]
	spend := func(n int) {
		for range n {
			remaining.Add(-100_000)
			p.Spend(k, "m", 0.10)
			freeLeft.Add(-1)
			p.UseFree(k)
		}
	}
	for round := range 2 {
		// Round 0 has no figures yet; round 1 spends before the poll
		// too, which its figures hold.
		spend(round * 2)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if _, err := p.Check(context.Background(), k); err != nil {
				t.Error(err)
			}
		}()
		<-computed
		spend(3) // while the answer travels
		close(release)
		<-done
		release = make(chan struct{})
		v := p.View(k)
		if want := float64(remaining.Load()) / 1e6; v == nil || math.Abs(*v.LimitRemaining-want) > 1e-9 {
			t.Fatalf("round %d: limit_remaining %v, upstream's %v", round, *v.LimitRemaining, want)
		}
		if want := int(freeLeft.Load()); *v.FreeRequestsRemaining != want {
			t.Fatalf("round %d: free_requests_remaining %d, upstream's %d", round, *v.FreeRequestsRemaining, want)
		}
		sh.mu.Lock()
		carried, free := sh.carried[len(sh.carried)-1], sh.carriedFree[len(sh.carriedFree)-1]
		sh.mu.Unlock()
		if math.Abs(carried-0.3) > 1e-9 {
			t.Fatalf("round %d: the Share was told %v spent while the poll was out, want 0.3", round, carried)
		}
		if free != 3 {
			t.Fatalf("round %d: the Share was told %d free requests used while the poll was out, want 3", round, free)
		}
	}
}

// TestFreeUseIsShared: a free-model request made here is told to the
// Share; one another replica made counts here against the account (each
// of its keys), and the last one blocks its free-model calls, without
// being told back. Free requests used to stay on the replica that made
// them until the next poll.
func TestFreeUseIsShared(t *testing.T) {
	noLeaks(t)
	p, set, pool, u, _ := newPoller(t, 2)
	sh := &share{lease: true}
	p.o.Share = sh
	body := `{"data":{"limit":null,"creator_user_id":"acct","free_model_daily_requests":{"used":47,"limit":50,"remaining":3}}}`
	u.set(1, 0, body)
	u.set(2, 0, body)
	k1, k2 := pool.Keys()[0], pool.Keys()[1]
	for _, k := range pool.Keys() {
		if _, err := p.Check(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	p.UseFree(k1)
	if sh.free != 1 {
		t.Fatalf("told the Share of %d free requests, want 1", sh.free)
	}
	p.ApplyFreeUse(k1, 1) // another replica's, on key 1
	if v := p.View(k2); *v.FreeRequestsRemaining != 1 || !set.FreeBlockedUntil(k2).IsZero() {
		t.Fatalf("key 2 sees %d free requests left, blocked until %v; want 1, not blocked", *v.FreeRequestsRemaining, set.FreeBlockedUntil(k2))
	}
	p.ApplyFreeUse(k2, 1)
	if v := p.View(k1); *v.FreeRequestsRemaining != 0 || set.FreeBlockedUntil(k1).IsZero() {
		t.Fatalf("key 1 sees %d free requests left, blocked until %v; want none and blocked", *v.FreeRequestsRemaining, set.FreeBlockedUntil(k1))
	}
	if sh.free != 1 {
		t.Fatalf("another replica's free use was told back to the Share (%d)", sh.free)
	}
}

// TestAppliedFiguresKeepFreeUseWhileOut: another replica's figures come
// with the free-model requests used while its poll was out, which they do
// not hold; those count here as used, where taking the figures used to
// forget them (free requests seemed left that were not).
func TestAppliedFiguresKeepFreeUseWhileOut(t *testing.T) {
	free, limit := 10, 50
	for _, tc := range []struct {
		name    string
		carried int
		want    int
	}{
		{"none while out", 0, 10},
		{"three while out", 3, 7},
		{"a damaged count", -2, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, pool, _, _ := newPoller(t, 1)
			k := pool.Keys()[0]
			p.ApplyFigures(k, &Figures{FreeRemaining: &free, FreeLimit: &limit, CheckedAt: epoch.Add(-time.Minute)}, 0, 0)
			p.ApplyFreeUse(k, 4) // counted against the older figures
			p.ApplyFigures(k, &Figures{FreeRemaining: &free, FreeLimit: &limit, CheckedAt: epoch}, 0, tc.carried)
			if v := p.View(k); v == nil || v.FreeRequestsRemaining == nil || *v.FreeRequestsRemaining != tc.want {
				t.Fatalf("view %+v, want %d free requests left", v, tc.want)
			}
		})
	}
}
