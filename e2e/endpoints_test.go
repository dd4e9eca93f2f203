package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHealthAndReadiness checks /healthz (200 while the process runs) and
// /readyz (200 while a key is in rotation, else 503).
func TestHealthAndReadiness(t *testing.T) {
	keys := testKeys(2)
	var limited atomic.Bool
	limited.Store(true)
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		if limited.Load() {
			w.Header().Set("Retry-After", "20")
			w.WriteHeader(429)
			return
		}
		ptOK(w, r, s)
	})
	gw := startGateway(t, up.URL, keys, "GATEWAY_API_KEYS=tok")
	probe := func(path string, want int) {
		t.Helper()
		resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
		if resp.StatusCode != want || !json.Valid(body) {
			t.Errorf("GET %s: %d %s, want %d with a JSON body", path, resp.StatusCode, body, want)
		}
		// HEAD gets the same status, without a body.
		resp, body = do(t, newRequest(t, http.MethodHead, gw.URL+path, nil))
		if resp.StatusCode != want || len(body) != 0 {
			t.Errorf("HEAD %s: %d %q, want %d without a body", path, resp.StatusCode, body, want)
		}
	}
	probe("/healthz", 200)
	probe("/readyz", 200)
	// HEAD of /keys and /metrics answered 405; /keys still needs a token.
	probe("/keys", 401)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req := newRequest(t, method, gw.URL+"/keys", nil)
		req.Header.Set("Authorization", "Bearer tok")
		if resp, _ := do(t, req); resp.StatusCode != 200 {
			t.Errorf("%s /keys with the token: %d, want 200", method, resp.StatusCode)
		}
		resp, body := do(t, newRequest(t, method, gw.URL+"/metrics", nil))
		if resp.StatusCode != 200 || (method == http.MethodHead) != (len(body) == 0) {
			t.Errorf("%s /metrics: %d with %d bytes", method, resp.StatusCode, len(body))
		}
	}

	req := newRequest(t, http.MethodGet, gw.URL+"/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer tok")
	if resp, _ := do(t, req); resp.StatusCode != 429 {
		t.Fatalf("status %d, want 429 with every key limited", resp.StatusCode)
	}
	probe("/readyz", 503)
	probe("/healthz", 200)
	gw.Clock.Advance(19 * time.Second)
	probe("/readyz", 503)
	gw.Clock.Advance(time.Second)
	probe("/readyz", 200)
	probe("/healthz", 200)
}

