package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/simulator"
)

// Chaos settings: thousands of requests, yet a few seconds with -race on
// two cores.
const (
	chaosRequests = 2000
	chaosWorkers  = 64
	chaosTick     = 50 * time.Millisecond // injected time per request
	chaosAuthRest = 20 * time.Second
	chaosToken    = "chaos-client-token"
)

// chaosJob is one client request of the storm.
type chaosJob struct {
	kind   string // "plain", "stream", "models", "run"
	fault  string // X-Sim-Fault, "" for none
	broken bool   // the fault breaks the answer: no success is expected
}

func chaosJobFor(i int) chaosJob {
	faults := []chaosJob{
		{kind: "plain", fault: "badjson"},
		{kind: "plain", fault: "big=300KB"},
		{kind: "stream", fault: "chunks=12,chunkdelay=1ms"},
		{kind: "plain", fault: "delay=3ms"},
		{kind: "stream", fault: "truncate", broken: true},
		{kind: "plain", fault: "reset", broken: true},
		{kind: "stream", fault: "noUsage"},
	}
	switch i % 8 {
	case 0, 1:
		return chaosJob{kind: "plain"}
	case 2, 3:
		return chaosJob{kind: "stream"}
	case 4:
		return chaosJob{kind: "run"}
	case 5:
		return chaosJob{kind: "models"}
	}
	return faults[(i/8)%len(faults)]
}

// TestChaos storms the gateway with plain and streamed /v1 calls and /run
// over four keys — revoked, rate-limited in bursts, flaky with 502s, healthy
// — while the injected clock moves on by chaosTick per request. No client
// may see a key's fault while one key is healthy, every success must be
// byte for byte what upstream sent, the revoked key may be called only once
// per rest, every count the gateway reports must match what upstream saw,
// and nothing may be left running.
func TestChaos(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	clk := newClock()
	keys := hdKeys(4)
	const revoked, limited, flaky, healthy = 0, 1, 2, 3
	sim := hdSim(t, clk, map[string]simulator.Profile{
		keys[revoked]: {Status: http.StatusUnauthorized},
		keys[limited]: {RateLimitEvery: 20, RateLimitBurst: 3, RateLimitReset: simulator.HintRateLimitReset, RetryAfter: 2 * time.Second},
		keys[flaky]:   {ServerErrorRate: 0.2, ServerErrorStatus: http.StatusBadGateway},
		keys[healthy]: {},
	})
	g := hdStart(t, sim.BaseURL(), keys, clk, "GATEWAY_API_KEYS="+chaosToken,
		"AUTH_FAILURE_COOLDOWN="+chaosAuthRest.String(), "MAX_IN_FLIGHT=1000")
	auth := []string{"Authorization", "Bearer " + chaosToken}
	warmups := int64(0)
	start := clk.Now()

	// One request at a time until the revoked key is found out: it is then
	// called exactly once before the storm. (Requests in flight together
	// may all pick a key whose first 401 is still on its way.)
	for i := 0; sim.Stats().Keys[keys[revoked]].Requests == 0; i++ {
		r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("chaos/a", false), auth...))
		if r.Err != nil || i == 100 {
			t.Fatalf("warm-up: %d %v; revoked key never picked", r.Status, r.Err)
		}
		warmups++
	}
	if n := sim.Stats().Keys[keys[revoked]].Requests; n != 1 {
		t.Fatalf("warm-up called the revoked key %d times, want 1", n)
	}

	var (
		next, successes, cut, runs, passes atomic.Int64
		mu                                 sync.Mutex
		problems                           []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	began := time.Now()
	var wg sync.WaitGroup
	for range chaosWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= chaosRequests {
					return
				}
				job := chaosJobFor(i)
				if job.kind == "run" {
					runs.Add(1)
					if chaosRun(t, g, i, auth, fail) {
						successes.Add(1)
					}
				} else {
					passes.Add(1)
					switch ok, broken := chaosPass(t, g, job, auth, fail); {
					case ok:
						successes.Add(1)
					case broken:
						cut.Add(1)
					}
				}
				clk.Advance(chaosTick)
			}
		})
	}
	wg.Wait()
	t.Logf("%d requests (%d /v1, %d /run) in %v: %d successes, %d broken by faults, injected time %v",
		chaosRequests, passes.Load(), runs.Load(), time.Since(began).Round(time.Millisecond),
		successes.Load(), cut.Load(), clk.Now().Sub(start))
	for _, p := range problems {
		t.Error(p)
	}
	if successes.Load() < chaosRequests/2 {
		t.Errorf("only %d of %d requests succeeded", successes.Load(), chaosRequests)
	}

	// The revoked key: one call to find it out, then one trial per rest
	// that could have ended (rests double after each failed trial).
	elapsed := clk.Now().Sub(start)
	allowed, rest, at := 1, chaosAuthRest, chaosAuthRest
	for at <= elapsed {
		allowed++
		rest = min(rest*2, time.Hour)
		at += rest
	}
	got := sim.Stats().Keys[keys[revoked]].Requests
	if got > int64(allowed) || got < 2 {
		t.Errorf("revoked key called %d times in %v of injected time; want 2..%d (one per rest of %v, doubling)",
			got, elapsed, allowed, chaosAuthRest)
	}

	t.Logf("revoked key called %d times (at most %d allowed)", got, allowed)

	chaosCounts(t, g, sim, keys, runs.Load(), passes.Load()+warmups)

	g.Close()
	_ = sim.Close()
	goleak.VerifyNone(t, leaks)
}

