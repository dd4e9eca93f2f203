package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/simulator"
)

// leakUpstream answers like a careless provider: keys 1-3 get errors whose
// bodies quote the key back (401, 429, 502, as JSON and as plain text, the
// 429 once gzip'ed); key 4 gets the simulator, faults and all.
type leakUpstream struct {
	keys []string
	sim  *simulator.Server
}

func (u *leakUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	var body []byte
	if key != u.keys[3] {
		body, _ = io.ReadAll(r.Body)
	}
	if bytes.Contains(body, []byte(`"leak/echo"`)) {
		// A model that answers with the key it was called with.
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"choices":[{"message":{"role":"assistant","content":"you called me with %s"}}]}`, key)
		return
	}
	switch key {
	case u.keys[0]:
		w.Header().Set("Content-Type", "application/json")
		var out io.Writer = w
		if strings.Contains(r.Header.Get("Accept-Encoding"), "br") {
			// Claims a coding keygate cannot read (the body is plain,
			// which keygate cannot know).
			w.Header().Set("Content-Encoding", "br")
		} else if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			defer zw.Close()
			out = zw
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(out, `{"error":{"message":"Incorrect API key provided: %s. You can find your API key at https://example.invalid.","code":401}}`, key)
	case u.keys[1]:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, `{"error":"rate limit exceeded for key %s (%s)"}`, key, strings.Repeat("x", 2<<20))
	case u.keys[2]:
		// The key in a header, and in the body past /run's 200-byte quote.
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Echo-Authorization", "Bearer "+key)
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "provider rejected %s Authorization: Bearer %s\n", strings.Repeat("-", 170), key)
	default:
		u.sim.ServeHTTP(w, r)
	}
}

// TestNoKeyLeaks runs traffic full of errors — keys quoted back in error
// bodies, all keys resting, timeouts, broken streams, bad JSON, clients
// that send a pool key as their token — and searches the gateway's whole
// log, every answer (status line, headers, body, trailers), /keys and
// /metrics for any 12-byte piece of any key.
func TestNoKeyLeaks(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { leakRun(t, format) })
	}
}

func leakRun(t *testing.T, format string) {
	clk := newClock()
	keys := hdKeys(4)
	profiles := map[string]simulator.Profile{}
	for _, k := range keys {
		profiles[k] = simulator.Profile{}
	}
	sim := simulator.New(simulator.Options{Keys: profiles, Now: clk.Now})
	t.Cleanup(func() { _ = sim.Close() })
	up := httptest.NewServer(&leakUpstream{keys: keys, sim: sim})
	t.Cleanup(up.Close)
	const token = "leak-test-client-token"
	g := hdStart(t, up.URL+simulator.PathPrefix, keys, clk, "LOG_FORMAT="+format,
		"GATEWAY_API_KEYS="+token, "UPSTREAM_TIMEOUT=300ms", "KEY_ROTATION=round-robin")
	g.App.Warnings()
	auth := []string{"Authorization", "Bearer " + token}

	var mu sync.Mutex
	var seen strings.Builder
	record := func(what string, r hdResult) {
		mu.Lock()
		defer mu.Unlock()
		body := r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Errorf("%s: gzip'ed body unreadable: %v", what, err)
				return
			}
			body, _ = io.ReadAll(zr)
		}
		fmt.Fprintf(&seen, "== %s: %d %v\n%v\n%s\n%v\n", what, r.Status, r.Err, r.Header, body, r.Trailer)
		if what == "one quoting key" && !strings.Contains(string(body), "sk-or-v1-…") {
			t.Errorf("%s: %d answer without the masked key: %.300s", what, r.Status, body)
		}
	}
	send := func(what string, req *http.Request) hdResult {
		r := hdDo(g.Client, req)
		record(what, r)
		return r
	}
	chat := func(stream bool, fault string) *http.Request {
		return hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("leak/m", stream), append(auth, simulator.HeaderFault, fault)...)
	}
	gzipped := func(req *http.Request) *http.Request { req.Header.Set("Accept-Encoding", "gzip"); return req }

	statuses := map[int]int{}
	for round := range 3 {
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Go(func() {
				var r hdResult
				switch i % 8 {
				case 0:
					r = send("plain", chat(false, "status=200"))
				case 1:
					r = send("stream", chat(true, "chunks=3"))
				case 2:
					r = send("truncated stream", chat(true, "truncate"))
				case 3:
					r = send("reset", chat(false, "reset"))
				case 4:
					r = send("slow", chat(false, "delay=1s"))
				case 5:
					r = send("badjson", gzipped(chat(false, "badjson")))
				case 6:
					r = send("run", hdRequest(t, http.MethodPost, g.URL+"/run",
						`{"prompt":"p","models":["a/b","sim/status=500","sim/badjson","sim/truncate","x/broken","sim/delay=1s","leak/echo"]}`, auth...))
				case 7:
					r = send("pool key as token", hdRequest(t, http.MethodGet, g.URL+"/v1/models", "", "Authorization", "Bearer "+keys[i%4]))
				}
				mu.Lock()
				statuses[r.Status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		// Every key rested; bring them back so they quote themselves again.
		clk.Advance(time.Duration(round+1) * time.Hour)
	}
	// With the other keys resting, the last key's fault reaches the client.
	for i := range 4 {
		send("last key", gzipped(chat(false, "")))
		send("last key, all rest", chat(i%2 == 0, ""))
	}
	// Gateways of one quoting key each: its fault reaches the client, the
	// 401 gzip'ed or not, the 429's body streamed (it is megabytes long).
	gws := []*hdGateway{g}
	for _, k := range keys[:2] {
		one := hdStart(t, up.URL+simulator.PathPrefix, []string{k}, clk, "LOG_FORMAT="+format, "GATEWAY_API_KEYS="+token)
		gws = append(gws, one)
		for i := range 4 {
			req := hdRequest(t, http.MethodPost, one.URL+"/v1/chat/completions", hdChat("leak/m", i%2 == 0), auth...)
			switch i {
			case 2:
				req.Header.Set("Accept-Encoding", "gzip")
			case 3:
				req.Header.Set("Accept-Encoding", "gzip, br")
			}
			r := hdDo(one.Client, req)
			record("one quoting key", r)
			statuses[r.Status]++
			clk.Advance(time.Hour)
		}
	}
	for _, gw := range gws {
		send("keys", hdRequest(t, http.MethodGet, gw.URL+"/keys", "", auth...))
		send("metrics", hdRequest(t, http.MethodGet, gw.URL+"/metrics", ""))
	}
	t.Logf("client statuses: %v", statuses)
	for _, code := range []int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusOK} {
		if statuses[code] == 0 {
			t.Errorf("no client got %d: the run did not go through the errors it should", code)
		}
	}

	logs := ""
	for _, gw := range gws {
		gw.Close()
		logs += gw.Logs.String()
	}
	for _, k := range keys[:3] {
		if masked := secret.Mask(k); !strings.Contains(logs+seen.String(), masked) {
			t.Errorf("masked form %s of a quoting key shows nowhere: were its errors seen?", masked)
		}
	}
	for name, out := range map[string]string{"log": logs, "answers": seen.String()} {
		if w, ok := hdLeak(out, keys); ok {
			i := strings.Index(out, w)
			t.Errorf("%s leaks %q of a key: …%s…", name, w, out[max(0, i-200):min(len(out), i+100)])
		}
	}
}
