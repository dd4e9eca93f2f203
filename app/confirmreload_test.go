package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConfirmAcrossAReload: a 401 of key 1 is held while its GET /key
// confirms it, and a reload that keeps key 1 comes before the GET /key
// answers. The fault is settled for the key in the pool in force: key 1,
// revoked, rests AUTH_FAILURE_COOLDOWN there. The reload stopped the old
// poller, which settled the fault in the old pool, which no call picks from
// any more; the pool in force kept only the 5 s hold, and the revoked key
// came back into rotation after it.
func TestConfirmAcrossAReload(t *testing.T) {
	revoked := liveKeys[1]
	release := make(chan struct{})
	var once sync.Once
	polling := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/key" {
			if key == revoked {
				once.Do(func() { close(polling) })
				// Slow, as GET /key may be: the reload comes meanwhile.
				select {
				case <-time.After(1500 * time.Millisecond):
				case <-release:
				case <-r.Context().Done():
					return
				}
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"error":{"message":"User not found.","code":401}}`)
				return
			}
			_, _ = io.WriteString(w, `{"data":{"limit":null,"usage":0.5,"creator_user_id":"user_`+key[len(key)-4:]+`"}}`)
			return
		}
		if key == revoked {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"message":"User not found.","code":401}}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"x","choices":[{"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	}))
	defer srv.Close()
	defer close(release)
	a, _ := newLiveApp(t, srv.URL, []int{1, 2}, Options{}, "BUDGET_POLL_INTERVAL=1h", "KEY_ROTATION=round-robin")
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { a.Live.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	<-polling // key 1's first GET /key is out, and answers 401 in 1.5 s
	for range 2 {
		// Round-robin: one of the two calls tries key 1 first, gets its
		// 401 and goes on to key 2.
		if code := chat(t, a.Handler); code != http.StatusOK {
			t.Fatalf("chat: %d", code)
		}
	}
	if res := a.Live.Apply(entries(1, 2), nil, "sighup"); res.Refused != "" {
		t.Fatal(res.Refused)
	}
	// Past the hold (5 s), key 1 must still rest in the pool in force, as
	// it does without the reload (its GET /key answers 401 at 1.5 s).
	time.Sleep(6 * time.Second)
	now := time.Now().UnixNano()
	k1 := a.Relay.Pool().ByID(1)
	if a.Relay.Pool().Available(k1, now) {
		t.Fatalf("key 1, revoked (401, and its GET /key was out when the reload came), is back in rotation 6 s later: %+v", getKeys(t, a.Handler).Keys[0])
	}
}
