package budget

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/keyring"
)

// share records what a Poller tells and answers its lease asks.
type share struct {
	lease  bool
	asked  atomic.Int32
	mu     sync.Mutex
	polled []*Figures
	spent  float64
}

func (s *share) Polled(_ *keyring.Key, _ string, f *Figures) {
	s.mu.Lock()
	s.polled = append(s.polled, f)
	s.mu.Unlock()
}

func (s *share) Spent(_ *keyring.Key, usd float64) {
	s.mu.Lock()
	s.spent += usd
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
				p.ApplyFigures(pool.Keys()[0], &Figures{Limit: &limit, LimitRemaining: &left, CheckedAt: epoch}, 0.5)
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
