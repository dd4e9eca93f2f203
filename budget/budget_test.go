package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

var epoch = time.Date(2026, 12, 1, 15, 4, 5, 0, time.UTC)

func TestNextReset(t *testing.T) {
	tue := time.Date(2026, 12, 1, 15, 4, 5, 0, time.UTC) // a Tuesday
	mon := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		reset string
		now   time.Time
		want  time.Time
	}{
		{"daily", tue, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{"weekly", tue, mon},
		{"weekly", mon, mon.AddDate(0, 0, 7)},
		{"weekly", mon.Add(-time.Hour), mon},
		{"monthly", tue, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"", tue, time.Time{}},
	} {
		if got := NextReset(tt.reset, tt.now); !got.Equal(tt.want) {
			t.Errorf("NextReset(%q, %v) = %v, want %v", tt.reset, tt.now, got, tt.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	f, err := ParseKey([]byte(`{"data":{"label":"sk-or-v1-abc...","limit":5,"limit_remaining":0.42,"limit_reset":"daily","usage":4.58,"usage_daily":1.2,
		"is_free_tier":false,"creator_user_id":"user_2x","rate_limit":{"requests":-1,"interval":"10s"},
		"free_model_daily_requests":{"used":990,"limit":1000,"remaining":10}}}`), epoch)
	if err != nil {
		t.Fatal(err)
	}
	if *f.Limit != 5 || *f.LimitRemaining != 0.42 || f.LimitReset != "daily" || f.account != "user_2x" || *f.FreeRemaining != 10 || *f.FreeLimit != 1000 {
		t.Fatalf("%+v", f)
	}
	f, err = ParseKey([]byte(`{"data":{"limit":null,"limit_remaining":null,"limit_reset":null,"usage":1}}`), epoch)
	if err != nil || f.Limit != nil || f.LimitRemaining != nil || f.FreeRemaining != nil {
		t.Fatalf("unlimited: %+v %v", f, err)
	}
	for _, bad := range []string{``, `[]`, `{"data":null}`, `{"data":{"limit":"x"}}`} {
		if _, err := ParseKey([]byte(bad), epoch); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(`{"data":{"limit":5,"limit_remaining":1,"free_model_daily_requests":{"remaining":3}}}`)
	f.Add(`{"data":{"limit_remaining":-1e309}}`)
	f.Fuzz(func(t *testing.T, s string) {
		fig, err := ParseKey([]byte(s), epoch)
		if err != nil {
			return
		}
		if fig.Limit == nil && fig.LimitRemaining != nil {
			t.Fatal("remaining without a cap")
		}
		if fig.FreeRemaining != nil && *fig.FreeRemaining < 0 {
			t.Fatal("negative free requests")
		}
	})
}

// upstream answers GET /key per key from figures tests change.
type upstream struct {
	mu     sync.Mutex
	status map[string]int
	body   map[string]string
	polls  atomic.Int32
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.polls.Add(1)
	u.mu.Lock()
	defer u.mu.Unlock()
	auth := r.Header.Get("Authorization")
	if st := u.status[auth]; st != 0 {
		w.WriteHeader(st)
		return
	}
	fmt.Fprint(w, u.body[auth])
}

func (u *upstream) set(key int, status int, body string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	a := fmt.Sprintf("Bearer sk-or-v1-%064d", key)
	u.status[a], u.body[a] = status, body
}

func newPoller(t *testing.T, n int) (*Poller, *breaker.Set, *keyring.Pool, *upstream, func() time.Time) {
	t.Helper()
	var now atomic.Int64
	now.Store(epoch.UnixNano())
	return newPollerAt(t, n, &now)
}

// newPollerAt is newPoller on the clock now (unix ns), which tests move.
func newPollerAt(t *testing.T, n int, now *atomic.Int64) (*Poller, *breaker.Set, *keyring.Pool, *upstream, func() time.Time) {
	t.Helper()
	entries := make([]keyring.Entry, n)
	for i := range entries {
		entries[i] = keyring.Entry{ID: i + 1, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", i+1))}
	}
	pool, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	set := breaker.NewSet(pool, breaker.Settings{Now: clock})
	u := &upstream{status: map[string]int{}, body: map[string]string{}}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	t.Cleanup(srv.Client().CloseIdleConnections)
	p := New(pool, set, Options{URL: srv.URL + "/key", Client: srv.Client(), Now: clock})
	return p, set, pool, u, clock
}

func TestSpendRestsAKeyAtItsCap(t *testing.T) {
	noLeaks(t)
	p, set, pool, u, clock := newPoller(t, 2)
	k := pool.Keys()[0]
	u.set(1, 0, `{"data":{"limit":1,"limit_remaining":0.05,"limit_reset":"daily","usage":0.95,"creator_user_id":"u1"}}`)
	if _, err := p.Check(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	if set.Account(k) != breaker.AccountLabel("u1") {
		t.Fatal("account not learned from creator_user_id")
	}
	if v := p.View(k); v == nil || *v.LimitRemaining != 0.05 {
		t.Fatalf("view %+v", v)
	}
	p.Spend(k, "m", 0.03)
	if !pool.Available(k, clock().UnixNano()) {
		t.Fatal("rested with money left")
	}
	p.Spend(k, "m", 0.03)
	if pool.Available(k, clock().UnixNano()) {
		t.Fatal("not rested with its cap spent")
	}
	if r, _, until := set.Rest(k); r != fault.KeyLimit || !until.Equal(NextReset("daily", clock())) {
		t.Fatalf("rest %v until %v, want key_limit to the next UTC midnight", r, until)
	}
	if v := p.View(k); *v.LimitRemaining != 0 || v.Usage < 1.009 {
		t.Fatalf("view after spend %+v", v)
	}
	// The operator raises the cap: the next poll lifts the rest.
	u.set(1, 0, `{"data":{"limit":10,"limit_remaining":9,"usage":1.01,"creator_user_id":"u1"}}`)
	if _, err := p.Check(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	if !pool.Available(k, clock().UnixNano()) {
		t.Fatal("still resting after a poll showed credit")
	}
}

func TestFreeQuotaBlocksFreeCalls(t *testing.T) {
	p, set, pool, u, clock := newPoller(t, 2)
	k1, k2 := pool.Keys()[0], pool.Keys()[1]
	body := `{"data":{"limit":null,"creator_user_id":"acct","free_model_daily_requests":{"used":48,"limit":50,"remaining":2}}}`
	u.set(1, 0, body)
	u.set(2, 0, body)
	for _, k := range pool.Keys() {
		if _, err := p.Check(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	p.UseFree(k1)
	if !set.FreeBlockedUntil(k2).IsZero() {
		t.Fatal("blocked with one free request left")
	}
	if v := p.View(k2); v == nil || *v.FreeRequestsRemaining != 1 {
		t.Fatalf("key 2's view of the account's free requests: %+v, want 1 left", v)
	}
	p.UseFree(k2)
	if got := set.FreeBlockedUntil(k2); !got.Equal(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("sibling free-blocked until %v, want next UTC midnight", got)
	}
	if !pool.Available(k2, clock().UnixNano()) {
		t.Fatal("a used-up free quota rested the key for paid calls")
	}
}

func TestConfirm(t *testing.T) {
	tests := []struct {
		name    string
		v       fault.Verdict
		status  int
		body    string
		resting bool
		reason  fault.Reason
	}{
		{"401 confirmed by GET /key 401", fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth}, 401, "", true, fault.Auth},
		{"401 not confirmed: GET /key fine", fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth}, 0, `{"data":{"limit":null}}`, false, 0},
		{"key limit confirmed", fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit}, 0, `{"data":{"limit":1,"limit_remaining":0,"limit_reset":"monthly"}}`, true, fault.KeyLimit},
		{"key limit confirmed by a cap with little left", fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit}, 0, `{"data":{"limit":1,"limit_remaining":0.0001,"limit_reset":"daily"}}`, true, fault.KeyLimit},
		{"key limit not confirmed: the cap has money left (a request too large for it)", fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit}, 0, `{"data":{"limit":10,"limit_remaining":9.5,"limit_reset":"monthly"}}`, false, 0},
		{"key limit not confirmed: no cap", fault.Verdict{Status: 402, Scope: fault.Key, Reason: fault.KeyLimit}, 0, `{"data":{"limit":null,"limit_remaining":null}}`, false, 0},
		{"upstream without GET /key: the fault stands", fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth}, 404, "", true, fault.Auth},
		{"blind 401, GET /key fails: nothing rests", fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth, Spared: true}, 500, "", false, 0},
		{"blind 401, no GET /key upstream: nothing rests", fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth, Spared: true}, 404, "", false, 0},
		{"blind 401 confirmed by GET /key 401", fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth, Spared: true}, 401, "", true, fault.Auth},
		{"credits: a valid key leaves the account's 402 standing", fault.Verdict{Status: 402, Scope: fault.Account, Reason: fault.Credits}, 0, `{"data":{"limit":null,"creator_user_id":"a"}}`, true, fault.Credits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			p, set, pool, u, clock := newPoller(t, 2)
			u.set(1, tt.status, tt.body)
			k := pool.Keys()[0]
			confirmNow(t, p, k, tt.v, clock(), u)
			r, _, until := set.Rest(k)
			long := until.Sub(clock()) > 5*time.Second
			if long != tt.resting || (tt.resting && r != tt.reason) {
				t.Fatalf("after confirm: %v until %v (long %v), want resting %v for %v", r, until, long, tt.resting, tt.reason)
			}
		})
	}
}