// TestKeysEndpoint checks GET /keys: its exact shape, masked keys, and the
// live state of each key.
func TestKeysEndpoint(t *testing.T) {
	keys := testKeys(3)
	release := make(chan struct{})
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		switch s.Key {
		case keys[0]:
			w.WriteHeader(401)
		case keys[1]:
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(429)
		default:
			if r.URL.Path == "/slow" {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			ptOK(w, r, s)
		}
	})
	gw := startGateway(t, up.URL, keys, "KEY_ROTATION=least-busy", "GATEWAY_API_KEYS=tok")
	get := func(path string) (*http.Response, []byte) {
		req := newRequest(t, http.MethodGet, gw.URL+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		return do(t, req)
	}
	if resp, _ := do(t, newRequest(t, http.MethodGet, gw.URL+"/keys", nil)); resp.StatusCode != 401 {
		t.Errorf("GET /keys without the gateway token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get("/v1/chat/completions"); resp.StatusCode != 200 || resp.Header.Get("X-Keygate-Key") != "3" {
		t.Fatalf("got %d from key %s, want 200 from key 3", resp.StatusCode, resp.Header.Get("X-Keygate-Key"))
	}
	now := gw.Clock.Now()

	resp, body := get("/keys")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /keys: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("GET /keys: %v", err)
	}
	if got := ptFieldNames(doc); got != "keys,strategy" {
		t.Errorf("/keys fields %s, want keys,strategy", got)
	}
	if string(doc["strategy"]) != `"least-busy"` {
		t.Errorf("strategy %s, want \"least-busy\"", doc["strategy"])
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(doc["keys"], &entries); err != nil || len(entries) != 3 {
		t.Fatalf("keys %s: want an array of 3 (%v)", doc["keys"], err)
	}
	want := []struct {
		state, failures, until string
		requests               int
	}{
		{"open", `{"401":1}`, now.Add(10 * time.Minute).UTC().Format(time.RFC3339), 1},
		{"open", `{"429":1}`, now.Add(60 * time.Second).UTC().Format(time.RFC3339), 1},
		{"closed", `{}`, "", 1},
	}
	for i, e := range entries {
		w := want[i]
		if got := ptFieldNames(e); got != "account,budget,cooldown_until,disabled,failures,fingerprint,id,in_flight,masked,other_errors,requests,rest_reason,state" {
			t.Errorf("key fields %s", got)
		}
		raw := keys[i]
		checks := map[string]string{
			"id":        strconv.Itoa(i + 1),
			"masked":    `"sk-or-v1-…` + raw[len(raw)-4:] + `"`,
			"state":     `"` + w.state + `"`,
			"in_flight": "0",
			"requests":  strconv.Itoa(w.requests),
			"failures":  w.failures,
		}
		for f, v := range checks {
			if string(e[f]) != v {
				t.Errorf("key %d %s = %s, want %s", i+1, f, e[f], v)
			}
		}
		var until *string
		if err := json.Unmarshal(e["cooldown_until"], &until); err != nil {
			t.Errorf("key %d cooldown_until %s: %v", i+1, e["cooldown_until"], err)
		}
		switch {
		case w.until == "" && until != nil:
			t.Errorf("key %d cooldown_until %q, want null", i+1, *until)
		case w.until != "" && until == nil:
			t.Errorf("key %d cooldown_until null, want %s", i+1, w.until)
		case until != nil:
			at, err := time.Parse(time.RFC3339, *until)
			if err != nil || at.UTC().Format(time.RFC3339) != w.until {
				t.Errorf("key %d cooldown_until %q, want RFC3339 %s (%v)", i+1, *until, w.until, err)
			}
		}
	}
	for _, raw := range keys {
		hidden := raw[len("sk-or-v1-") : len(raw)-4]
		for j := 0; j+8 <= len(hidden); j++ {
			if strings.Contains(string(body), hidden[j:j+8]) {
				t.Fatalf("/keys shows part of a key: %q", hidden[j:j+8])
			}
		}
	}

	// A call in flight shows; then the rests end and the keys turn half-open.
	done := make(chan struct{})
	slow := newRequest(t, http.MethodGet, gw.URL+"/v1/slow", nil).WithContext(t.Context())
	slow.Header.Set("Authorization", "Bearer tok")
	go func() {
		defer close(done)
		if r, err := http.DefaultClient.Do(slow); err == nil {
			r.Body.Close()
		}
	}()
	ptEventually(t, "key 3 in flight", func() bool { return ptKeys(t, gw)[3].InFlight == 1 })
	close(release)
	ptWait(t, done, "the slow call")
	ptIdle(t, gw)
	gw.Clock.Advance(10*time.Minute + time.Millisecond)
	var states []string
	for id := 1; id <= 3; id++ {
		k := ptKeys(t, gw)[id]
		if k.CooldownUntil != nil {
			t.Errorf("key %d cooldown_until %v after its rest, want null", id, k.CooldownUntil)
		}
		states = append(states, k.State)
	}
	if !slices.Equal(states, []string{"half-open", "half-open", "closed"}) {
		t.Errorf("states %v after the rests, want half-open, half-open, closed", states)
	}
}

// ptFieldNames lists an object's field names, sorted, comma-separated.
func ptFieldNames(m map[string]json.RawMessage) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// TestKeysDisabledState: a key disabled by hand shows "disabled": true
// beside its automatic state in /keys, and keygate_key_state is that
// automatic state too: a healthy disabled key is closed, a disabled key
// resting after a 401 is open, then half-open once the rest is over.
func TestKeysDisabledState(t *testing.T) {
	keys := testKeys(3)
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		if s.Key == keys[0] {
			w.WriteHeader(401)
			return
		}
		ptOK(w, r, s)
	})
	gw := startGateway(t, up.URL, keys, "KEY_ROTATION=round-robin", "GATEWAY_API_KEYS=tok", "ADMIN_TOKEN=adm")
	call := func(method, path, token string) int {
		req := newRequest(t, method, gw.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	for range 3 {
		if code := call(http.MethodGet, "/v1/chat/completions", "tok"); code != 200 {
			t.Fatalf("GET /v1/chat/completions: %d", code)
		}
	}
	for _, id := range []string{"1", "2"} {
		if code := call(http.MethodPost, "/admin/keys/"+id+"/disable", "adm"); code != 200 {
			t.Fatalf("disable key %s: %d", id, code)
		}
	}
	check := func(phase string, want map[int]string) {
		t.Helper()
		ks := ptKeys(t, gw)
		_, mfs := mtScrape(t, gw)
		series := mtSeries(t, mfs)
		gauge := map[string]float64{"closed": 0, "half-open": 1, "open": 2}
		for id, state := range want {
			k := ks[id]
			if k.State != state || k.Disabled != (id != 3) {
				t.Errorf("%s: key %d state %q disabled %v, want %q disabled %v", phase, id, k.State, k.Disabled, state, id != 3)
			}
			if s := `keygate_key_state{key="` + strconv.Itoa(id) + `"}`; series[s] != gauge[state] {
				t.Errorf("%s: %s = %v, want %v", phase, s, series[s], gauge[state])
			}
		}
	}
	check("resting", map[int]string{1: "open", 2: "closed", 3: "closed"})
	gw.Clock.Advance(10*time.Minute + time.Millisecond)
	check("rest over", map[int]string{1: "half-open", 2: "closed", 3: "closed"})
}
