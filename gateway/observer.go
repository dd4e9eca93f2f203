package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/metrics"
	"github.com/keygate/keygate/relay"
)

// Observer turns relay events into metrics, console lines and the failure
// counts /keys shows. It implements relay.Observer.
type Observer struct {
	m        *metrics.Metrics
	log      *slog.Logger
	failures []failureCounts // by pool slot
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

type failureCounts struct {
	mu sync.Mutex
	by map[string]uint64
}

// NewObserver returns an observer for a pool of n keys. m may be nil.
func NewObserver(m *metrics.Metrics, log *slog.Logger, n int) *Observer {
	o := &Observer{m: m, log: log, failures: make([]failureCounts, n)}
	for i := range o.failures {
		o.failures[i].by = make(map[string]uint64)
	}
	return o
}

// KeySelected implements relay.Observer.
func (o *Observer) KeySelected(k *keyring.Key, strategy string) {
	if o.m != nil {
		o.m.KeySelected(k.ID, strategy)
	}
}

// Upstream implements relay.Observer.
func (o *Observer) Upstream(k *keyring.Key, model string, code int, d time.Duration) {
	if o.m != nil {
		o.m.Upstream(k.ID, o.modelLabel(model, code), code, d)
	}
	// One line per upstream attempt at debug level; the check keeps the
	// default level free of its cost.
	if o.log.Enabled(context.Background(), slog.LevelDebug) {
		if model == "" {
			model = "request"
		}
		o.log.Debug("↪️ "+model+" on API Key #"+k.Label+": "+upstreamCode(code)+" in "+strconv.FormatInt(d.Milliseconds(), 10)+"ms",
			"event", "upstream", "model", model, "key_id", k.ID, "status", code, "duration_ms", d.Milliseconds())
	}
	if (code >= 200 && code < 400) || code == relay.StatusClientClosed {
		return
	}
	label := "error"
	if code > 0 {
		label = strconv.Itoa(code)
	}
	f := &o.failures[k.Slot()]
	f.mu.Lock()
	f.by[label]++
	f.mu.Unlock()
}

// Cooldown implements relay.Observer.
func (o *Observer) Cooldown(k *keyring.Key, r breaker.Reason, status int, rest time.Duration) {
	if o.m != nil {
		o.m.Cooldown(k.ID, metricsReason(r))
	}
	o.log.Info("🧊 API Key #"+k.Label+" cooling down for "+humanDuration(rest)+" ("+strconv.Itoa(status)+")",
		"event", "key_cooldown", "key_id", k.ID, "key", k.Secret, "status", status, "reason", r.String(),
		"cooldown_ms", rest.Milliseconds())
}

// Retry implements relay.Observer.
func (o *Observer) Retry(r breaker.Reason) {
	if o.m != nil {
		o.m.Retry(metricsReason(r))
	}
}

// Failures returns a copy of k's failure counts by status ("error" for
// transport errors).
func (o *Observer) Failures(k *keyring.Key) map[string]uint64 {
	f := &o.failures[k.Slot()]
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.by))
	for c, n := range f.by {
		out[c] = n
	}
	return out
}

func metricsReason(r breaker.Reason) metrics.Reason {
	if r == breaker.Auth {
		return metrics.ReasonAuth
	}
	return metrics.ReasonRateLimit
}

// KeySource exposes live key state to the metrics gauges.
type KeySource struct {
	pool     *keyring.Pool
	breakers *breaker.Set
	ids      []int
}

// NewKeySource returns the gauges' view of pool and breakers.
func NewKeySource(pool *keyring.Pool, breakers *breaker.Set) *KeySource {
	ids := make([]int, 0, pool.Len())
	for _, k := range pool.Keys() {
		ids = append(ids, k.ID)
	}
	return &KeySource{pool: pool, breakers: breakers, ids: ids}
}

// KeyIDs implements metrics.KeySource.
func (s *KeySource) KeyIDs() []int { return s.ids }

// KeyState implements metrics.KeySource.
func (s *KeySource) KeyState(id int) int {
	if k := s.pool.ByID(id); k != nil {
		return int(s.breakers.For(k).State())
	}
	return 0
}

// KeyInFlight implements metrics.KeySource.
func (s *KeySource) KeyInFlight(id int) int64 {
	if k := s.pool.ByID(id); k != nil {
		return s.pool.Ledger().InFlight(k.Slot())
	}
	return 0
}

// KeysAvailable implements metrics.KeySource.
func (s *KeySource) KeysAvailable() int {
	return s.pool.CountAvailable(s.breakers.Now().UnixNano())
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
