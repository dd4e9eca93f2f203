package budget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

// ErrUnsupported means the upstream has no GET /key (an OpenAI-compatible
// API other than OpenRouter): there is no budget to read.
var ErrUnsupported = errors.New("budget: upstream has no GET /key")

// ErrKeyRejected means GET /key itself answered 401 or 403: the key is
// revoked or unknown.
var ErrKeyRejected = errors.New("budget: GET /key refused the key")

// errKeyUnauthorized is the 401 form of ErrKeyRejected, the one OpenRouter
// answers for a revoked key.
var errKeyUnauthorized = errors.New("status 401")

// Observer learns what the poller finds, for console lines and metrics.
type Observer interface {
	// Budget: k's figures were read (f) or, when err is set, not.
	Budget(k *keyring.Key, account string, f *Figures, err error)
	// Spent: k's answer cost usd.
	Spent(k *keyring.Key, model string, usd float64)
	// Remaining: what is left of k's cap, usd; ok false while unknown or
	// unlimited.
	Remaining(k *keyring.Key, usd float64, ok bool)
	// FreeRemaining: the free-model requests left today of the account
	// with label account.
	FreeRemaining(account string, n int)
}

// Options configure a Poller.
type Options struct {
	// URL is GET /key's address: <OPENROUTER_BASE_URL>/key.
	URL string
	// Client sends the polls, through the gateway's one transport.
	Client *http.Client
	// Interval between a key's polls, jittered ±20%; 0 polls only on
	// demand (faults to confirm, admin checks).
	Interval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Observer is told of polls and spend; nil tells nobody.
	Observer Observer
	// Cooldowns is told of rests a confirmation starts (the relay's
	// observer); nil tells nobody.
	Cooldowns relay.Observer
	// Log receives the poller's own warnings; nil discards them.
	Log *slog.Logger
	// Share, when set, is told each poll's figures and each answer's
	// spend, for other replicas, and asked for the lease of each
	// scheduled poll.
	Share Share
}

// Poller keeps every key's budget. Safe for concurrent use.
type Poller struct {
	o     Options
	pool  *keyring.Pool
	set   *breaker.Set
	slots []slotState
	wg    sync.WaitGroup
	// unsupported is set once GET /key answered 404: polls stop.
	unsupported atomic.Bool
	// ctx ends the polls when Run ends; mu and closed keep polls from
	// starting after that.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	// retired is set once a reload put another poller in force: what
	// this one still learns (a poll or check out across the reload) is
	// of keys whose ids may name other keys now, and reaches no gauge.
	retired atomic.Bool
}

// Retire tells p that a reload put another poller in force: what it still
// learns (a poll or an admin check out across the reload) reaches neither
// the Observer's console lines nor its gauges, which go by key id, and an
// id may name another key now.
func (p *Poller) Retire() { p.retired.Store(true) }

// slotState is one key's budget state. figures is swapped whole on each
// poll; spent and freeUsed count what answers took since, lock-free.
type slotState struct {
	figures  atomic.Pointer[Figures]
	polling  atomic.Bool
	spent    atomic.Uint64 // float64 bits
	freeUsed atomic.Int64
	next     atomic.Int64 // unix ns of the next periodic poll
	soon     atomic.Int64 // unix ns of the last PollSoon that moved next
	now      atomic.Int64 // unix ns of the last PollNow that polled
	pending  atomic.Pointer[fault.Verdict]
}

// New returns a poller over pool whose findings go into set. Run starts it.
func New(pool *keyring.Pool, set *breaker.Set, o Options) *Poller {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Poller{o: o, pool: pool, set: set, slots: make([]slotState, pool.Len()), ctx: ctx, cancel: cancel}
}

