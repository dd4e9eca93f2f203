package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/secret"
)

// scrape is the /metrics lines of the metric name.
func scrape(t *testing.T, a *App, name string) (out []string) {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, localRequest(http.MethodGet, "/metrics", ""))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, name+"{") {
			out = append(out, l)
		}
	}
	return out
}

// TestReloadRenumbered: a key taken out of OPENROUTER_API_KEYS renumbers
// the ones after it, which are kept (their secret is unchanged): the key
// resting keeps its rest and counts under its new id, the key disabled by
// hand stays disabled, and the answer and the console say who moved.
// Metric series follow the ids: none is left under an id whose key changed.
func TestReloadRenumbered(t *testing.T) {
	up := newUpstream(t)
	up.revoke(2)
	path := filepath.Join(t.TempDir(), "keys.env")
	write := func(ids ...int) {
		var ks []string
		for _, id := range ids {
			ks = append(ks, liveKeys[id])
		}
		if err := os.WriteFile(path, []byte("OPENROUTER_API_KEYS="+strings.Join(ks, ",")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 2, 3)
	a, logs := newLiveApp(t, up.URL, nil, Options{}, "KEYS_FILE="+path, "KEY_ROTATION=round-robin")
	if err := a.Live.Disable(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		chat(t, a.Handler) // …2141, key 2, answers 401 and rests
	}
	if _, err := a.Live.Check(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	before := getKeys(t, a.Handler)
	if k := before.Keys[1]; k.State != "open" || k.RestReason == nil || *k.RestReason != "auth" {
		t.Fatalf("key 2 before the reload: %+v, want resting for auth", k)
	}

	write(2, 3)
	res, err := a.Live.Reload(context.Background())
	if err != nil || res.Refused != "" {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	want := admin.ReloadResult{Keys: 2, Removed: []int{1}, Kept: []int{1, 2},
		Renumbered: []admin.Move{{From: 2, To: 1}, {From: 3, To: 2}}}
	if res.Keys != want.Keys || len(res.Added) != 0 || !slices.Equal(res.Removed, want.Removed) ||
		!slices.Equal(res.Kept, want.Kept) || !slices.Equal(res.Renumbered, want.Renumbered) {
		t.Fatalf("reload = %+v, want %+v", res, want)
	}
	after := getKeys(t, a.Handler)
	if len(after.Keys) != 2 {
		t.Fatalf("after the reload: %d keys", len(after.Keys))
	}
	if k, was := after.Keys[0], before.Keys[1]; k.ID != 1 || k.State != "open" || k.RestReason == nil ||
		*k.RestReason != "auth" || k.Requests != was.Requests {
		t.Errorf("key …2141, now #1: %+v, want its rest and counts as #2 had them (%+v)", k, was)
	}
	if k := after.Keys[1]; k.ID != 2 || !k.Disabled {
		t.Errorf("key …4f25, now #2: %+v, want still disabled", k)
	}
	// Both keys stay out of rotation: no call reaches upstream.
	if code := chat(t, a.Handler); code == http.StatusOK {
		t.Errorf("a call after the reload was answered %d: a key left rotation", code)
	}
	if !strings.Contains(logs.String(), "🔁 Key pool reloaded: 2 keys (+0 added, −1 removed, 2 kept), 2 renumbered: #2→#1, #3→#2") {
		t.Errorf("no reload line naming the renumbered keys in:\n%s", logs)
	}
	// Key 2's cooldown was …2141's; #2 is …4f25 now, and #3 is gone.
	for _, l := range scrape(t, a, "keygate_key_cooldowns_total") {
		if (strings.Contains(l, `key="2"`) || strings.Contains(l, `key="3"`)) && !strings.HasSuffix(l, " 0") {
			t.Errorf("a series left under an id whose key changed: %s", l)
		}
	}

	if got := scrape(t, a, "keygate_key_budget_remaining_usd"); !slices.Equal(got, []string{`keygate_key_budget_remaining_usd{key="2"} 4.5`}) {
		t.Errorf("budget gauges %v, want …4f25's under its new id 2", got)
	}

	// A disable follows the secret: one a replica wrote under the key's
	// old id is honoured, and the later of two toggles under either id
	// wins.
	k4 := secret.New(liveKeys[4])
	t0 := time.Now()
	a.Live.ApplyEvent(cluster.Event{Kind: cluster.Disable, Key: cluster.RefOf(7, k4), At: t0})
	write(2, 3, 4)
	if res, _ := a.Live.Reload(context.Background()); !slices.Equal(res.Added, []int{3}) {
		t.Fatalf("reload = %+v", res)
	}
	if k := getKeys(t, a.Handler).Keys[2]; k.ID != 3 || !k.Disabled {
		t.Errorf("key …9824 as #3, disabled as #7 elsewhere: %+v, want disabled", k)
	}
	a.Live.ApplyEvent(cluster.Event{Kind: cluster.Enable, Key: cluster.RefOf(3, k4), At: t0.Add(time.Second)})
	a.Live.ApplyEvent(cluster.Event{Kind: cluster.Disable, Key: cluster.RefOf(7, k4), At: t0})
	if k := getKeys(t, a.Handler).Keys[2]; k.Disabled {
		t.Errorf("key …9824 enabled as #3 after its disable as #7: %+v, want enabled", k)
	}
}
