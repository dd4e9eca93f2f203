package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// mtClientToken is the gateway token of the metrics tests' clients.
const mtClientToken = "client-token-metrics"

// mtUpstream is an OpenAI-format upstream for the metrics tests, its answer
// fixed by key and model: key 2 answers 401 and key 3 429 (Retry-After 30)
// until healed; model "boom" gets 500, model "drop" a closed connection;
// "stream": true gets one chunk, then, once the test lets it go, a final
// chunk with usage 7+11. Any other call gets a completion with usage 3+5.
type mtUpstream struct {
	*httptest.Server
	keys    []string
	healed  atomic.Bool
	release chan struct{} // a stream waits here after its first chunk
}

func newMTUpstream(t testing.TB, keys []string) *mtUpstream {
	t.Helper()
	u := &mtUpstream{keys: keys, release: make(chan struct{})}
	u.Server = httptest.NewServer(u)
	t.Cleanup(u.Close)
	return u
}

func (u *mtUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &req)
	id := slices.Index(u.keys, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) + 1
	healed := u.healed.Load()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case id == 0 || id == 2 && !healed:
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"message":"invalid api key","code":401}}`)
	case id == 3 && !healed:
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"rate limited","code":429}}`)
	case req.Model == "boom":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"message":"boom","code":500}}`)
	case req.Model == "drop":
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case req.Stream:
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := `{"id":"c1","object":"chat.completion.chunk","model":%q,"choices":%s,"usage":%s}`
		fmt.Fprintf(w, "data: "+chunk+"\n\n", req.Model, `[{"index":0,"delta":{"content":"hi"}}]`, "null")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-u.release:
		case <-r.Context().Done():
			return
		case <-time.After(5 * time.Second):
		}
		fmt.Fprintf(w, "data: "+chunk+"\n\ndata: [DONE]\n\n", req.Model, "[]",
			`{"prompt_tokens":7,"completion_tokens":11,"total_tokens":18}`)
	default:
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}`, req.Model)
	}
}

// mtChat sends one plain chat completion and checks the status and the key
// that answered.
func mtChat(t testing.TB, gw *gateway, model string, wantCode int, wantKey string) {
	t.Helper()
	req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions",
		[]byte(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+mtClientToken)
	resp, body := do(t, req)
	if resp.StatusCode != wantCode || resp.Header.Get("X-Keygate-Key") != wantKey {
		t.Fatalf("model %s: %d on key %q, want %d on key %s; body %s",
			model, resp.StatusCode, resp.Header.Get("X-Keygate-Key"), wantCode, wantKey, body)
	}
}

// mtStream sends a streamed chat completion: the first chunk must reach the
// client while upstream holds back the usage chunk, which comes after.
func mtStream(t testing.TB, gw *gateway, up *mtUpstream, model, wantKey string) {
	t.Helper()
	req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions",
		[]byte(`{"model":"`+model+`","stream":true,"stream_options":{"include_usage":true}}`))
	req.Header.Set("Authorization", "Bearer "+mtClientToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Keygate-Key") != wantKey {
		t.Fatalf("stream %s: %d on key %q, want 200 on key %s", model, resp.StatusCode, resp.Header.Get("X-Keygate-Key"), wantKey)
	}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(first, `"content":"hi"`) {
		t.Fatalf("stream %s: first line %q, %v", model, first, err)
	}
	select {
	case up.release <- struct{}{}:
	case <-time.After(5 * time.Second):
		t.Fatalf("stream %s: upstream never waited for the release", model)
	}
	rest, err := io.ReadAll(rd)
	if err != nil || !strings.Contains(string(rest), `"prompt_tokens":7`) || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("stream %s: rest %q, %v", model, rest, err)
	}
}

