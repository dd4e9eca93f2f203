package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// TestCheckAcrossReloadLeavesNewKeysGauges: an admin budget check of key
// 3 is out (GET /key slow) when a reload gives id 3 another secret of
// another account. When the old key's answer comes back, its figures must
// not land in the metric series of the key now under id 3, nor bring back
// the account series the reload dropped.
func TestCheckAcrossReloadLeavesNewKeysGauges(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	newKey3 := "sk-or-v1-00000000000000000000000000000000000000000000000000000000000000f3"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/key" {
			_, _ = io.WriteString(w, `{"id":"x","choices":[{"message":{"role":"assistant","content":"ok"}}]}`)
			return
		}
		switch key {
		case liveKeys[3]: // the old key 3: $0.42 left, account user_old
			started <- struct{}{}
			<-release
			_, _ = io.WriteString(w, `{"data":{"limit":5,"limit_remaining":0.42,"usage":4.58,"creator_user_id":"user_old","free_model_daily_requests":{"used":7,"limit":50,"remaining":43}}}`)
		case newKey3: // the new key 3: no cap
			_, _ = io.WriteString(w, `{"data":{"limit":null,"limit_remaining":null,"usage":0,"creator_user_id":"user_new"}}`)
		default:
			_, _ = io.WriteString(w, `{"data":{"limit":null,"limit_remaining":null,"usage":0,"creator_user_id":"user_a"}}`)
		}
	}))
	t.Cleanup(up.Close)
	a, _ := newLiveApp(t, up.URL, []int{1, 2, 3}, Options{})
	addr := serveLoopback(t, a)

	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/admin/keys/3/check", nil)
		req.Header.Set("Authorization", "Bearer admin-token-for-tests")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-started
	next := append(entries(1, 2), keyring.Entry{ID: 3, Secret: secret.New(newKey3)})
	if res := a.Live.Apply(next, nil, "file"); res.Refused != "" {
		t.Fatalf("reload refused: %s", res.Refused)
	}
	close(release)
	<-done

	if got := scrape(t, a, "keygate_key_budget_remaining_usd"); len(got) != 0 {
		t.Errorf("after the reload, key 3 is a new key whose budget is unknown (absent), but /metrics has %v: the old key 3's figure", got)
	}
	if got := scrape(t, a, "keygate_account_free_requests_remaining"); len(got) != 0 {
		t.Errorf("no key of the pool belongs to the old key's account, yet /metrics has %v", got)
	}
}
