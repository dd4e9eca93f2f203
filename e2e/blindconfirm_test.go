package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBlind401RestsOnlyOnGetKeysWord: a 401 on a path that is not
// inference (GET /v1/keys wants a provisioning key, a made-up path may
// answer anything) is asked of the key's own GET /key, and only that
// answer may rest the key. While GET /key fails (a 5xx, a timeout), the
// 401 used to stand as the key's: any client could then rest every key
// of the pool, unbounded by CLIENT_REST_SHARE, by calling such a path.
func TestBlind401RestsOnlyOnGetKeysWord(t *testing.T) {
	var getKey atomic.Int32 // GET /key's status: 500 until set
	getKey.Store(http.StatusInternalServerError)
	up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/keys"):
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"code":401,"message":"Invalid management key"}}`)
		case strings.HasSuffix(r.URL.Path, "/key"):
			st := int(getKey.Load())
			w.WriteHeader(st)
			if st == http.StatusUnauthorized {
				_, _ = io.WriteString(w, `{"error":{"code":401,"message":"User not found."}}`)
				return
			}
			_, _ = io.WriteString(w, `{"error":{"code":500,"message":"Internal Server Error"}}`)
		default:
			ptOK(w, r, s)
		}
	})
	keys := testKeys(2)
	gw := startGateway(t, up.URL+"/api/v1", keys, "CLIENT_REST_SHARE=0.5", "BUDGET_POLL_INTERVAL=1h")
	getKeyCalls := func() int {
		n := 0
		for _, s := range seen.all() {
			if strings.HasSuffix(strings.SplitN(s.RequestURI, "?", 2)[0], "/key") {
				n++
			}
		}
		return n
	}

	start := getKeyCalls() // no start-up polls: the app is not Run here
	for i := 0; i < 4; i++ {
		resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/keys", nil))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /v1/keys: %d %s, want upstream's 401 passed on", resp.StatusCode, b)
		}
	}
	ptEventually(t, "both keys' GET /key asked", func() bool { return getKeyCalls() >= start+2 })
	// Give the confirmations time to settle, on the gateway's clock too.
	time.Sleep(100 * time.Millisecond)
	ptIdle(t, gw)
	for id, k := range ptKeys(t, gw) {
		if k.State != "closed" || k.CooldownUntil != nil {
			t.Errorf("key %d %s until %v after 401s of GET /v1/keys while its GET /key failed; want it in rotation", id, k.State, k.CooldownUntil)
		}
	}
	for i := 0; i < 2; i++ {
		if resp, b := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))); resp.StatusCode != http.StatusOK {
			t.Errorf("chat after the blind 401s: %d %s", resp.StatusCode, b)
		}
	}

	// GET /key's own 401 is the key's word: then the key rests.
	getKey.Store(http.StatusUnauthorized)
	before := getKeyCalls()
	if resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/keys", nil)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/keys: %d %s", resp.StatusCode, b)
	}
	ptEventually(t, "GET /key asked again", func() bool { return getKeyCalls() > before })
	ptEventually(t, "a key rested on its GET /key's 401", func() bool {
		for _, k := range ptKeys(t, gw) {
			if k.CooldownUntil != nil {
				return true
			}
		}
		return false
	})
}
