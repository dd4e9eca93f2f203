package gateway

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/metrics"
	"github.com/keygate/keygate/relay"
)

// Observer turns relay events into metrics, console lines and the failure
// counts /keys shows. It implements relay.Observer.
type Observer struct {
	m   *metrics.Metrics
	log *slog.Logger
	// stats are the keys' counts, swapped whole when the pool is (Follow).
	stats atomic.Pointer[statsTable]
	// account names a key's account for console lines; nil prints none.
	account func(k *keyring.Key) string
	// answered are the model names upstream answered with success: only
	// they are model label values. A name a client made up fails
	// upstream and is counted as "unknown", so such names cannot fill the
	// METRICS_MAX_MODELS slots that real models need.
	answered     sync.Map // model -> struct{}
	answeredSize atomic.Int64
}

// maxAnswered bounds the names kept as answered; past it, a model not yet
// kept is counted as "unknown" when it fails (its successes still count).
const maxAnswered = 4096

// modelLabel is the model name to record for an attempt's status.
func (o *Observer) modelLabel(model string, code int) string {
	if model == "" {
		return ""
	}
	if _, ok := o.answered.Load(model); ok {
		return model
	}
	if code < 200 || code > 299 {
		return ""
	}
	if o.answeredSize.Load() < maxAnswered {
		if _, loaded := o.answered.LoadOrStore(strings.Clone(model), struct{}{}); !loaded {
			o.answeredSize.Add(1)
		}
	}
	return model
}

// NewObserver returns an observer for a pool of n keys, by slot, until
// Follow binds it to a pool. m may be nil.
func NewObserver(m *metrics.Metrics, log *slog.Logger, n int) *Observer {
	o := &Observer{m: m, log: log}
	t := &statsTable{stats: make([]*keyStats, n)}
	for i := range t.stats {
		t.stats[i] = newKeyStats()
	}
	o.stats.Store(t)
	return o
}

// SetAccounts gives the observer the names of keys' accounts, for its
// console lines.
func (o *Observer) SetAccounts(account func(k *keyring.Key) string) { o.account = account }

// inForce is k as the pool in force holds it, with its counts: k itself,
// or the same key (its secret) of another snapshot under the id it has now;
// nil when a reload removed it or gave its id another secret. A call still
// in flight on such a key then records in no series and no count of the key
// now under its id. Before Follow every key is in force. For a key of the
// pool in force it costs an atomic load and a compare.
func (o *Observer) inForce(k *keyring.Key) (*keyring.Key, *keyStats) {
	t := o.stats.Load()
	if t.pool == nil {
		if s := k.Slot(); s < len(t.stats) {
			return k, t.stats[s]
		}
		return k, nil
	}
	nk := t.pool.Find(k)
	if nk == nil {
		return nil, nil
	}
	return nk, t.stats[nk.Slot()]
}

// removedName names a key no longer in the pool for a console line: by the
// id it had and its masked secret, as its id may name another key now.
func removedName(k *keyring.Key) string {
	return "API Key #" + k.Label + " (" + k.Secret.String() + ", removed by a reload)"
}

// KeySelected implements relay.Observer.
func (o *Observer) KeySelected(k *keyring.Key, strategy string) {
	if o.m == nil {
		return
	}
	if nk, _ := o.inForce(k); nk != nil {
		o.m.KeySelected(nk.ID, strategy)
	}
}

// Upstream implements relay.Observer.
func (o *Observer) Upstream(k *keyring.Key, model string, code int, d time.Duration) {
	nk, st := o.inForce(k)
	if o.m != nil && nk != nil {
		o.m.Upstream(nk.ID, o.modelLabel(model, code), code, d)
	}
	// One line per upstream attempt at debug level; the check keeps the
	// default level free of its cost.
	if o.log.Enabled(context.Background(), slog.LevelDebug) {
		if model == "" {
			model = "request"
		}
		who, id := removedName(k), k.ID
		if nk != nil {
			who, id = "API Key #"+nk.Label, nk.ID
		}
		o.log.Debug("↪️ "+model+" on "+who+": "+upstreamCode(code)+" in "+strconv.FormatInt(d.Milliseconds(), 10)+"ms",
			"event", "upstream", "model", model, "key_id", id, "status", code, "duration_ms", d.Milliseconds())
	}
	if st == nil {
		return
	}
	if code <= 0 {
		// No answer: upstream's or the network's, never the key's.
		st.count("error", false, "upstream")
		return
	}
	if code != relay.StatusClientClosed {
		st.latency(d)
	}
}

