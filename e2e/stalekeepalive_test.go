package e2e

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStaleKeepAlive: an HTTP/1.1 upstream that closes idle keep-alive
// connections (uvicorn's 5 s; here 40 ms), called at about that interval:
// a POST that went out on a connection it had just closed is sent again,
// once, and no client sees it fail (9 to 20 of 150 did, as 502s of
// requests upstream never processed). Each request is served once.
func TestStaleKeepAlive(t *testing.T) {
	var served atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(rawJSON))
	}))
	up.Config.IdleTimeout = 40 * time.Millisecond
	up.Start()
	defer up.Close()
	clk := newClock()
	g := hdStart(t, up.URL, hdKeys(1), clk, "LOG_FORMAT=json")
	fails := 0
	const n = 100
	for i := range n {
		r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false)))
		if r.Status != 200 {
			fails++
			if fails < 4 {
				t.Logf("request %d: %d %s", i, r.Status, r.Body)
			}
		}
		time.Sleep(time.Duration(38_000+rand.IntN(4000)) * time.Microsecond)
	}
	k := ptKeys(t, g.gateway)[1]
	t.Logf("%d of %d requests failed; upstream served %d; key %s until %v", fails, n, served.Load(), k.State, k.CooldownUntil)
	for _, l := range strings.Split(g.Logs.String(), "\n") {
		if strings.Contains(l, "failed") {
			t.Log(l)
		}
	}
	if fails > 0 {
		t.Errorf("%d of %d POSTs failed on a connection upstream closed as idle", fails, n)
	}
	if got := served.Load(); got != n {
		t.Errorf("upstream served %d requests, want %d, each once", got, n)
	}
}
