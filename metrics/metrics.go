// Package metrics owns every Prometheus series keygate exports: request and
// upstream counters and latencies, per-key selection, cooldown and token
// counters, and per-key gauges read live from the key pool at scrape time.
//
// The recording methods sit on the proxy's hot path, so label children are
// resolved once and cached; a warm call is a lock-free map hit and
// allocates nothing. Label cardinality is bounded: keys are the ids the
// KeySource lists (the pool may grow and shrink at run time, DeleteKey
// drops a removed key's series), models are capped by Options.MaxModels,
// codes are three-digit statuses, accounts by maxAccounts.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxModels is the contract's bound on distinct `model` label values.
const DefaultMaxModels = 200

// Options tunes New; the zero value is the contract's behaviour without Redis.
type Options struct {
	// MaxModels bounds the distinct `model` label values kept over the
	// process lifetime (an empty model counts as "unknown", which takes none);
	// later models are recorded as "other". Zero or less means
	// DefaultMaxModels.
	MaxModels int
	// Redis says that REDIS_URL is set: only then is keygate_redis_up
	// registered, so that a gateway without Redis exports no such series.
	Redis bool
}

// KeySource is the key pool as the gauges see it. It is read on every scrape,
// never cached, so keygate_key_state shows a breaker that went half-open on
// its own since the last event.
type KeySource interface {
	// KeyIDs lists the pool's key ids right now. It may change at run time
	// (a live reload): the per-key gauges follow it at every scrape, and a
	// recording method given an id it does not list records nothing.
	KeyIDs() []int
	// KeyState is 0 closed, 1 half-open, 2 open.
	KeyState(id int) int
	// KeyInFlight is the number of upstream calls using the key right now.
	KeyInFlight(id int) int64
	// KeyRestSeconds is the time left in the key's rest, 0 while the key is
	// in rotation.
	KeyRestSeconds(id int) float64
	// KeysAvailable is the number of keys in rotation right now.
	KeysAvailable() int
}

// durationBuckets span a cached reply (10ms) to a slow model or a long
// stream (UPSTREAM_TIMEOUT defaults to 120s); DefBuckets stop at 10s.
var durationBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120}

// Metrics holds every keygate collector and the caches of their children.
// It is safe for concurrent use.
type Metrics struct {
	requests    *prometheus.CounterVec
	requestDur  *prometheus.HistogramVec
	upstream    *prometheus.CounterVec
	upstreamDur *prometheus.HistogramVec
	selected    *prometheus.CounterVec
	cooldowns   *prometheus.CounterVec
	retries     *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	spend       *prometheus.CounterVec
	budget      *prometheus.GaugeVec
	freeReqs    *prometheus.GaugeVec
	failovers   *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	redisUp     prometheus.Gauge // nil without Options.Redis
	gauges      *keyCollector

	keys          keySet
	routeDur      [numRoutes]prometheus.Observer
	retryCount    [numRetryReasons]prometheus.Counter
	failoverCount [numFailoverReasons]prometheus.Counter
	reloadCount   [2]prometheus.Counter // refused, ok
	routeCodes    routeCodeCache
	models        *modelSet
	upCache       childCache[upstreamKey]
	tokCache      childCache[tokenKey]
	spendCache    childCache[spendKey]
	accounts      accountSet
}

// New builds every keygate collector and registers it on reg; it uses no
// global registry, so tests and embedders can run several side by side.
// src is kept and read at each scrape for the per-key gauges.
func New(reg prometheus.Registerer, src KeySource, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil Registerer")
	}
	if src == nil {
		return nil, errors.New("metrics: nil KeySource")
	}
	if opts.MaxModels <= 0 {
		opts.MaxModels = DefaultMaxModels
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_requests_total",
			Help: "Client requests answered by the gateway, by route and HTTP status.",
		}, []string{"route", "code"}),
		requestDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keygate_request_duration_seconds",
			Help:    "Time to answer a client request, retries included.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_upstream_requests_total",
			Help: "Upstream calls by key id, model and HTTP status (\"error\" for transport errors).",
		}, []string{"key", "model", "code"}),
		upstreamDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keygate_upstream_request_duration_seconds",
			Help:    "Time from sending one upstream call to its response headers, by key id (a stream's body is not included).",
			Buckets: durationBuckets,
		}, []string{"key"}),
		selected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_key_selected_total",
			Help: "Times a key was picked for an upstream call, by rotation strategy.",
		}, []string{"key", "strategy"}),
		cooldowns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_key_cooldowns_total",
			Help: "Times a key was taken out of rotation, by reason.",
		}, []string{"key", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_retries_total",
			Help: "Requests sent again on another key, by reason.",
		}, []string{"reason"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_tokens_total",
			Help: "Tokens reported by the upstream, by key id, model and type.",
		}, []string{"key", "model", "type"}),
		spend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_key_spend_usd_total",
			Help: "US dollars spent, as the upstream's usage.cost reports, by key id and model.",
		}, []string{"key", "model"}),
		budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keygate_key_budget_remaining_usd",
			Help: "US dollars a key may still spend (limit_remaining less the spend since the last poll); absent while unknown or unlimited.",
		}, []string{"key"}),
		freeReqs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keygate_account_free_requests_remaining",
			Help: "Free-model requests an account has left today, by account digest.",
		}, []string{"account"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_stream_failovers_total",
			Help: "Held streams sent again on another key before any byte reached the client, by reason.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keygate_pool_reloads_total",
			Help: "Key pool reloads from KEYS_FILE, by result (ok, refused).",
		}, []string{"result"}),
		models: newModelSet(opts.MaxModels),
	}
	m.keys.src = src
	m.accounts.vec = m.freeReqs
	for r := range numRoutes {
		m.routeDur[r] = m.requestDur.WithLabelValues(r.String())
	}
	for r := range Reason(numRetryReasons) {
		m.retryCount[r] = m.retries.WithLabelValues(r.String())
	}
	for r := range numFailoverReasons {
		m.failoverCount[r] = m.failovers.WithLabelValues(r.String())
	}
	m.reloadCount[0] = m.reloads.WithLabelValues("refused")
	m.reloadCount[1] = m.reloads.WithLabelValues("ok")
	ids := slices.Clone(src.KeyIDs())
	slices.Sort(ids)
	ids = slices.Compact(ids)
	initial := make(map[int]*keyMetrics, len(ids))
	for _, id := range ids {
		initial[id] = m.newKeyMetrics(id)
	}
	m.keys.m.Store(&initial)
	m.gauges = newKeyCollector(src, &m.keys)

	cs := []prometheus.Collector{m.requests, m.requestDur, m.upstream, m.upstreamDur,
		m.selected, m.cooldowns, m.retries, m.tokens, m.spend, m.budget, m.freeReqs,
		m.failovers, m.reloads, m.gauges}
	if opts.Redis {
		m.redisUp = prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keygate_redis_up",
			Help: "1 while the shared Redis (REDIS_URL) answers, 0 while this replica goes on alone.",
		})
		cs = append(cs, m.redisUp)
	}
	if err := registerAll(reg, cs...); err != nil {
		return nil, err
	}
	return m, nil
}

// registerAll registers cs in order; on a failure it unregisters the ones
// already registered, so a failed New leaves reg as it was.
func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("metrics: register: %w", err)
		}
	}
	return nil
}

// NewRegistry returns a fresh registry with the Go runtime and process
// collectors, the series a Grafana dashboard expects beside keygate's own.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves g in the Prometheus exposition format for GET /metrics. A
// collector that fails is skipped rather than failing the whole scrape, so
// one bad gauge never blinds the dashboard.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
