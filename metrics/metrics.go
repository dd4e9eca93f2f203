// Package metrics owns every Prometheus series keygate exports: request and
// upstream counters and latencies, per-key selection, cooldown and token
// counters, and per-key gauges read live from the key pool at scrape time.
//
// The recording methods sit on the proxy's hot path, so label children are
// resolved once and cached; a warm call is a lock-free map hit and
// allocates nothing. Label cardinality is bounded: keys are the fixed pool,
// models are capped by Options.MaxModels, codes are three-digit statuses.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Route says which gateway endpoint served a request; it is the `route` label.
type Route uint8

// Routes, exported as "run" and "passthrough".
const (
	RouteRun Route = iota
	RoutePassthrough
	numRoutes
)

// String returns the label value, or "" for a Route outside the constants.
func (r Route) String() string {
	switch r {
	case RouteRun:
		return "run"
	case RoutePassthrough:
		return "passthrough"
	}
	return ""
}

// Reason says why a key was cooled down or a request retried; it is the
// `reason` label, kept apart because auth failures need a human and rate
// limits heal themselves.
type Reason uint8

// Reasons, exported as "auth" (401, 402, 403) and "rate_limit" (429).
const (
	ReasonAuth Reason = iota
	ReasonRateLimit
	numReasons
)

// String returns the label value, or "" for a Reason outside the constants.
func (r Reason) String() string {
	switch r {
	case ReasonAuth:
		return "auth"
	case ReasonRateLimit:
		return "rate_limit"
	}
	return ""
}

// strategies are the `strategy` label values KeySelected accepts, in the
// order of keyMetrics.selected.
var strategies = [...]string{"random", "round-robin", "least-busy"}

// DefaultMaxModels is the contract's bound on distinct `model` label values.
const DefaultMaxModels = 200

// Options tunes New; the zero value is the contract's behaviour.
type Options struct {
	// MaxModels bounds the distinct `model` label values kept over the
	// process lifetime (an empty model counts as "unknown" and takes a slot);
	// later models are recorded as "other". Zero or less means
	// DefaultMaxModels.
	MaxModels int
}

// KeySource is the key pool as the gauges see it. It is read on every scrape,
// never cached, so keygate_key_state shows a breaker that went half-open on
// its own since the last event.
type KeySource interface {
	// KeyIDs lists the pool's key ids; it must not change over the process
	// lifetime, because per-key children are resolved once from it in New.
	KeyIDs() []int
	// KeyState is 0 closed, 1 half-open, 2 open.
	KeyState(id int) int
	// KeyInFlight is the number of upstream calls using the key right now.
	KeyInFlight(id int) int64
	// KeysAvailable is the number of keys in rotation right now.
	KeysAvailable() int
}

// durationBuckets span a cached reply (10ms) to a slow model or a long
// stream (UPSTREAM_TIMEOUT defaults to 120s); DefBuckets stop at 10s.
var durationBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120}

// keyMetrics holds one key's children that carry only key-derived labels,
// resolved once in New.
type keyMetrics struct {
	label     string
	upDur     prometheus.Observer
	selected  [len(strategies)]prometheus.Counter
	cooldowns [numReasons]prometheus.Counter
}

// Metrics holds every keygate collector and the caches of their children.
// It is safe for concurrent use. Per-key methods given a key id that is not
// in KeySource.KeyIDs record nothing: the pool is fixed, so such an id is a
// caller bug, and dropping it keeps the `key` label bounded.
type Metrics struct {
	requests    *prometheus.CounterVec
	requestDur  *prometheus.HistogramVec
	upstream    *prometheus.CounterVec
	upstreamDur *prometheus.HistogramVec
	selected    *prometheus.CounterVec
	cooldowns   *prometheus.CounterVec
	retries     *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	gauges      *keyCollector

	keys       map[int]*keyMetrics // read-only after New
	routeDur   [numRoutes]prometheus.Observer
	retryCount [numReasons]prometheus.Counter
	routeCodes routeCodeCache
	models     *modelSet
	upCache    childCache[upstreamKey]
	tokCache   childCache[tokenKey]
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
		keys:   make(map[int]*keyMetrics),
		models: newModelSet(opts.MaxModels),
	}
	for r := range numRoutes {
		m.routeDur[r] = m.requestDur.WithLabelValues(r.String())
	}
	for r := range numReasons {
		m.retryCount[r] = m.retries.WithLabelValues(r.String())
	}
	ids := slices.Clone(src.KeyIDs())
	slices.Sort(ids)
	ids = slices.Compact(ids)
	labels := make([]string, len(ids))
	for i, id := range ids {
		km := &keyMetrics{label: strconv.Itoa(id)}
		km.upDur = m.upstreamDur.WithLabelValues(km.label)
		for s, name := range strategies {
			km.selected[s] = m.selected.WithLabelValues(km.label, name)
		}
		for r := range numReasons {
			km.cooldowns[r] = m.cooldowns.WithLabelValues(km.label, r.String())
		}
		m.keys[id] = km
		labels[i] = km.label
	}
	m.gauges = newKeyCollector(src, ids, labels)

	if err := registerAll(reg, m.requests, m.requestDur, m.upstream, m.upstreamDur,
		m.selected, m.cooldowns, m.retries, m.tokens, m.gauges); err != nil {
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
