package app

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestSpendAfterRenumberOverRedis: one replica on Redis, its budget
// polled once at start (limit 5, 4.5 left). A reload renumbers the key
// (OPENROUTER_API_KEY_1 becomes _2: same secret, kept). Ten calls of
// $0.10 each follow: /keys must show about $3.50 left, and keep showing
// it (CONTRACT: "what keygate shows is within one answer's cost of what
// upstream counts"). The once-a-second re-read must not put back the
// pre-call figure. Control: the same without the renumbering.
func TestSpendAfterRenumberOverRedis(t *testing.T) {
	for _, renumber := range []bool{false, true} {
		name := "kept id"
		if renumber {
			name = "renumbered"
		}
		t.Run(name, func(t *testing.T) {
			rs := redistest.Start(t)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path == "/key" {
					_, _ = io.WriteString(w, `{"data":{"limit":5,"limit_remaining":4.5,"usage":0.5,"usage_daily":0.1,"creator_user_id":"user_a"}}`)
					return
				}
				_, _ = io.WriteString(w, `{"id":"x","choices":[{"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":0.1}}`)
			}))
			defer up.Close()
			path := filepath.Join(t.TempDir(), "keys.env")
			if err := os.WriteFile(path, []byte("OPENROUTER_API_KEY_1="+liveKeys[1]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			a, _ := newLiveApp(t, up.URL, nil, Options{}, "REDIS_URL="+rs.URL(), "KEYS_FILE="+path, "BUDGET_POLL_INTERVAL=1h")
			serveLoopback(t, a)
			left := func() float64 {
				k := getKeys(t, a.Handler).Keys
				if len(k) != 1 || k[0].Budget == nil || k[0].Budget.LimitRemaining == nil {
					return math.NaN()
				}
				return *k[0].Budget.LimitRemaining
			}
			waitFor(t, "first poll and redis", func() bool { return a.Store.Up() && left() == 4.5 })
			time.Sleep(1200 * time.Millisecond) // the poll's figures in Redis
			if renumber {
				if err := os.WriteFile(path, []byte("OPENROUTER_API_KEY_2="+liveKeys[1]+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if res, _ := a.Live.Reload(context.Background()); res.Refused != "" || len(res.Renumbered) != 1 {
					t.Fatalf("reload: %+v", res)
				}
			}
			for range 10 {
				if c := chat(t, a.Handler); c != http.StatusOK {
					t.Fatalf("chat %d", c)
				}
			}
			if l := left(); math.Abs(l-3.5) > 0.11 {
				t.Fatalf("right after the calls: $%.2f left, want $3.50", l)
			}
			var worst float64 = 3.5
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				worst = max(worst, left())
			}
			if worst > 3.61 {
				t.Errorf("the re-read put the spend back: /keys showed up to $%.2f left after $1.00 of calls on $4.50", worst)
			}
		})
	}
}