// Run polls every key now, then each again every Interval (jittered),
// until ctx ends; it returns when every poll it started has ended.
func (p *Poller) Run(ctx context.Context) {
	defer func() {
		p.cancel()
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.wg.Wait()
	}()
	if p.o.Interval <= 0 {
		<-ctx.Done()
		return
	}
	start := p.o.Now().UnixNano()
	for _, k := range p.pool.Keys() {
		// A key a reload carried over keeps its turn; the others are
		// polled now (by one replica, when they share Redis).
		if n := p.slots[k.Slot()].next.Load(); n == 0 || n <= start {
			p.scheduled(k)
		}
	}
	tick := time.NewTicker(min(time.Second, p.o.Interval/4))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := p.o.Now().UnixNano()
		for _, k := range p.pool.Keys() {
			if n := p.slots[k.Slot()].next.Load(); n != 0 && n <= now {
				p.scheduled(k)
			}
		}
	}
}

// PollNow polls k soon, unless a poll of it is out already or PollNow
// started one less than SoonPoll ago: right after a 402 or 429, when its
// figures may have changed. The bound is a client's: each request it makes
// too large for an account gets a 402, and each polled at once sent GET
// /key upstream as fast as the client sent requests.
func (p *Poller) PollNow(k *keyring.Key) {
	if !spaced(&p.slots[k.Slot()].now, p.o.Now().UnixNano()) {
		return
	}
	p.start(k)
}

// gauge reports to the Observer what f, with what was spent since, leaves
// k's cap at now, and its account's free requests (with account known).
func (p *Poller) gauge(k *keyring.Key, s *slotState, f *Figures, account string, now time.Time) {
	o := p.o.Observer
	if o == nil || p.retired.Load() {
		return
	}
	left, ok := remaining(f, s, now)
	o.Remaining(k, left, ok)
	if free, ok := freeLeft(f, s, now); ok && account != "" {
		o.FreeRemaining(account, max(0, free))
	}
}

// spaced reports whether SoonPoll has passed since last (unix ns), and
// moves it to now if so: of calls at once, one wins.
func spaced(last *atomic.Int64, now int64) bool {
	at := last.Load()
	return (at == 0 || now-at >= int64(SoonPoll)) && last.CompareAndSwap(at, now)
}

// SoonPoll is how soon PollSoon has a key polled, and the least time
// between two of its polls of one key.
const SoonPoll = 5 * time.Second

// PollSoon brings k's next scheduled poll to within SoonPoll, at most
// once per SoonPoll: an answer on k ended without its usage (a stream cut
// before its last event), and upstream may charge it all the same. It
// does nothing while polling is off or before k's first poll. Called on
// the usage tap's close of such an answer: atomics only.
func (p *Poller) PollSoon(k *keyring.Key) {
	if p.o.Interval <= 0 || p.unsupported.Load() {
		return
	}
	s := &p.slots[k.Slot()]
	now := p.o.Now().UnixNano()
	if !spaced(&s.soon, now) {
		return
	}
	at := now + int64(SoonPoll)
	for {
		n := s.next.Load()
		if n == 0 || n <= at || s.next.CompareAndSwap(n, at) {
			return
		}
	}
}

// start runs one poll of k on its own goroutine; never two at a time.
func (p *Poller) start(k *keyring.Key) {
	p.spawn(k)
}

// spawn starts one poll of k unless one is out or the poller has
// stopped; it reports whether it did.
func (p *Poller) spawn(k *keyring.Key) bool {
	s := &p.slots[k.Slot()]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !s.polling.CompareAndSwap(false, true) {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f, c, err := p.poll(p.ctx, k)
		p.settle(k, f, c, err)
		p.polled(k)
	}()
	return true
}

// polled ends k's poll. A fault that came to be confirmed after settle
// looked for one (Confirm saw this poll out and left it to it) gets a
// poll of its own, or it would wait for the next turn, past its hold.
func (p *Poller) polled(k *keyring.Key) {
	s := &p.slots[k.Slot()]
	s.polling.Store(false)
	if s.pending.Load() != nil {
		p.spawn(k)
	}
}