// noLeaks checks, after every other cleanup of t, that no goroutine t
// started is left.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// TestViewJSONShape: /keys' budget object has every field of the
// contract, unknown ones as null (limit_reset included), as upstream's
// own /key answer has them.
func TestViewJSONShape(t *testing.T) {
	noLeaks(t)
	p, _, pool, u, _ := newPoller(t, 2)
	for _, tc := range []struct {
		name, key string
		want      string
	}{
		{"capped, daily", `{"data":{"limit":1,"limit_remaining":0.5,"limit_reset":"daily","usage":0.5,"usage_daily":0.25}}`,
			`{"limit":1,"limit_remaining":0.5,"limit_reset":"daily","usage":0.5,"usage_daily":0.25,"free_requests_remaining":null,"checked_at":`},
		{"no cap, no reset", `{"data":{"limit":null,"limit_remaining":null,"limit_reset":null,"usage":2}}`,
			`{"limit":null,"limit_remaining":null,"limit_reset":null,"usage":2,"usage_daily":0,"free_requests_remaining":null,"checked_at":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := pool.Keys()[0]
			u.set(1, 0, tc.key)
			if _, err := p.Check(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(p.View(k))
			if err != nil || !strings.HasPrefix(string(b), tc.want) {
				t.Fatalf("view JSON %s (%v), want it to start %s", b, err, tc.want)
			}
		})
	}
}

// TestRoutinePollLeavesACreditRest: GET /key does not show an account's
// balance, so a routine poll (of a key with no cap, or with money left on
// its cap) must not end the account's rest for credits; a check asked for
// by an operator, who may have added credit, does.
func TestRoutinePollLeavesACreditRest(t *testing.T) {
	for _, body := range []string{
		`{"data":{"limit":null,"limit_remaining":null,"creator_user_id":"acct"}}`,
		`{"data":{"limit":10,"limit_remaining":9.5,"limit_reset":"monthly","creator_user_id":"acct"}}`,
	} {
		noLeaks(t)
		p, set, pool, u, clock := newPoller(t, 2)
		u.set(1, 0, body)
		u.set(2, 0, body)
		k1, k2 := pool.Keys()[0], pool.Keys()[1]
		for _, k := range pool.Keys() {
			if _, err := p.Check(t.Context(), k); err != nil {
				t.Fatal(err)
			}
		}
		// As a confirmed credit 402 of key 1 rests it: the key, and its account.
		set.Confirmed(k1, fault.Verdict{Status: http.StatusPaymentRequired, Scope: fault.Account, Reason: fault.Credits})
		set.RestAccount(k1, fault.Credits, http.StatusPaymentRequired, clock().Add(10*time.Minute))
		p.settle(k1, p.mustPoll(t, k1), counted{}, nil)
		p.settle(k2, p.mustPoll(t, k2), counted{}, nil)
		if pool.Available(k1, clock().UnixNano()) || pool.Available(k2, clock().UnixNano()) {
			t.Fatalf("%s: a routine poll ended the account's rest for credits", body)
		}
		if _, err := p.Check(t.Context(), k2); err != nil {
			t.Fatal(err)
		}
		if !pool.Available(k1, clock().UnixNano()) || !pool.Available(k2, clock().UnixNano()) {
			t.Fatalf("%s: an operator's check left the account resting", body)
		}
	}
}

// mustPoll reads k's GET /key as a routine poll does, for settle.
func (p *Poller) mustPoll(t *testing.T, k *keyring.Key) *Figures {
	t.Helper()
	f, _, err := p.poll(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFiguresOfAPastPeriod: figures read before a key's cap restarts (or
// before UTC midnight, for the free quota) are not taken as the new
// period's. A spend or a free call just after the boundary, while GET
// /key fails, used to rest the key (or block free calls) for a whole
// period more; and the next poll comes a few seconds after the boundary.
func TestFiguresOfAPastPeriod(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		reset         string
		polled, after string
	}{
		{"daily", "2026-12-01T23:59:00Z", "2026-12-02T00:00:05Z"},
		{"weekly", "2026-12-06T23:59:00Z", "2026-12-07T00:00:05Z"}, // Sunday to Monday
		{"monthly", "2026-12-31T23:59:00Z", "2027-01-01T00:00:05Z"},
	} {
		t.Run(tt.reset, func(t *testing.T) {
			var now atomic.Int64
			now.Store(at(tt.polled).UnixNano())
			p, set, pool, u, clock := newPollerAt(t, 1, &now)
			p.o.Interval = time.Hour
			k := pool.Keys()[0]
			u.set(1, 0, `{"data":{"limit":1,"limit_remaining":0,"limit_reset":"`+tt.reset+`","usage":1,"usage_daily":0.4,"creator_user_id":"u"}}`)
			if _, err := p.Check(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			boundary := NextReset(tt.reset, clock())
			if _, _, until := set.Rest(k); !until.Equal(boundary) {
				t.Fatalf("spent cap rests until %v, want %v", until, boundary)
			}
			if next := time.Unix(0, p.slots[0].next.Load()); next.Before(boundary) || next.After(boundary.Add(5*time.Second)) {
				t.Errorf("next poll at %v, want within 5 s after the cap restarts at %v", next, boundary)
			}
			now.Store(at(tt.after).UnixNano())
			u.set(1, http.StatusBadGateway, "")
			if _, err := p.Check(t.Context(), k); err == nil {
				t.Fatal("the failing poll succeeded")
			}
			p.Spend(k, "m", 0.01)
			if !pool.Available(k, clock().UnixNano()) {
				_, _, until := set.Rest(k)
				t.Fatalf("one answer after the cap restarted rests the key until %v", until)
			}
			v := p.View(k)
			if v.LimitRemaining == nil || *v.LimitRemaining < 0.989 || *v.LimitRemaining > 0.991 {
				t.Errorf("limit_remaining after the restart %v, want 0.99", v.LimitRemaining)
			}
			if tt.reset == "daily" && (v.UsageDaily < 0.0099 || v.UsageDaily > 0.0101) {
				t.Errorf("usage_daily after midnight %v, want the new day's 0.01", v.UsageDaily)
			}
		})
	}
	for _, quota := range []string{`"used":50,"limit":50,"remaining":0`, `"remaining":0`} {
		t.Run("free "+quota, func(t *testing.T) {
			var now atomic.Int64
			now.Store(at("2026-12-01T23:59:00Z").UnixNano())
			p, set, pool, u, clock := newPollerAt(t, 1, &now)
			k := pool.Keys()[0]
			u.set(1, 0, `{"data":{"limit":null,"creator_user_id":"u","free_model_daily_requests":{`+quota+`}}}`)
			if _, err := p.Check(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			if got := set.FreeBlockedUntil(k); !got.Equal(at("2026-12-02T00:00:00Z")) {
				t.Fatalf("free calls blocked until %v, want midnight", got)
			}
			now.Store(at("2026-12-02T00:00:05Z").UnixNano())
			u.set(1, http.StatusBadGateway, "")
			_, _ = p.Check(t.Context(), k)
			p.UseFree(k)
			if got := set.FreeBlockedUntil(k); got.After(clock()) {
				t.Fatalf("one free call after midnight blocks free calls until %v", got)
			}
			v := p.View(k)
			switch {
			case quota == `"remaining":0` && v.FreeRequestsRemaining != nil:
				t.Errorf("free requests left %d, want unknown: upstream never said the quota", *v.FreeRequestsRemaining)
			case quota != `"remaining":0` && (v.FreeRequestsRemaining == nil || *v.FreeRequestsRemaining != 49):
				t.Errorf("free requests left %v, want the new day's 49", v.FreeRequestsRemaining)
			}
		})
	}
}

// cooldowns records the rests a Poller tells, as the console and the
// metrics learn them.
type cooldowns struct {
	relay.Observer
	mu    sync.Mutex
	rests []fault.Verdict
}

func (c *cooldowns) Cooldown(_ *keyring.Key, v fault.Verdict, _ time.Duration) {
	c.mu.Lock()
	c.rests = append(c.rests, v)
	c.mu.Unlock()
}

func (c *cooldowns) told() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rests)
}

// TestRejectedPollRestsTheKey: a poll of a revoked key (GET /key answers
// 401) rests it for auth with nothing pending, as a confirmed 401
// would, and tells it once, not at every poll; the first request would
// otherwise pay a failover. A key GET /key accepts stays in rotation.
func TestRejectedPollRestsTheKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		resting bool
	}{
		{"401", http.StatusUnauthorized, true},
		// A 403 may be a firewall's, or an API's for a path it does not
		// serve: given to every key, it would bench the pool.
		{"403", http.StatusForbidden, false},
		{"accepted", 0, false},
		{"unreachable", http.StatusBadGateway, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			p, set, pool, u, clock := newPoller(t, 2)
			obs := &cooldowns{}
			p.o.Cooldowns = obs
			k := pool.Keys()[0]
			u.set(1, tc.status, `{"data":{"limit":null}}`)
			for range 2 {
				_, c, err := p.poll(t.Context(), k)
				p.settle(k, nil, c, err)
			}
			if got := !pool.Available(k, clock().UnixNano()); got != tc.resting {
				t.Fatalf("resting %v after the polls, want %v", got, tc.resting)
			}
			want := 0
			if tc.resting {
				want = 1
				if r, _, until := set.Rest(k); r != fault.Auth || until.Sub(clock()) <= 5*time.Second {
					t.Fatalf("rest %v until %v, want auth past a hold", r, until)
				}
			}
			if obs.told() != want {
				t.Fatalf("told %d rests, want %d", obs.told(), want)
			}
		})
	}
}

// TestPollSoon: an answer that ended without its usage brings the key's
// next poll to within SoonPoll, once per SoonPoll however many such
// answers come, and only while polling is on.
func TestPollSoon(t *testing.T) {
	var now atomic.Int64
	now.Store(epoch.UnixNano())
	for _, tc := range []struct {
		name     string
		interval time.Duration
		moved    bool
	}{
		{"polling on", time.Hour, true},
		{"polling off", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			p, _, pool, u, clock := newPollerAt(t, 1, &now)
			p.o.Interval = tc.interval
			k := pool.Keys()[0]
			u.set(1, 0, `{"data":{"limit":1,"limit_remaining":0.5,"limit_reset":"monthly","creator_user_id":"u"}}`)
			if _, err := p.Check(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			s := &p.slots[0]
			far := clock().Add(time.Hour).UnixNano()
			s.next.Store(far)
			for round := range 3 {
				p.PollSoon(k)
				p.PollSoon(k) // a second cut stream at once moves nothing more
				soon := s.next.Load() <= clock().Add(SoonPoll).UnixNano()
				// Round 1 comes within SoonPoll of round 0: nothing
				// moves; round 2 is past it.
				want := tc.moved && round != 1
				if soon != want {
					t.Fatalf("round %d: next poll in %v, want within %v: %v", round, time.Duration(s.next.Load()-clock().UnixNano()), SoonPoll, want)
				}
				s.next.Store(far)
				if round == 0 {
					now.Add(int64(SoonPoll / 2))
				} else {
					now.Add(int64(SoonPoll))
				}
			}
		})
	}
}

// TestPollAcrossABoundary: a poll sent just before a cap's reset (or UTC
// midnight) and answered just after holds the old period's figures; they
// are as of the send, so they count as renewed. Taken as of the answer,
// they rested the key (or blocked free calls) until the next boundary.
func TestPollAcrossABoundary(t *testing.T) {
	sent := time.Date(2026, 12, 1, 23, 59, 59, 950e6, time.UTC)
	got := time.Date(2026, 12, 2, 0, 0, 0, 50e6, time.UTC)
	for _, body := range []string{
		`{"data":{"limit":1,"limit_remaining":0,"limit_reset":"daily","usage":1,"creator_user_id":"u"}}`,
		`{"data":{"limit":null,"creator_user_id":"u","free_model_daily_requests":{"used":50,"limit":50,"remaining":0}}}`,
	} {
		var now atomic.Int64
		now.Store(sent.UnixNano())
		p, set, pool, _, clock := newPollerAt(t, 1, &now)
		p.o.Interval = time.Minute
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			now.Store(got.UnixNano()) // the answer lands after midnight
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		p.o.URL, p.o.Client = srv.URL+"/key", srv.Client()
		k := pool.Keys()[0]
		if _, err := p.Check(t.Context(), k); err != nil {
			t.Fatal(err)
		}
		if r, _, until := set.Rest(k); !until.IsZero() {
			t.Errorf("%s: the key rests (%v) until %v", body, r, until)
		}
		if u := set.FreeBlockedUntil(k); u.After(clock()) {
			t.Errorf("%s: free calls blocked until %v", body, u)
		}
	}
}

// TestUnsupportedSaidOnce: an upstream without GET /key (404) stops the
// polls, and the log says so once, however many keys were polled: a user
// whose base URL is wrong sees why budgets stay unknown.
func TestUnsupportedSaidOnce(t *testing.T) {
	noLeaks(t)
	p, _, pool, u, _ := newPoller(t, 2)
	var logs bytes.Buffer
	p.o.Log = slog.New(slog.NewTextHandler(&logs, nil))
	for i, k := range pool.Keys() {
		u.set(i+1, http.StatusNotFound, "")
		if _, err := p.Check(t.Context(), k); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("key %d: %v, want ErrUnsupported", k.ID, err)
		}
	}
	if n := strings.Count(logs.String(), "GET /key answered 404"); n != 1 {
		t.Fatalf("said %d times, want once:\n%s", n, logs.String())
	}
}

// TestPollNowBounded: PollNow polls at most once per SoonPoll a key: a
// client sending requests too large for an account gets a 402 for each,
// and each sent GET /key upstream (40 such requests made 35 polls).
func TestPollNowBounded(t *testing.T) {
	noLeaks(t)
	var now atomic.Int64
	now.Store(epoch.UnixNano())
	p, _, pool, u, _ := newPollerAt(t, 2, &now)
	k, other := pool.Keys()[0], pool.Keys()[1]
	for _, id := range []int{1, 2} {
		u.set(id, 0, `{"data":{"limit":1,"limit_remaining":0.5,"limit_reset":"monthly","creator_user_id":"u"}}`)
	}
	settle := func(want int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); u.polls.Load() < want && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // room for a poll too many
		for p.slots[0].polling.Load() || p.slots[1].polling.Load() {
			time.Sleep(time.Millisecond)
		}
		if got := u.polls.Load(); got != want {
			t.Fatalf("%d polls, want %d", got, want)
		}
	}
	for range 40 {
		p.PollNow(k)
		settle(1)
	}
	p.PollNow(other) // another key's bound is its own
	settle(2)
	now.Add(int64(SoonPoll))
	p.PollNow(k)
	settle(3)
}
