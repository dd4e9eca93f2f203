package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
)

// TestReloadRace runs picks and calls through the relay while reloads add
// and remove keys: no pick from a snapshot returns a key of another, a
// pick after a reload never returns a key it removed, every call's in-flight
// count returns to zero on the snapshot it began on, and nothing leaks.
func TestReloadRace(t *testing.T) {
	noLeak(t)
	up := newUpstream(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	a, _ := newLiveApp(t, up.URL, []int{1, 2, 3}, Options{Transport: tr}, "BUDGET_POLL_INTERVAL=1h")
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { a.Live.Run(ctx); close(ran) }()

	sets := [][]int{{1, 2, 3}, {2, 3, 4}, {4, 5}, {1, 5}, {3}}
	var (
		mu    sync.Mutex
		pools []*keyring.Pool
		stop  atomic.Bool
		wg    sync.WaitGroup
		calls atomic.Int64
	)
	pools = append(pools, a.Relay.Pool())
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if w%2 == 0 {
					snap := a.Relay.Snapshot()
					l, err := snap.Acquire(keyring.RoundRobin{}, nil)
					if err != nil {
						continue
					}
					if snap.Pool().ByID(l.Key.ID) != l.Key {
						t.Errorf("a pick gave key %d of another snapshot", l.Key.ID)
					}
					snap.Release(l)
					continue
				}
				req, _ := http.NewRequest(http.MethodPost, up.URL+"/chat/completions", strings.NewReader(`{}`))
				c := relay.Call{Strategy: keyring.NewRandom(nil)}
				resp, err := a.Relay.Do(req, []byte(`{}`), &c)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				calls.Add(1)
			}
		}()
	}
	// At least 60 reloads, and on until calls went through among them
	// (a loaded machine may finish 60 before the callers' first call).
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 60 || calls.Load() < 20 && time.Now().Before(deadline); i++ {
		ids := sets[i%len(sets)]
		if res := a.Live.Apply(entries(ids...), nil, "file"); res.Refused != "" {
			t.Fatalf("reload to %v refused: %s", ids, res.Refused)
		}
		snap := a.Relay.Snapshot()
		mu.Lock()
		pools = append(pools, snap.Pool())
		mu.Unlock()
		for range 5 {
			l, err := a.Relay.Acquire(keyring.RoundRobin{}, nil)
			if err != nil {
				continue
			}
			in := false
			for _, id := range ids {
				in = in || id == l.Key.ID
			}
			if !in {
				t.Errorf("after reload to %v a pick gave key %d", ids, l.Key.ID)
			}
			a.Relay.Release(l)
		}
	}
	stop.Store(true)
	wg.Wait()
	cancel()
	<-ran
	if calls.Load() == 0 {
		t.Fatal("no call went through")
	}
	for _, p := range pools {
		for _, k := range p.Keys() {
			if n := p.Ledger().InFlight(k.Slot()); n != 0 {
				t.Errorf("key %d: %d calls still in flight", k.ID, n)
			}
		}
	}
	tr.CloseIdleConnections()
}

// TestKeysFileWatched: a served gateway with KEYS_FILE follows the file (a
// new file is in force within a bounded wait), and POST /admin/reload
// answers what it did, or why it refused.
func TestKeysFileWatched(t *testing.T) {
	noLeak(t)
	up := newUpstream(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.env")
	write := func(ids ...int) {
		var b strings.Builder
		for _, id := range ids {
			b.WriteString("OPENROUTER_API_KEY_" + string(rune('0'+id)) + "=" + liveKeys[id] + "\n")
		}
		// Written aside and renamed over, as editors and secret mounts do.
		tmp := filepath.Join(dir, ".keys.tmp")
		if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(1, 2)
	a, logs := newLiveApp(t, up.URL, nil, Options{}, "KEYS_FILE="+path)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln, nil) }()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	waitFor(t, "the gateway up", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})

	ids := func() []int {
		var out []int
		for _, k := range a.Relay.Pool().Keys() {
			out = append(out, k.ID)
		}
		return out
	}
	write(1, 2, 3)
	waitFor(t, "the file's new key in the pool", func() bool { return len(ids()) == 3 })

	post := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, base+"/admin/reload", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, m
	}
	if code, _ := post("wrong"); code != http.StatusUnauthorized {
		t.Errorf("reload with a wrong token: %d", code)
	}
	write(3, 4)
	code, m := post("admin-token-for-tests")
	if code != http.StatusOK || m["keys"] != 2.0 || len(m["added"].([]any)) != 1 || len(m["removed"].([]any)) != 2 || len(m["kept"].([]any)) != 1 {
		t.Errorf("POST /admin/reload: %d %v", code, m)
	}
	if err := os.WriteFile(path, []byte("garbage line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, m = post("admin-token-for-tests")
	if e, _ := m["error"].(map[string]any); code != http.StatusUnprocessableEntity || e["type"] != "reload_refused" {
		t.Errorf("refused reload: %d %v", code, m)
	}
	if got := ids(); len(got) != 2 || got[0] != 3 {
		t.Errorf("pool after a refused reload: %v", got)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "source=file") && !strings.Contains(logs.String(), "🔁 Key pool reloaded: 3 keys") {
		t.Errorf("no reload line for the file change:\n%s", logs)
	}
}

// noLeak checks, after every other cleanup of t (the upstream's
// included), that t left no goroutine behind.
func noLeak(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// waitFor polls cond for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