// Check polls k now and waits for the answer (POST /admin/keys/{id}/check).
// A check that reads the key also ends its account's rest for credits:
// GET /key cannot show the balance, so an operator who added credit says
// so by asking for a check.
func (p *Poller) Check(ctx context.Context, k *keyring.Key) (*Figures, error) {
	f, c, err := p.poll(ctx, k)
	p.settle(k, f, c, err)
	if f != nil {
		// The account's rest, and each of its keys' own: a confirmed
		// credit 402 rests the key that got it too.
		var sib keyring.Exclude
		p.set.Siblings(k, &sib)
		for _, m := range p.pool.Keys() {
			if sib.Has(m.Slot()) {
				p.set.Lift(m, fault.Credits)
			}
		}
	}
	return f, err
}

// counted is what answers had taken off a key's figures when its poll was
// sent: upstream's answer to the poll holds that spend already, not what
// answers take off while it travels.
type counted struct {
	spent float64
	free  int64
}

// poll reads k's GET /key, and what was counted on k when it was sent.
func (p *Poller) poll(ctx context.Context, k *keyring.Key) (*Figures, counted, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.o.URL, nil)
	if err != nil {
		return nil, counted{}, fmt.Errorf("budget: building GET /key: %w", err)
	}
	k.Secret.SetAuthorization(req.Header)
	s := &p.slots[k.Slot()]
	c := counted{spent: math.Float64frombits(s.spent.Load()), free: s.freeUsed.Load()}
	// The figures are as of the send, not the answer: one sent before a
	// cap's reset (or midnight) and answered after it holds the old
	// period's, which count as renewed from then on.
	sent := p.o.Now()
	resp, err := p.o.Client.Do(req)
	if err != nil {
		// The error may quote the URL, never the key (it is a header).
		return nil, c, fmt.Errorf("budget: GET /key for key %d: %w", k.ID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, c, fmt.Errorf("budget: reading GET /key for key %d: %w", k.ID, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return nil, c, ErrUnsupported
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, c, fmt.Errorf("%w: %w", ErrKeyRejected, errKeyUnauthorized)
	case resp.StatusCode == http.StatusForbidden:
		return nil, c, fmt.Errorf("%w (status 403)", ErrKeyRejected)
	case resp.StatusCode != http.StatusOK:
		return nil, c, fmt.Errorf("budget: GET /key for key %d: status %d", k.ID, resp.StatusCode)
	}
	f, err := ParseKey(body, sent)
	if err != nil {
		return nil, c, err
	}
	return &f, c, nil
}

// settle keeps a poll's result and acts on it and on a fault waiting for
// it to be confirmed; c is what was counted on k when the poll was sent.
func (p *Poller) settle(k *keyring.Key, f *Figures, c counted, err error) {
	s := &p.slots[k.Slot()]
	now := p.o.Now()
	if p.o.Interval > 0 {
		cur := f
		if cur == nil {
			cur = s.figures.Load()
		}
		s.next.Store(p.due(now, cur))
	}
	if errors.Is(err, ErrUnsupported) {
		// Said once: budgets stay unknown from here on, which a wrong
		// base URL (every call a 404) shows first.
		if !p.unsupported.Swap(true) {
			p.o.Log.Info("ℹ️  GET /key answered 404: this upstream has no budgets keygate can read, so none are polled and faults act without GET /key confirming them (at OpenRouter, OPENROUTER_BASE_URL is wrong: its API is https://openrouter.ai/api/v1)",
				"event", "budget_unsupported", "key_id", k.ID)
		}
		s.next.Store(0)
	}
	account := ""
	if f != nil {
		account = p.set.SetAccount(k, f.account)
		// What was spent while the poll was out is not in f: only what
		// was counted when it was sent goes.
		carried, free := s.uncount(c)
		s.figures.Store(f)
		p.apply(k, f, now, true)
		if p.o.Share != nil {
			p.o.Share.Polled(k, account, f, carried, int(free))
		}
	} else if err != nil && !errors.Is(err, ErrUnsupported) {
		p.o.Log.Debug("budget poll failed", "event", "budget_poll_failed", "key_id", k.ID, "err", err)
	}
	if o := p.o.Observer; o != nil && !p.retired.Load() {
		// A retired poller's key may be another's id now: its console
		// line and gauges would tell the old key's figures of the new.
		o.Budget(k, account, f, err)
		if f != nil {
			p.gauge(k, s, f, account, now)
		}
	}
	if v := s.pending.Swap(nil); v != nil {
		p.decide(k, *v, f, err, now)
	} else if errors.Is(err, errKeyUnauthorized) {
		p.rejected(k, now)
	}
}

// rejected rests k, whose own GET /key answered 401 with nothing pending
// (a start-up or routine poll of a revoked key), as a confirmed 401
// would: left in rotation, it would cost the next request a failover. A
// 403 does not: a firewall or an API that forbids paths it does not serve
// answers every key so, and would bench the pool. A key already resting
// for that is left as it is, so that each poll of a revoked key does not
// tell its rest again.
func (p *Poller) rejected(k *keyring.Key, now time.Time) {
	if r, _, until := p.set.Rest(k); r == fault.Auth && until.After(now) {
		return
	}
	p.decide(k, fault.Verdict{Status: http.StatusUnauthorized, Scope: fault.Key, Reason: fault.Auth, Retry: true}, nil, ErrKeyRejected, now)
}

// uncount takes c off what s counts, never below 0 (another replica's
// figures may have set it meanwhile), and returns the spend and free use
// left: what was taken while the poll was out.
func (s *slotState) uncount(c counted) (float64, int64) {
	for {
		old := s.spent.Load()
		left := math.Max(0, math.Float64frombits(old)-c.spent)
		if s.spent.CompareAndSwap(old, math.Float64bits(left)) {
			for {
				n := s.freeUsed.Load()
				if free := max(0, n-c.free); s.freeUsed.CompareAndSwap(n, free) {
					return left, free
				}
			}
		}
	}
}

// apply rests k while its cap is spent and blocks its account's free-model
// calls while its free requests are used up, and lifts both when the
// figures show some left. tell says that this replica learned it (its
// poll, its answers): a new rest or block is then told to Cooldowns, once.
// Another replica's spend tells it there, as each replica counts its own.
func (p *Poller) apply(k *keyring.Key, f *Figures, now time.Time, tell bool) {
	s := &p.slots[k.Slot()]
	left, capped := remaining(f, s, now)
	switch {
	case capped && left <= 0:
		until := NextReset(f.LimitReset, now)
		if until.IsZero() {
			until = now.Add(24 * time.Hour)
		}
		_, _, was := p.set.Rest(k)
		p.set.RestKey(k, fault.KeyLimit, http.StatusPaymentRequired, until)
		// A rest learned with no 402 is told as a confirmed one is, once:
		// not while the key already rests that long, nor for a 402 whose
		// confirmation (decide, after this) tells it.
		pending := s.pending.Load()
		if c := p.o.Cooldowns; c != nil && tell && was.Before(until) && (pending == nil || pending.Reason != fault.KeyLimit) {
			c.Cooldown(k, fault.Verdict{Status: http.StatusPaymentRequired, Scope: fault.Key, Reason: fault.KeyLimit, Polled: true}, until.Sub(now))
		}
	case capped && left <= DryUSD:
		// As good as spent: a 402's rest confirmed at this much (decide)
		// stays, but none starts without a 402, as a cheap call may
		// still fit.
	default:
		// The cap has some left (or there is none). An account resting
		// for credits stays so: GET /key does not show the balance.
		p.set.Lift(k, fault.KeyLimit)
	}
	if free, ok := freeLeft(f, s, now); ok && free <= 0 {
		p.blockFree(k, relay.NextUTCMidnight(now), tell)
	} else if ok {
		// Free requests left today: a day's block ends (a per-minute
		// one, which ends well before midnight, stays).
		p.set.UnblockFree(k, relay.NextUTCMidnight(now).Add(-time.Minute))
	}
}

// blockFree blocks the free-model calls of k's account until until, its
// free requests for the day used up as its figures show, and tells it as
// a 429 free-models-per-day is told (a free_quota cooldown of the account),
// once (not while a block that long is in force), when tell.
func (p *Poller) blockFree(k *keyring.Key, until time.Time, tell bool) {
	was := p.set.FreeBlockedUntil(k)
	p.set.BlockFree(k, until)
	if c := p.o.Cooldowns; c != nil && tell && was.Before(until) {
		c.AccountCooldown(k, fault.Verdict{Status: http.StatusTooManyRequests, Scope: fault.Account,
			Reason: fault.FreeQuota, FreeOnly: true}, until)
	}
}

// remaining is what is left of f's cap at now, less what was spent since
// f was read; ok is false without a cap. Figures read before the cap's
// limit_reset boundary have the whole limit again after it (what was
// spent since the poll still counts: a little early, never late). A zero
// now skips that test, for the hot path: callers look again with the
// clock before acting on nothing left.
func remaining(f *Figures, s *slotState, now time.Time) (float64, bool) {
	if f == nil || f.LimitRemaining == nil {
		return 0, false
	}
	left := *f.LimitRemaining
	if f.Limit != nil && capRenewed(f, now) {
		left = *f.Limit
	}
	return left - math.Float64frombits(s.spent.Load()), true
}

// freeLeft is the account's free-model requests left at now, as remaining
// is for the cap: after the UTC midnight that followed f's poll the day's
// whole quota is back (unknown, when upstream did not say the quota).
func freeLeft(f *Figures, s *slotState, now time.Time) (int, bool) {
	if f == nil || f.FreeRemaining == nil {
		return 0, false
	}
	free := *f.FreeRemaining
	if dayRenewed(f, now) {
		if f.FreeLimit == nil {
			return 0, false
		}
		free = *f.FreeLimit
	}
	return free - int(s.freeUsed.Load()), true
}

// capRenewed reports whether f's cap restarted (limit_reset) by now.
func capRenewed(f *Figures, now time.Time) bool {
	return !now.IsZero() && f.LimitReset != "" && !now.Before(NextReset(f.LimitReset, f.CheckedAt))
}

// dayRenewed reports whether a UTC day began after f was read.
func dayRenewed(f *Figures, now time.Time) bool {
	return !now.IsZero() && !now.Before(relay.NextUTCMidnight(f.CheckedAt))
}

// renewal is the first time after f's poll at which capRenewed or
// dayRenewed turns true; zero when neither can.
func renewal(f *Figures) time.Time {
	var at time.Time
	if f.Limit != nil && f.LimitReset != "" {
		at = NextReset(f.LimitReset, f.CheckedAt)
	}
	if f.FreeRemaining != nil {
		if day := relay.NextUTCMidnight(f.CheckedAt); at.IsZero() || day.Before(at) {
			at = day
		}
	}
	return at
}

// Spend takes an answer's usage.cost off k's figures. It is called on the
// hot path (the usage tap's close): atomics only.
func (p *Poller) Spend(k *keyring.Key, model string, usd float64) {
	if usd <= 0 || math.IsNaN(usd) || math.IsInf(usd, 0) {
		return
	}
	s := &p.slots[k.Slot()]
	for {
		old := s.spent.Load()
		if s.spent.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+usd)) {
			break
		}
	}
	if p.o.Share != nil {
		p.o.Share.Spent(k, usd)
	}
	if o := p.o.Observer; o != nil {
		o.Spent(k, model, usd)
	}
	if f := s.figures.Load(); f != nil {
		left, ok := remaining(f, s, time.Time{})
		if ok && left <= 0 {
			// Only now is the clock read: figures of a past period have
			// the cap back.
			now := p.o.Now()
			if left, _ = remaining(f, s, now); left <= 0 {
				p.apply(k, f, now, true)
			}
		}
		if ok && p.o.Observer != nil {
			p.o.Observer.Remaining(k, left, true)
		}
	}
}