// Judged implements relay.Observer: it counts a failed answer, apart by
// whose fault it was.
func (o *Observer) Judged(k *keyring.Key, v fault.Verdict) {
	code := v.Status
	if (code >= 200 && code < 400) || code == relay.StatusClientClosed || code <= 0 {
		return
	}
	if st := o.of(k); st != nil {
		st.count(strconv.Itoa(code), v.Learns() && !v.Spared, failureClass(v))
	}
	if v.Scope == fault.Request && v.Afford > 0 {
		o.unaffordable(k, v)
	}
}

// unaffordable tells that k could not pay for a call (a 402 "can only
// afford M"), which rests nothing: without it the console showed the
// call's retry on another key with no reason.
func (o *Observer) unaffordable(k *keyring.Key, v fault.Verdict) {
	nk, _ := o.inForce(k)
	if nk == nil {
		return
	}
	payer, pay, have := "its account's credits", " pay", " have"
	if v.OnKey {
		payer, pay, have = "its credit cap", " pays", " has"
	} else if o.account != nil {
		if acct := o.account(nk); acct != "" {
			payer = "the credits of account " + acct + "…"
		}
	}
	why := payer + pay + " for at most " + strconv.Itoa(v.Afford) + " tokens"
	if v.Afford == 1 {
		// Sized: a large request's 402, which smaller ones may not get.
		why = "a large request, more than " + payer + have + " left"
	}
	o.log.Info("💸 API Key #"+nk.Label+" cannot afford this call"+toModel(v.Model)+" ("+strconv.Itoa(v.Status)+": "+why+"); nothing rests",
		"event", "key_unaffordable", "key_id", nk.ID, "key", k.Secret, "status", v.Status, "afford_tokens", v.Afford,
		"on_key", v.OnKey)
}

// toModel names the model a call was to, when known.
func toModel(model string) string {
	if model == "" {
		return ""
	}
	return " to " + model
}

// Cooldown implements relay.Observer.
func (o *Observer) Cooldown(k *keyring.Key, v fault.Verdict, rest time.Duration) {
	nk, _ := o.inForce(k)
	if nk == nil {
		o.removedFault(k, v)
		return
	}
	if o.m != nil {
		o.m.Cooldown(nk.ID, metricsReason(v.Reason))
	}
	why := strconv.Itoa(v.Status)
	if v.Polled {
		// No call got a 402: the key's figures (its GET /key and the
		// spend counted since) show its cap spent.
		why = "cap spent"
	}
	o.log.Info("🧊 API Key #"+nk.Label+" cooling down for "+humanDuration(rest)+" ("+why+")"+onModel(v.Model),
		"event", "key_cooldown", "key_id", nk.ID, "key", k.Secret, "status", v.Status, "reason", v.Reason.String(),
		"scope", v.Scope.String(), "cooldown_ms", rest.Milliseconds())
}

// removedFault tells, at debug level, of a fault on a key a reload removed
// while a call on it was in flight: it rests nothing in force, and the key
// now under its id, if any, is another.
func (o *Observer) removedFault(k *keyring.Key, v fault.Verdict) {
	o.log.Debug("🧊 "+removedName(k)+" answered "+strconv.Itoa(v.Status)+" to a call begun before the reload"+onModel(v.Model),
		"event", "removed_key_fault", "key_id", k.ID, "key", k.Secret, "status", v.Status, "reason", v.Reason.String(),
		"scope", v.Scope.String())
}

// AccountCooldown implements relay.Observer.
func (o *Observer) AccountCooldown(k *keyring.Key, v fault.Verdict, until time.Time) {
	nk, _ := o.inForce(k)
	if nk == nil {
		o.removedFault(k, v)
		return
	}
	k = nk
	if o.m != nil {
		o.m.Cooldown(k.ID, metricsReason(v.Reason))
	}
	acct := ""
	if o.account != nil {
		acct = o.account(k)
	}
	what := "Account " + acct + "…"
	if acct == "" {
		what = "API Key #" + k.Label + " (account unknown)"
	}
	why := v.Reason.String()
	switch {
	case v.Reason == fault.FreeQuota:
		why = "free-models-per-day"
	case v.FreeOnly:
		why = "free-models-per-min"
	}
	o.log.Info("🧊 "+what+" cooling down until "+untilText(until)+" ("+why+")"+onModel(v.Model),
		"event", "account_cooldown", "account", acct, "key_id", k.ID, "status", v.Status, "reason", v.Reason.String(),
		"until", until.UTC().Format(time.RFC3339))
}

// onModel names the model whose call a console line is about, when known,
// after the contract's line so that its prefix stays as it was.
func onModel(model string) string {
	if model == "" {
		return ""
	}
	return " after " + model
}

// untilText words a deadline for a console line: "00:00 UTC", with the
// date when it is not within a day.
func untilText(t time.Time) string {
	t = t.UTC()
	if time.Until(t) > 24*time.Hour {
		return t.Format("2006-01-02 15:04 UTC")
	}
	return t.Format("15:04 UTC")
}