// mtRun posts /run and checks that every model succeeded on the keys wanted.
func mtRun(t testing.TB, gw *gateway, models []string, wantKeys []int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"prompt": "hi", "models": models})
	req := newRequest(t, http.MethodPost, gw.URL+"/run", body)
	req.Header.Set("Authorization", "Bearer "+mtClientToken)
	resp, b := do(t, req)
	var out struct {
		Responses []struct {
			Status string `json:"status"`
			KeyID  int    `json:"key_id"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != http.StatusOK || len(out.Responses) != len(models) {
		t.Fatalf("/run: %d %s (%v)", resp.StatusCode, b, err)
	}
	for i, r := range out.Responses {
		if r.Status != "success" || r.KeyID != wantKeys[i] {
			t.Fatalf("/run %s: %s on key %d, want success on key %d; body %s", models[i], r.Status, r.KeyID, wantKeys[i], b)
		}
	}
}

// mtTraffic drives every code path that creates series, with a round-robin
// gateway over keys 1..4 of up, one request at a time so the key sequence
// is fixed (the cursor indexes the keys in rotation and not yet tried).
// check, when not nil, is called while keys 2 and 3 rest ("resting") and
// once their rests are over ("half-open").
func mtTraffic(t testing.TB, gw *gateway, up *mtUpstream, check func(phase string)) {
	t.Helper()
	mtChat(t, gw, "gpt-a", 200, "1")  // cursor 0 of {1,2,3,4}
	mtChat(t, gw, "gpt-a", 200, "4")  // 1 → key 2: 401, rests; retried: 2 of {1,3,4}
	mtStream(t, gw, up, "gpt-s", "1") // 3 of {1,3,4}
	mtChat(t, gw, "gpt-a", 200, "4")  // 4 → key 3: 429, rests; retried: 5 of {1,4}
	mtChat(t, gw, "boom", 500, "1")   // 6 of {1,4}: not retried
	mtChat(t, gw, "drop", 502, "4")   // 7 of {1,4}: transport error
	mtRun(t, gw, []string{"gpt-r1", "gpt-r2"}, []int{1, 4})
	mtStream(t, gw, up, "gpt-s", "1") // 10 of {1,4}

	// A client without the gateway token: answered 401, no upstream call.
	resp, body := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"model":"gpt-a"}`)))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no gateway token: %d %s, want 401", resp.StatusCode, body)
	}
	mtSettle(t, gw, 9)
	if check != nil {
		check("resting")
	}
	gw.Clock.Advance(11 * time.Minute) // past both rests (10m auth, 30s Retry-After)
	if check != nil {
		check("half-open")
	}
	up.healed.Store(true)
	for _, key := range []string{"4", "1", "2", "3"} { // cursor 11..14 of {1,2,3,4}
		mtChat(t, gw, "gpt-a", 200, key)
	}
	mtSettle(t, gw, 13)
}

// mtSettle waits until the gateway has recorded n client requests and no
// key has a call in flight: a client can read its whole answer before the
// handler returns and the metrics are recorded.
func mtSettle(t testing.TB, gw *gateway, n float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, mfs := mtScrape(t, gw)
		got := mtSeries(t, mfs)
		var reqs, inFlight float64
		for k, v := range got {
			switch {
			case strings.HasPrefix(k, "keygate_requests_total{"):
				reqs += v
			case strings.HasPrefix(k, "keygate_key_in_flight{"):
				inFlight += v
			}
		}
		if reqs == n && inFlight == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never settled: %v requests (want %v), %v in flight", reqs, n, inFlight)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mtScrape reads GET /metrics as a Prometheus server would and returns the
// raw text and the parsed families.
func mtScrape(t testing.TB, gw *gateway) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+"/metrics", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET /metrics Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return string(body), mfs
}

// mtSeries flattens the keygate_ families to `name{a="x",b="y"}` → value,
// labels sorted; histograms give only their _count, the one deterministic
// part of a latency.
func mtSeries(t testing.TB, mfs map[string]*dto.MetricFamily) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "keygate_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			sort.Strings(labels)
			series := "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[name+series] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name+series] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+series] = float64(m.GetHistogram().GetSampleCount())
			default:
				t.Errorf("%s: unexpected type %s", name, mf.GetType())
			}
		}
	}
	return out
}

// mtLabelValues is the set of values label takes in the families of mfs.
func mtLabelValues(mfs map[string]*dto.MetricFamily, label string, names ...string) []string {
	seen := map[string]bool{}
	for name, mf := range mfs {
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					seen[lp.GetValue()] = true
				}
			}
		}
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// mtStartGateway starts the metrics tests' upstream and a round-robin
// gateway with four keys in front of it.
func mtStartGateway(t testing.TB, env ...string) (*gateway, *mtUpstream, []string) {
	t.Helper()
	keys := testKeys(4)
	up := newMTUpstream(t, keys)
	env = append([]string{"KEY_ROTATION=round-robin", "GATEWAY_API_KEYS=" + mtClientToken}, env...)
	return startGateway(t, up.URL, keys, env...), up, keys
}