// UseFree counts one free-model request of k's account, on each of its
// keys' figures, and tells the Share.
func (p *Poller) UseFree(k *keyring.Key) {
	p.useFree(k, 1, true)
	if p.o.Share != nil {
		p.o.Share.UsedFree(k)
	}
}

// useFree counts n free-model requests of k's account; tell as for apply.
func (p *Poller) useFree(k *keyring.Key, n int64, tell bool) {
	// The quota is the account's: every key of it has n fewer left.
	var sib keyring.Exclude
	p.set.Siblings(k, &sib)
	for _, m := range p.pool.Keys() {
		if sib.Has(m.Slot()) {
			p.slots[m.Slot()].freeUsed.Add(n)
		}
	}
	s := &p.slots[k.Slot()]
	if f := s.figures.Load(); f != nil {
		free, ok := freeLeft(f, s, time.Time{})
		if ok && free <= 0 {
			// Only now is the clock read: figures of a past day have the
			// quota back.
			now := p.o.Now()
			if free, ok = freeLeft(f, s, now); ok && free <= 0 {
				p.blockFree(k, relay.NextUTCMidnight(now), tell)
			}
		}
		if ok && p.o.Observer != nil {
			if acct := p.set.Account(k); acct != "" {
				p.o.Observer.FreeRemaining(acct, max(0, free))
			}
		}
	}
}

