package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGaugesReadAtScrape(t *testing.T) {
	src := newFakeSource(1, 2)
	m, reg := newTestMetrics(t, src, Options{})
	const header = `
# HELP keygate_key_in_flight Upstream calls using a key right now.
# TYPE keygate_key_in_flight gauge
# HELP keygate_key_rest_seconds Time left in a key's rest, 0 while it is in rotation.
# TYPE keygate_key_rest_seconds gauge
# HELP keygate_key_state Breaker state of a key: 0 closed, 1 half-open, 2 open.
# TYPE keygate_key_state gauge
# HELP keygate_keys_available Keys in rotation right now.
# TYPE keygate_keys_available gauge
`
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{
			name:   "all closed and idle",
			change: func() {},
			want: `
keygate_key_in_flight{key="1"} 0
keygate_key_in_flight{key="2"} 0
keygate_key_rest_seconds{key="1"} 0
keygate_key_rest_seconds{key="2"} 0
keygate_key_state{key="1"} 0
keygate_key_state{key="2"} 0
keygate_keys_available 2
`,
		},
		{
			name:   "key 2 opens while key 1 is busy",
			change: func() { src.set(1, 0, 5, 1); src.set(2, 2, 0, 1); src.setRest(2, 29.5) },
			want: `
keygate_key_in_flight{key="1"} 5
keygate_key_in_flight{key="2"} 0
keygate_key_rest_seconds{key="1"} 0
keygate_key_rest_seconds{key="2"} 29.5
keygate_key_state{key="1"} 0
keygate_key_state{key="2"} 2
keygate_keys_available 1
`,
		},
		{
			name:   "key 2 half-open with one trial",
			change: func() { src.set(1, 0, 0, 2); src.set(2, 1, 1, 2); src.setRest(2, 0) },
			want: `
keygate_key_in_flight{key="1"} 0
keygate_key_in_flight{key="2"} 1
keygate_key_rest_seconds{key="1"} 0
keygate_key_rest_seconds{key="2"} 0
keygate_key_state{key="1"} 0
keygate_key_state{key="2"} 1
keygate_keys_available 2
`,
		},
		{
			name: "a reload adds key 5 and removes key 1",
			change: func() {
				src.setIDs(5, 2, 2)
				src.set(5, 0, 3, 2)
				src.setRest(1, 99) // a removed key is not asked
			},
			want: `
keygate_key_in_flight{key="2"} 1
keygate_key_in_flight{key="5"} 3
keygate_key_rest_seconds{key="2"} 0
keygate_key_rest_seconds{key="5"} 0
keygate_key_state{key="2"} 1
keygate_key_state{key="5"} 0
keygate_keys_available 2
`,
		},
		{
			name:   "a negative rest reads as 0",
			change: func() { src.setRest(5, -3) },
			want: `
keygate_key_in_flight{key="2"} 1
keygate_key_in_flight{key="5"} 3
keygate_key_rest_seconds{key="2"} 0
keygate_key_rest_seconds{key="5"} 0
keygate_key_state{key="2"} 1
keygate_key_state{key="5"} 0
keygate_keys_available 2
`,
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.change()
			if err := testutil.GatherAndCompare(reg, strings.NewReader(header+st.want),
				"keygate_key_state", "keygate_key_in_flight", "keygate_key_rest_seconds",
				"keygate_keys_available"); err != nil {
				t.Error(err)
			}
			if err := testutil.CollectAndCompare(m.gauges, strings.NewReader(header+st.want)); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestHandler(t *testing.T) {
	reg := NewRegistry()
	m, err := New(reg, newFakeSource(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Request(RouteRun, 200, time.Second)
	srv := httptest.NewServer(Handler(reg))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	for _, want := range []string{
		"# TYPE go_goroutines gauge",
		"# TYPE process_cpu_seconds_total counter",
		`keygate_requests_total{code="200",route="run"} 1`,
		`keygate_key_state{key="1"} 0`,
		"keygate_keys_available 1",
	} {
		t.Run(want, func(t *testing.T) {
			if !strings.Contains(string(body), want) {
				t.Errorf("body lacks %q", want)
			}
		})
	}
}