// Retry implements relay.Observer.
func (o *Observer) Retry(v fault.Verdict) {
	if o.m == nil {
		return
	}
	r := metricsReason(v.Reason)
	if v.Reason == fault.NoReason && v.Afford > 0 {
		// Nothing rests: the request was too large for its account.
		r = metrics.ReasonAfford
	}
	o.m.Retry(r)
}

// StreamFailover implements relay.Observer: keygate_stream_failovers_total
// counts the failovers by reason; a commit at the hold timeout, which the
// metric has no label for, is logged at debug level.
func (o *Observer) StreamFailover(reason string) {
	if o.m != nil {
		switch reason {
		case relay.FailoverErrorEvent:
			o.m.StreamFailover(metrics.FailoverErrorEvent)
		case relay.FailoverClosedBeforeData:
			o.m.StreamFailover(metrics.FailoverClosedBeforeData)
		case relay.FailoverReadError:
			o.m.StreamFailover(metrics.FailoverReadError)
		}
	}
	if o.log.Enabled(context.Background(), slog.LevelDebug) {
		o.log.Debug("🔁 stream "+reason, "event", "stream_failover", "reason", reason)
	}
}

// Failures returns copies of k's failed answers by status: those that were
// the key's or its account's fault, and the others ("error" for no answer).
func (o *Observer) Failures(k *keyring.Key) (keys, other map[string]uint64) {
	f := o.of(k)
	if f == nil {
		return map[string]uint64{}, map[string]uint64{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.by), maps.Clone(f.other)
}

// metricsReason is the metrics label of a rest's reason.
func metricsReason(r fault.Reason) metrics.Reason {
	switch r {
	case fault.Auth:
		return metrics.ReasonAuth
	case fault.KeyLimit:
		return metrics.ReasonKeyLimit
	case fault.Credits:
		return metrics.ReasonCredits
	case fault.FreeQuota:
		return metrics.ReasonFreeQuota
	case fault.InFlightBudget:
		return metrics.ReasonInFlightBudget
	}
	return metrics.ReasonRateLimit
}

// KeySource exposes live key state to the metrics gauges; it follows the
// pool across reloads (Follow).
type KeySource struct {
	cur atomic.Pointer[sourcePool]
}

type sourcePool struct {
	pool     *keyring.Pool
	breakers *breaker.Set
	ids      []int
}

// NewKeySource returns the gauges' view of pool and breakers.
func NewKeySource(pool *keyring.Pool, breakers *breaker.Set) *KeySource {
	s := &KeySource{}
	s.Follow(pool, breakers)
	return s
}

// Follow makes the gauges show pool and breakers from now on.
func (s *KeySource) Follow(pool *keyring.Pool, breakers *breaker.Set) {
	ids := make([]int, 0, pool.Len())
	for _, k := range pool.Keys() {
		ids = append(ids, k.ID)
	}
	s.cur.Store(&sourcePool{pool: pool, breakers: breakers, ids: ids})
}

// KeyIDs implements metrics.KeySource.
func (s *KeySource) KeyIDs() []int { return s.cur.Load().ids }

// KeyState implements metrics.KeySource.
func (s *KeySource) KeyState(id int) int {
	c := s.cur.Load()
	if k := c.pool.ByID(id); k != nil {
		return int(c.breakers.For(k).State())
	}
	return 0
}

// KeyInFlight implements metrics.KeySource.
func (s *KeySource) KeyInFlight(id int) int64 {
	c := s.cur.Load()
	if k := c.pool.ByID(id); k != nil {
		return c.pool.Ledger().InFlight(k.Slot())
	}
	return 0
}

// KeyRestSeconds implements metrics.KeySource: the time left until the
// key's rest deadline in the pool's ledger, 0 once it has passed. A key
// disabled by hand shows its automatic rest only: the disable has no end.
func (s *KeySource) KeyRestSeconds(id int) float64 {
	c := s.cur.Load()
	k := c.pool.ByID(id)
	if k == nil {
		return 0
	}
	now := c.breakers.Now()
	until := c.pool.Ledger().RestUntil(k.Slot())
	if until == math.MaxInt64 {
		_, _, t := c.breakers.Rest(k)
		if t.IsZero() {
			return 0
		}
		until = t.UnixNano()
	}
	return max(0, time.Duration(until-now.UnixNano()).Seconds())
}

// KeysAvailable implements metrics.KeySource.
func (s *KeySource) KeysAvailable() int {
	c := s.cur.Load()
	return c.pool.CountAvailable(c.breakers.Now().UnixNano())
}

// humanDuration prints d rounded to seconds without trailing zero units:
// "30s", "10m", "1h30m".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < time.Second {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// upstreamCode words an attempt's status for a console line.
func upstreamCode(code int) string {
	if code <= 0 {
		return "no answer"
	}
	return strconv.Itoa(code)
}