// DryUSD is what a key cap may have left and still count as spent when
// a 402 says so: a tenth of a cent.
const DryUSD = 0.001

// View is k's budget as /keys and the status page show it; nil while
// unknown.
func (p *Poller) View(k *keyring.Key) *View {
	s := &p.slots[k.Slot()]
	f := s.figures.Load()
	if f == nil {
		return nil
	}
	now := p.o.Now()
	spent := math.Float64frombits(s.spent.Load())
	daily := f.UsageDaily
	if dayRenewed(f, now) {
		daily = 0
	}
	v := &View{Limit: f.Limit, Usage: f.Usage + spent, UsageDaily: daily + spent, CheckedAt: f.CheckedAt.UTC()}
	if f.LimitReset != "" {
		v.LimitReset = &f.LimitReset
	}
	if left, ok := remaining(f, s, now); ok {
		left = math.Max(0, left)
		v.LimitRemaining = &left
	}
	if free, ok := freeLeft(f, s, now); ok {
		free = max(0, free)
		v.FreeRequestsRemaining = &free
	}
	return v
}

// View is the contract's `budget` object of /keys.
type View struct {
	Limit                 *float64  `json:"limit"`
	LimitRemaining        *float64  `json:"limit_remaining"`
	LimitReset            *string   `json:"limit_reset"` // null when the cap never restarts, as upstream says
	Usage                 float64   `json:"usage"`
	UsageDaily            float64   `json:"usage_daily"`
	FreeRequestsRemaining *int      `json:"free_requests_remaining"`
	CheckedAt             time.Time `json:"checked_at"`
}

