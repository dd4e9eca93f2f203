package metrics

import "github.com/prometheus/client_golang/prometheus"

// keyCollector exports the per-key gauges by asking the KeySource at every
// scrape. Key state changes on its own (a cooldown ends, a breaker goes
// half-open when asked), so a value pushed on events would go stale.
type keyCollector struct {
	src       KeySource
	ids       []int
	labels    []string // labels[i] is the `key` label of ids[i]
	state     *prometheus.Desc
	inFlight  *prometheus.Desc
	available *prometheus.Desc
}

func newKeyCollector(src KeySource, ids []int, labels []string) *keyCollector {
	return &keyCollector{
		src:    src,
		ids:    ids,
		labels: labels,
		state: prometheus.NewDesc("keygate_key_state",
			"Breaker state of a key: 0 closed, 1 half-open, 2 open.", []string{"key"}, nil),
		inFlight: prometheus.NewDesc("keygate_key_in_flight",
			"Upstream calls using a key right now.", []string{"key"}, nil),
		available: prometheus.NewDesc("keygate_keys_available",
			"Keys in rotation right now.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.inFlight
	ch <- c.available
}

// Collect implements prometheus.Collector.
func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	for i, id := range c.ids {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue,
			float64(c.src.KeyState(id)), c.labels[i])
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue,
			float64(c.src.KeyInFlight(id)), c.labels[i])
	}
	ch <- prometheus.MustNewConstMetric(c.available, prometheus.GaugeValue,
		float64(c.src.KeysAvailable()))
}