// chaosPass sends one /v1 request and checks its answer. ok: a success,
// intact; broken: the fault cut it short, as it should.
func chaosPass(t *testing.T, g *hdGateway, job chaosJob, auth []string, fail func(string, ...any)) (ok, broken bool) {
	var req *http.Request
	switch job.kind {
	case "models":
		// An inference endpoint besides chat: answers of /v1/models teach
		// keygate nothing about a key, so a revoked key would be asked
		// again and again there, which this test counts.
		req = hdRequest(t, http.MethodPost, g.URL+"/v1/embeddings", `{"model":"openai/text-embedding-3-small","input":"chaos"}`, auth...)
	default:
		req = hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("chaos/a", job.kind == "stream"), auth...)
	}
	if job.fault != "" {
		req.Header.Set(simulator.HeaderFault, job.fault)
	}
	r := hdDo(g.Client, req)
	what := job.kind + " " + job.fault
	switch {
	case job.broken && r.Status == http.StatusBadGateway && r.Header.Get("X-Keygate-Key") == "3" && r.Intact():
		// The flaky key failed before the fault could apply.
	case job.broken:
		if r.Err == nil && r.Intact() {
			fail("%s: a broken answer reached the client whole (%d)", what, r.Status)
		}
		if r.Status != 0 && r.Status != http.StatusOK && r.Status != http.StatusBadGateway {
			fail("%s: status %d", what, r.Status)
		}
		return false, true
	case r.Err != nil:
		fail("%s: %v", what, r.Err)
	case r.Status == http.StatusOK:
		if !r.Intact() {
			fail("%s: body of %d bytes differs from upstream's", what, len(r.Body))
			return false, false
		}
		return true, false
	case r.Status == http.StatusBadGateway && r.Header.Get("X-Keygate-Key") == "3":
		// The flaky key's own 5xx, passed on as is.
		if !r.Intact() {
			fail("%s: 502 body differs from upstream's", what)
		}
	default:
		fail("%s: status %d from key %s: %s", what, r.Status, r.Header.Get("X-Keygate-Key"), r.Body)
	}
	return false, false
}