// Confirm implements relay.Confirmer: it polls k now and, with the answer,
// rests the key or its account for v, or lifts the hold when the key's
// own GET /key shows it was not at fault.
func (p *Poller) Confirm(k *keyring.Key, v fault.Verdict) {
	s := &p.slots[k.Slot()]
	for {
		// A fault that may rest the key on its own (an inference
		// answer's) is not replaced by one that may rest it only on
		// GET /key's word (Spared): when GET /key then fails, the former
		// must still stand.
		old := s.pending.Load()
		if old != nil && v.Spared && !old.Spared {
			break
		}
		if s.pending.CompareAndSwap(old, &v) {
			break
		}
	}
	if p.spawn(k) {
		return
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		if w := s.pending.Swap(nil); w != nil {
			p.decide(k, *w, nil, context.Canceled, p.o.Now())
		}
	}
	// Otherwise a poll is out; it decides the pending fault when it ends.
}

// decide settles a fault that was held for confirmation.
func (p *Poller) decide(k *keyring.Key, v fault.Verdict, f *Figures, err error, now time.Time) {
	confirmed := false
	switch {
	case errors.Is(err, ErrKeyRejected):
		// The key itself is refused: whatever the answer was, it is the
		// key's.
		v = fault.Verdict{Status: http.StatusUnauthorized, Scope: fault.Key, Reason: fault.Auth, Retry: true}
		confirmed = true
	case err != nil && v.Spared:
		// A call that teaches nothing of keys (a blind path's 401) may
		// rest the key only on its own GET /key's word, which did not
		// come: else any client could rest the pool by calling such a
		// path while GET /key blips.
		p.o.Log.Debug("API Key #"+k.Label+" answered "+strconv.Itoa(v.Status)+" on a path that is not inference and its GET /key could not tell ("+err.Error()+"): it stays in rotation",
			"event", "fault_not_confirmed", "key_id", k.ID, "status", v.Status, "reason", v.Reason.String())
		return
	case err != nil:
		// GET /key cannot tell (unsupported, unreachable): the answer
		// stands as it came.
		confirmed = true
	case v.Reason == fault.KeyLimit:
		// The 402 said the cap can pay for (next to) nothing; GET /key
		// confirms it when the cap has next to nothing left too. A key
		// without a cap cannot have hit it, and one with money left was
		// refused a request too large for it (a prompt a client can make
		// as large as it likes), which is not the key's fault.
		if left, capped := remaining(f, &p.slots[k.Slot()], now); capped && left <= DryUSD {
			confirmed = true
			v.Until = NextReset(f.LimitReset, now)
		}
	case v.Reason == fault.Credits:
		// GET /key does not show the account's balance: a key it
		// accepts leaves the 402 standing as the account's.
		confirmed = true
	}
	if !confirmed {
		p.set.Lift(k, v.Reason)
		if v.Reason == fault.KeyLimit && v.Afford > 0 {
			// A nearly dry cap with more than next to nothing left: the
			// calls that may ask for more than it can pay go elsewhere
			// for a while, as after a larger "can only afford M".
			p.set.NoteAfford(k, v.Afford, true, v.Large, now.Add(relay.AffordNote))
			p.o.Log.Info("💸 API Key #"+k.Label+" answered 402: its cap pays for at most "+strconv.Itoa(v.Afford)+" tokens; larger calls go to other keys for "+relay.AffordNote.String(),
				"event", "fault_not_confirmed", "key_id", k.ID, "status", v.Status, "reason", v.Reason.String(), "afford_tokens", v.Afford)
			return
		}
		p.o.Log.Info("✅ API Key #"+k.Label+" answered "+strconv.Itoa(v.Status)+" but its GET /key shows it fine: back in rotation",
			"event", "fault_not_confirmed", "key_id", k.ID, "status", v.Status, "reason", v.Reason.String())
		return
	}
	rest := p.set.Confirmed(k, v)
	if p.o.Cooldowns == nil {
		if v.Scope == fault.Account {
			p.set.RestAccount(k, v.Reason, v.Status, now.Add(rest))
		}
		return
	}
	if v.Scope == fault.Account {
		p.set.RestAccount(k, v.Reason, v.Status, now.Add(rest))
		p.o.Cooldowns.AccountCooldown(k, v, now.Add(rest))
		return
	}
	p.o.Cooldowns.Cooldown(k, v, rest)
}
