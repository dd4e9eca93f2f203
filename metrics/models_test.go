package metrics

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestModelBound(t *testing.T) {
	tests := []struct {
		name      string
		maxModels int
		wantKept  int
	}{
		{"default bound", 0, DefaultMaxModels},
		{"custom bound", 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, newFakeSource(1, 2), Options{MaxModels: tt.maxModels})
			const names, workers = 10_000, 8
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := w; i < names; i += workers {
						model := "vendor/model-" + strconv.Itoa(i)
						m.Upstream(1+i%2, model, 200, time.Millisecond)
						m.Tokens(1+i%2, model, 1, 1)
					}
				})
			}
			wg.Wait()

			for _, metric := range []string{"keygate_upstream_requests_total", "keygate_tokens_total"} {
				got := labelValues(t, reg, metric, "model")
				if len(got) != tt.wantKept+1 || !slices.Contains(got, "other") {
					t.Errorf("%s: %d model values (other: %v), want %d plus other",
						metric, len(got), slices.Contains(got, "other"), tt.wantKept)
				}
			}
			// One code, two keys: the series count is bounded by the models.
			if n := testutil.CollectAndCount(m.upstream); n > 2*(tt.wantKept+1) {
				t.Errorf("upstream series = %d, want <= %d", n, 2*(tt.wantKept+1))
			}
			if n := m.models.len(); n != tt.wantKept {
				t.Errorf("kept models = %d, want %d", n, tt.wantKept)
			}
			if n := m.upCache.len(); n > 2*(tt.wantKept+1) {
				t.Errorf("upstream cache = %d entries, want <= %d", n, 2*(tt.wantKept+1))
			}
			if n := m.tokCache.len(); n > 2*2*(tt.wantKept+1) {
				t.Errorf("token cache = %d entries, want <= %d", n, 4*(tt.wantKept+1))
			}
			var total float64
			for k, v := range recorded(t, reg) {
				if strings.HasPrefix(k, "keygate_upstream_requests_total") {
					total += v
				}
			}
			if total != names {
				t.Errorf("upstream calls recorded = %v, want %d: overflow must still count", total, names)
			}
		})
	}
}

func TestModelLabel(t *testing.T) {
	tests := []struct {
		name  string
		model string
		want  string
	}{
		{"plain", "openai/gpt-4o", "openai/gpt-4o"},
		{"empty", "", "unknown"},
		{"too long", strings.Repeat("x", maxModelLen+1), "other"},
		{"longest kept", strings.Repeat("y", maxModelLen), strings.Repeat("y", maxModelLen)},
		{"invalid UTF-8", "bad\xff", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newTestMetrics(t, newFakeSource(1), Options{})
			m.Upstream(1, tt.model, 200, 0)
			got := labelValues(t, reg, "keygate_upstream_requests_total", "model")
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("model labels = %q, want [%q]", got, tt.want)
			}
		})
	}
}

func TestModelLabelDoesNotPinCallerMemory(t *testing.T) {
	s := newModelSet(10)
	body := strings.Repeat("z", 1<<16) + "vendor/model"
	in := body[len(body)-12:]
	got := s.label(in)
	if got != in {
		t.Fatalf("label = %q, want %q", got, in)
	}
	if unsafe.StringData(got) == unsafe.StringData(in) {
		t.Error("kept model shares the caller's backing array")
	}
}

// TestUnknownOutsideTheBound: "unknown" (what a call without a model, or
// with a made-up one that fails, counts as) takes no slot of the bound,
// so a full set keeps it apart from other: it used to become other once
// MaxModels names were in.
func TestUnknownOutsideTheBound(t *testing.T) {
	m, reg := newTestMetrics(t, newFakeSource(1), Options{MaxModels: 2})
	for _, model := range []string{"a/1", "a/2", "a/3", "", "unknown"} {
		m.Upstream(1, model, 200, 0)
	}
	got := labelValues(t, reg, "keygate_upstream_requests_total", "model")
	slices.Sort(got)
	if want := []string{"a/1", "a/2", "other", "unknown"}; !slices.Equal(got, want) {
		t.Fatalf("model labels = %q, want %q", got, want)
	}
}