// chaosRun sends one /run and checks every entry.
func chaosRun(t *testing.T, g *hdGateway, i int, auth []string, fail func(string, ...any)) bool {
	body := `{"prompt":"chaos ` + strconv.Itoa(i) + `","models":["chaos/a","chaos/b","chaos/c"],"random_key":` + strconv.FormatBool(i%16 == 4) + `}`
	r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", body, auth...))
	if r.Err != nil || r.Status != http.StatusOK {
		fail("/run: %d %v %s", r.Status, r.Err, r.Body)
		return false
	}
	var out struct {
		Successful int `json:"successful"`
		Responses  []struct {
			Model, Output, Status, Error string
			KeyID                        *int `json:"key_id"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || len(out.Responses) != 3 {
		fail("/run answer %s: %v", r.Body, err)
		return false
	}
	for _, e := range out.Responses {
		switch {
		case e.Status == "success" && e.KeyID != nil && *e.KeyID != 1 && strings.Contains(e.Output, e.Model):
		case e.Status == "error" && e.KeyID != nil && *e.KeyID == 3 && strings.HasPrefix(e.Error, "upstream 502"):
		default:
			fail("/run entry %+v", e)
		}
	}
	return out.Successful == 3
}

// chaosCounts checks that /keys and /metrics add up to what upstream saw.
func chaosCounts(t *testing.T, g *hdGateway, sim *simulator.Server, keys []string, runs, passes int64) {
	t.Helper()
	st := sim.Stats()
	kr := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/keys", "", "Authorization", "Bearer "+chaosToken))
	var ks struct {
		Keys []struct {
			ID          int               `json:"id"`
			InFlight    int64             `json:"in_flight"`
			Requests    int64             `json:"requests"`
			Failures    map[string]uint64 `json:"failures"`
			OtherErrors map[string]uint64 `json:"other_errors"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(kr.Body, &ks); err != nil || len(ks.Keys) != len(keys) {
		t.Fatalf("/keys: %v %s", err, kr.Body)
	}
	m := hdScrape(t, g)
	upstream := m["keygate_upstream_requests_total"]
	var total int64
	for i, k := range ks.Keys {
		seen := st.Keys[keys[i]]
		total += seen.Requests
		id := strconv.Itoa(k.ID)
		if k.Requests != seen.Requests || k.InFlight != 0 {
			t.Errorf("key %s: /keys says %d requests (%d in flight), upstream saw %d", id, k.Requests, k.InFlight, seen.Requests)
		}
		if got := hdSum(upstream, map[string]string{"key": id}); got != float64(seen.Requests) {
			t.Errorf("key %s: keygate_upstream_requests_total %v, upstream saw %d", id, got, seen.Requests)
		}
		for code, n := range seen.ByStatus {
			c := strconv.Itoa(code)
			if got := hdSum(upstream, map[string]string{"key": id, "code": c}); got != float64(n) {
				t.Errorf("key %s code %s: metric %v, upstream saw %d", id, c, got, n)
			}
			// The key's faults and the others are apart in /keys; their
			// sum is what upstream answered.
			if code >= 400 && k.Failures[c]+k.OtherErrors[c] != uint64(n) {
				t.Errorf("key %s: /keys failures[%s] + other_errors[%s] = %d + %d, upstream saw %d", id, c, c, k.Failures[c], k.OtherErrors[c], n)
			}
		}
		for _, m := range []map[string]uint64{k.Failures, k.OtherErrors} {
			for c, n := range m {
				if code, _ := strconv.Atoi(c); st.Keys[keys[i]].ByStatus[code] < int64(n) {
					t.Errorf("key %s: /keys counts %d of %s, upstream saw %d", id, n, c, st.Keys[keys[i]].ByStatus[code])
				}
			}
		}
	}
	if total != st.Total || st.Unknown.Requests != 0 {
		t.Errorf("upstream saw %d requests, %d on the keys, %d without a pool key", st.Total, total, st.Unknown.Requests)
	}
	reqs := m["keygate_requests_total"]
	if got := hdSum(reqs, map[string]string{"route": "run"}); got != float64(runs) {
		t.Errorf("keygate_requests_total{route=run} = %v, clients sent %d", got, runs)
	}
	if got := hdSum(reqs, map[string]string{"route": "passthrough"}); got != float64(passes) {
		t.Errorf("keygate_requests_total{route=passthrough} = %v, clients sent %d", got, passes)
	}
	for _, code := range []string{"401", "402", "403", "429", "503"} {
		if got := hdSum(reqs, map[string]string{"code": code}); got != 0 {
			t.Errorf("keygate_requests_total{code=%s} = %v, want 0", code, got)
		}
	}
}
