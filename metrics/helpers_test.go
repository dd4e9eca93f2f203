package metrics

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeSource is a KeySource whose state tests change between scrapes.
type fakeSource struct {
	mu       sync.Mutex
	ids      []int
	state    map[int]int
	inFlight map[int]int64
	rest     map[int]float64
	avail    int
}

func newFakeSource(ids ...int) *fakeSource {
	return &fakeSource{ids: ids, state: map[int]int{}, inFlight: map[int]int64{},
		rest: map[int]float64{}, avail: len(ids)}
}

func (f *fakeSource) KeyIDs() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ids)
}

// setIDs replaces the pool, as a reload does.
func (f *fakeSource) setIDs(ids ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = ids
}

func (f *fakeSource) KeyRestSeconds(id int) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rest[id]
}

func (f *fakeSource) setRest(id int, s float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rest[id] = s
}

func (f *fakeSource) KeyState(id int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state[id]
}

func (f *fakeSource) KeyInFlight(id int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inFlight[id]
}

func (f *fakeSource) KeysAvailable() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.avail
}

func (f *fakeSource) set(id, state int, inFlight int64, avail int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state[id] = state
	f.inFlight[id] = inFlight
	f.avail = avail
}

// newTestMetrics returns Metrics on a fresh registry over src.
func newTestMetrics(t testing.TB, src KeySource, opts Options) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg, src, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m, reg
}

// snapshot flattens the keygate_ series of g into `name{l="v",...}` -> value;
// a histogram gives name_count and name_sum entries.
func snapshot(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "keygate_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			var b strings.Builder
			b.WriteByte('{')
			for i, lp := range mt.GetLabel() {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(lp.GetName() + "=" + strconv.Quote(lp.GetValue()))
			}
			b.WriteByte('}')
			labels := b.String()
			switch {
			case mt.GetCounter() != nil:
				out[mf.GetName()+labels] = mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				out[mf.GetName()+labels] = mt.GetGauge().GetValue()
			case mt.GetHistogram() != nil:
				out[mf.GetName()+"_count"+labels] = float64(mt.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+labels] = mt.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// recorded is the snapshot less gauges, sums and zero values: what the
// recording methods changed.
func recorded(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	out := snapshot(t, g)
	maps.DeleteFunc(out, func(k string, v float64) bool {
		return v == 0 || strings.HasPrefix(k, "keygate_key_state") ||
			strings.HasPrefix(k, "keygate_key_in_flight") ||
			strings.HasPrefix(k, "keygate_key_rest_seconds") ||
			strings.HasPrefix(k, "keygate_keys_available") ||
			strings.Contains(k, "_sum{")
	})
	return out
}

// labelValues returns the distinct values of label across the series of the
// metric family name in g.
func labelValues(t testing.TB, g prometheus.Gatherer, name, label string) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label {
					seen[lp.GetValue()] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}
