package metrics

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// keyMetrics holds one key's children that carry only key-derived labels,
// resolved when the key is first seen.
type keyMetrics struct {
	label     string
	upDur     prometheus.Observer
	selected  [len(strategies)]prometheus.Counter
	cooldowns [numReasons]prometheus.Counter
	budget    atomic.Pointer[prometheus.Gauge] // nil while unknown or unlimited

	// mu orders the creation of the key's children against DeleteKey, so
	// that a child made by a call still in flight on a removed key cannot
	// outlive its deletion.
	mu      sync.Mutex
	deleted bool
}

// keySet maps key ids to their children. Reads are one atomic load and a
// map lookup; the rare add (a key new since New) and delete copy the map.
type keySet struct {
	src KeySource
	mu  sync.Mutex // serialises adds and deletes
	m   atomic.Pointer[map[int]*keyMetrics]
}

func (m *Metrics) newKeyMetrics(id int) *keyMetrics {
	km := &keyMetrics{label: strconv.Itoa(id)}
	km.upDur = m.upstreamDur.WithLabelValues(km.label)
	for s, name := range strategies {
		km.selected[s] = m.selected.WithLabelValues(km.label, name)
	}
	for r := range numReasons {
		km.cooldowns[r] = m.cooldowns.WithLabelValues(km.label, r.String())
	}
	return km
}

// key returns id's children, creating them when the KeySource lists id
// (a key added by a reload); nil for an id the pool does not have.
func (m *Metrics) key(id int) *keyMetrics {
	if km := (*m.keys.m.Load())[id]; km != nil {
		return km
	}
	if !slices.Contains(m.keys.src.KeyIDs(), id) {
		return nil
	}
	m.keys.mu.Lock()
	defer m.keys.mu.Unlock()
	old := *m.keys.m.Load()
	if km := old[id]; km != nil {
		return km
	}
	next := maps.Clone(old)
	km := m.newKeyMetrics(id)
	next[id] = km
	m.keys.m.Store(&next)
	return km
}

// AddKey makes the zero series of key id (a key a reload added, or
// renumbered to id), as New does for the keys of start-up: a counter born
// at its first event shows no increase in rate() or increase(), so the
// key's first selection or rest would not show. Call it once id is in the
// KeySource; an id it does not list is ignored.
func (m *Metrics) AddKey(id int) { m.key(id) }

// DeleteKey drops every series of key id (a key a reload removed), so the
// dashboard stops showing it. Call it once id is gone from the KeySource:
// a call still in flight on the key then records nothing, where it would
// otherwise bring the series back. Later recording for id, should a reload
// add it again, starts from zero.
func (m *Metrics) DeleteKey(id int) {
	m.keys.mu.Lock()
	defer m.keys.mu.Unlock()
	old := *m.keys.m.Load()
	km := old[id]
	if km == nil {
		return
	}
	next := maps.Clone(old)
	delete(next, id)
	m.keys.m.Store(&next)

	km.mu.Lock()
	defer km.mu.Unlock()
	km.deleted = true
	km.budget.Store(nil)
	match := prometheus.Labels{"key": km.label}
	m.upstream.DeletePartialMatch(match)
	m.upstreamDur.DeletePartialMatch(match)
	m.selected.DeletePartialMatch(match)
	m.cooldowns.DeletePartialMatch(match)
	m.tokens.DeletePartialMatch(match)
	m.spend.DeletePartialMatch(match)
	m.budget.DeletePartialMatch(match)
	m.upCache.deleteKey(id)
	m.tokCache.deleteKey(id)
	m.spendCache.deleteKey(id)
}

// keyCollector exports the per-key gauges by asking the KeySource at every
// scrape. Key state changes on its own (a cooldown ends, a breaker goes
// half-open when asked), so a value pushed on events would go stale; the
// key set itself follows the KeySource, so a reload shows at the next scrape.
type keyCollector struct {
	src       KeySource
	keys      *keySet
	state     *prometheus.Desc
	inFlight  *prometheus.Desc
	rest      *prometheus.Desc
	available *prometheus.Desc
}

func newKeyCollector(src KeySource, keys *keySet) *keyCollector {
	return &keyCollector{
		src:  src,
		keys: keys,
		state: prometheus.NewDesc("keygate_key_state",
			"Breaker state of a key: 0 closed, 1 half-open, 2 open.", []string{"key"}, nil),
		inFlight: prometheus.NewDesc("keygate_key_in_flight",
			"Upstream calls using a key right now.", []string{"key"}, nil),
		rest: prometheus.NewDesc("keygate_key_rest_seconds",
			"Time left in a key's rest, 0 while it is in rotation.", []string{"key"}, nil),
		available: prometheus.NewDesc("keygate_keys_available",
			"Keys in rotation right now.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.inFlight
	ch <- c.rest
	ch <- c.available
}

// Collect implements prometheus.Collector.
func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	ids := slices.Clone(c.src.KeyIDs())
	slices.Sort(ids)
	ids = slices.Compact(ids)
	known := *c.keys.m.Load()
	for _, id := range ids {
		var label string
		if km := known[id]; km != nil {
			label = km.label
		} else {
			label = strconv.Itoa(id)
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue,
			float64(c.src.KeyState(id)), label)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue,
			float64(c.src.KeyInFlight(id)), label)
		ch <- prometheus.MustNewConstMetric(c.rest, prometheus.GaugeValue,
			max(0, c.src.KeyRestSeconds(id)), label)
	}
	ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue,
		float64(c.src.KeysAvailable()))
}
