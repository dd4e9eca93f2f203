package app

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// Raw keys of the tests, by id.
var liveKeys = map[int]string{
	1: "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",
	2: "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",
	3: "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",
	4: "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",
	5: "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",
}

func entries(ids ...int) []keyring.Entry {
	out := make([]keyring.Entry, 0, len(ids))
	for _, id := range ids {
		out = append(out, keyring.Entry{ID: id, Secret: secret.New(liveKeys[id])})
	}
	return out
}

// upstream answers chat calls 200 (or hold, until released, for a key in
// hold), and GET /key with a budget; a key in revoked gets 401.
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	hold    map[string]chan struct{}
	revoked map[string]bool
	started chan string
}

func newUpstream(t *testing.T) *upstream {
	u := unstartedUpstream()
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// unstartedUpstream is an upstream without its server yet, for a test that
// sets the server up itself.
func unstartedUpstream() *upstream {
	return &upstream{hold: map[string]chan struct{}{}, revoked: map[string]bool{}, started: make(chan string, 16)}
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	u.mu.Lock()
	hold, revoked := u.hold[key], u.revoked[key]
	u.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if hold != nil {
		u.started <- key
		<-hold
	}
	if revoked {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"message":"User not found.","code":401}}`)
		return
	}
	if r.URL.Path == "/key" {
		_, _ = io.WriteString(w, `{"data":{"limit":5,"limit_remaining":4.5,"usage":0.5,"usage_daily":0.1,"creator_user_id":"user_a"}}`)
		return
	}
	_, _ = io.WriteString(w, `{"id":"x","choices":[{"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
}

func (u *upstream) holdKey(id int) chan struct{} {
	ch := make(chan struct{})
	u.mu.Lock()
	u.hold[liveKeys[id]] = ch
	u.mu.Unlock()
	return ch
}

func (u *upstream) revoke(id int) {
	u.mu.Lock()
	u.revoked[liveKeys[id]] = true
	u.mu.Unlock()
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// newLiveApp wires an app over base with the keys ids and extra settings.
func newLiveApp(t *testing.T, base string, ids []int, o Options, env ...string) (*App, *strings.Builder) {
	t.Helper()
	environ := append([]string{"OPENROUTER_BASE_URL=" + base, "BUDGET_POLL_INTERVAL=0", "CLIENT_REST_SHARE=1",
		"ADMIN_TOKEN=admin-token-for-tests"}, env...)
	cfg, err := config.Load(environ, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Keys = entries(ids...)
	logs := &strings.Builder{}
	var mu sync.Mutex
	a, err := New(cfg, console.New(lockedWriter{&mu, logs}, "text", cfg.LogLevelValue()), o)
	if err != nil {
		t.Fatal(err)
	}
	return a, logs
}

// serveLoopback serves a on a free loopback port until t's cleanup, and
// returns its address.
func serveLoopback(t *testing.T, a *App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type keysAnswer struct {
	Keys []struct {
		ID         int     `json:"id"`
		State      string  `json:"state"`
		Disabled   bool    `json:"disabled"`
		Requests   uint64  `json:"requests"`
		RestReason *string `json:"rest_reason"`
		Budget     *struct {
			LimitRemaining *float64 `json:"limit_remaining"`
		} `json:"budget"`
	} `json:"keys"`
}

func getKeys(t *testing.T, h http.Handler) keysAnswer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, localRequest(http.MethodGet, "/keys", ""))
	var k keysAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &k); err != nil {
		t.Fatalf("/keys: %v: %s", err, rec.Body)
	}
	return k
}

// localRequest is a request to an open gateway, which answers localhost
// only (against DNS rebinding).
func localRequest(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = "localhost"
	return r
}

func chat(t *testing.T, h http.Handler) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, localRequest(http.MethodPost, "/v1/chat/completions", `{"model":"a/b","messages":[]}`))
	return rec.Code
}

// TestReloadCarriesState: a kept key keeps its rest, breaker, budget,
// calls and disable; a new key starts closed; a removed key goes.
func TestReloadCarriesState(t *testing.T) {
	up := newUpstream(t)
	clk := &testClock{t: time.Unix(1_800_000_000, 0)}
	a, logs := newLiveApp(t, up.URL, []int{1, 2, 3}, Options{Now: clk.Now})
	for range 6 {
		if code := chat(t, a.Handler); code != http.StatusOK {
			t.Fatalf("chat: %d", code)
		}
	}
	if _, err := a.Live.Check(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	set, pool := a.Relay.Breakers(), a.Relay.Pool()
	set.Confirmed(pool.ByID(2), fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth})
	if err := a.Live.Disable(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	before := getKeys(t, a.Handler)

	res := a.Live.Apply(entries(1, 2, 3, 4), nil, "admin")
	if res.Refused != "" || !slices.Equal(res.Added, []int{4}) || len(res.Removed) != 0 || !slices.Equal(res.Kept, []int{1, 2, 3}) {
		t.Fatalf("reload = %+v", res)
	}
	if got := a.Live.redactor.Redact("x " + liveKeys[4]); strings.Contains(got, liveKeys[4]) {
		t.Errorf("a key the reload added is not masked: %q", got)
	}
	after := getKeys(t, a.Handler)
	if len(after.Keys) != 4 {
		t.Fatalf("after reload %d keys", len(after.Keys))
	}
	for i, k := range before.Keys {
		n := after.Keys[i]
		if n.ID != k.ID || n.State != k.State || n.Disabled != k.Disabled || n.Requests != k.Requests {
			t.Errorf("key %d: before %+v, after %+v", k.ID, k, n)
		}
	}
	if after.Keys[1].State != "open" || after.Keys[1].RestReason == nil || *after.Keys[1].RestReason != "auth" {
		t.Errorf("key 2 after reload: %+v, want resting for auth", after.Keys[1])
	}
	if b := after.Keys[0].Budget; b == nil || b.LimitRemaining == nil || *b.LimitRemaining != 4.5 {
		t.Errorf("key 1's budget not carried: %+v", after.Keys[0].Budget)
	}
	if !after.Keys[2].Disabled {
		t.Error("key 3's disable did not survive the reload")
	}
	if k := after.Keys[3]; k.ID != 4 || k.State != "closed" || k.Requests != 0 || k.Budget != nil {
		t.Errorf("new key 4: %+v, want closed and fresh", k)
	}
	// Key 2 comes back through one trial once its rest ends.
	clk.mu.Lock()
	clk.t = clk.t.Add(time.Hour)
	clk.mu.Unlock()
	if s := a.Relay.Breakers().For(a.Relay.Pool().ByID(2)).State(); s != breaker.HalfOpen {
		t.Errorf("key 2 after its rest: %v, want half-open", s)
	}
	if err := a.Live.Enable(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if k := getKeys(t, a.Handler).Keys[2]; k.Disabled || k.State != "closed" {
		t.Errorf("key 3 enabled: %+v", k)
	}
	if !strings.Contains(logs.String(), "🔁 Key pool reloaded: 4 keys (+1 added, −0 removed, 3 kept)") {
		t.Errorf("no reload line in:\n%s", logs)
	}
}

// TestReloadRemovedKeyInFlight: a call in flight on a key a reload removes
// finishes, and its result (a 401) rests nothing in the new pool, nor
// brings the key's metric series back.
func TestReloadRemovedKeyInFlight(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{})
	release := up.holdKey(2)
	up.revoke(2)
	old := a.Relay.Snapshot()
	var ex keyring.Exclude
	ex.Add(old.Pool().ByID(1).Slot())
	lease, err := old.Acquire(keyring.RoundRobin{}, &ex)
	if err != nil || lease.Key.ID != 2 {
		t.Fatalf("lease %v, %v", lease.Key, err)
	}
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, up.URL+"/chat/completions", strings.NewReader(`{}`))
		c := relay.Call{Strategy: keyring.RoundRobin{}, First: lease}
		resp, err := a.Relay.Do(req, []byte(`{}`), &c)
		if err != nil {
			done <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-up.started
	res := a.Live.Apply(entries(1, 3), nil, "file")
	if !slices.Equal(res.Removed, []int{2}) || !slices.Equal(res.Added, []int{3}) {
		t.Fatalf("reload = %+v", res)
	}
	close(release)
	// Key 2's 401 goes on to key 1 of the old snapshot, which answers.
	if code := <-done; code != http.StatusOK {
		t.Fatalf("call in flight on the removed key: %d", code)
	}
	if n := old.Pool().Ledger().InFlight(old.Pool().ByID(2).Slot()); n != 0 {
		t.Errorf("old pool: %d in flight on key 2", n)
	}
	now := a.Relay.Breakers().Now().UnixNano()
	if n := a.Relay.Pool().CountAvailable(now); n != 2 {
		t.Errorf("new pool: %d keys available, want 2", n)
	}
	mfs, err := a.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "key" && l.GetValue() == "2" {
					t.Errorf("%s still has a series for removed key 2", mf.GetName())
				}
			}
		}
	}
}

// TestReloadRefused: a file that does not parse, or holds no key, keeps
// the last good pool, and the answer, the log and the counter say why.
func TestReloadRefused(t *testing.T) {
	up := newUpstream(t)
	path := filepath.Join(t.TempDir(), "keys.env")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("OPENROUTER_API_KEY_1=" + liveKeys[1] + "\nOPENROUTER_API_KEY_2=" + liveKeys[2] + "\n")
	a, logs := newLiveApp(t, up.URL, nil, Options{}, "KEYS_FILE="+path, "OPENROUTER_API_KEY_9="+liveKeys[5])
	if n := a.Relay.Pool().Len(); n != 2 || a.Relay.Pool().ByID(9) != nil {
		t.Fatalf("pool from KEYS_FILE: %d keys", n)
	}
	for i, body := range []string{"this is not a .env line\n", "# no keys\nPORT=1\n"} {
		write(body)
		res, err := a.Live.Reload(context.Background())
		if err != nil || res.Refused == "" || res.Keys != 2 {
			t.Fatalf("reload of %q = %+v, %v; want refused", body, res, err)
		}
		if strings.Contains(res.Refused, "not a .env line") {
			t.Errorf("refusal quotes the file: %s", res.Refused)
		}
		if got := reloads(t, a, "refused"); got != float64(i+1) {
			t.Errorf("refused count %v, want %d", got, i+1)
		}
	}
	if n := a.Relay.Pool().Len(); n != 2 {
		t.Fatalf("refused file changed the pool: %d keys", n)
	}
	if !strings.Contains(logs.String(), "Key pool reload refused, keeping 2 keys") {
		t.Errorf("no refusal line in:\n%s", logs)
	}
	write("OPENROUTER_API_KEY_2=" + liveKeys[2] + "\n")
	if res := a.Live.ReloadFrom("sighup"); res.Refused != "" || !slices.Equal(res.Removed, []int{1}) {
		t.Fatalf("good reload = %+v", res)
	}
	if got := reloads(t, a, "ok"); got != 1 {
		t.Errorf("ok count %v, want 1", got)
	}
}

// reloads is keygate_pool_reloads_total{result}.
func reloads(t *testing.T, a *App, result string) float64 {
	t.Helper()
	mfs, err := a.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "keygate_pool_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no keygate_pool_reloads_total{result=%q}", result)
	return 0
}

// TestDisableEvents: a disable from elsewhere (SetDisabled, as a replica's
// event brings it) applies to the key if it is in the pool, or when a
// reload brings it; one asked here is handed to the OnToggle hook; a new
// secret under a disabled key's id is another key, not disabled.
func TestDisableEvents(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{})
	var got []string
	a.Live.OnToggle(func(ref KeyRef, on bool, _ time.Time) {
		got = append(got, strings.SplitN(string(ref), ":", 2)[0]+"="+strconv.FormatBool(on))
	})
	five := entries(5)[0]
	a.Live.SetDisabled(cluster.RefOf(5, five.Secret), true)
	a.Live.Apply(entries(1, 2, 5), nil, "file")
	if k := getKeys(t, a.Handler).Keys[2]; k.ID != 5 || !k.Disabled {
		t.Errorf("key 5 brought by a reload: %+v, want disabled", k)
	}
	if err := a.Live.Disable(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Live.Enable(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Live.Disable(context.Background(), 9); err == nil {
		t.Error("disabling an unknown key: no error")
	}
	if !slices.Equal(got, []string{"2=true", "2=false"}) {
		t.Errorf("hook got %v", got)
	}
	// Key 1 disabled, then its secret changes: the new key is not.
	if err := a.Live.Disable(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	a.Live.Apply([]keyring.Entry{{ID: 1, Secret: secret.New(liveKeys[4])}, entries(2)[0]}, nil, "file")
	if k := getKeys(t, a.Handler).Keys[0]; k.ID != 1 || k.Disabled {
		t.Errorf("key 1 with a new secret: %+v, want not disabled", k)
	}
}

// TestRemovedKeyStaysMasked: a key a reload removed stays masked across
// later reloads (a stream on it may outlive several), even one that
// changes nothing.
func TestRemovedKeyStaysMasked(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{})
	for _, ids := range [][]int{{2}, {2}, {2, 3}} {
		if res := a.Live.Apply(entries(ids...), nil, "admin"); res.Refused != "" {
			t.Fatalf("reload to %v refused: %s", ids, res.Refused)
		}
		if got := a.Live.redactor.Redact("x " + liveKeys[1]); strings.Contains(got, liveKeys[1]) {
			t.Fatalf("after the reload to %v key 1, removed, is not masked: %q", ids, got)
		}
	}
	// Back in the pool and out again: still masked, and once only.
	a.Live.Apply(entries(1, 2), nil, "admin")
	a.Live.Apply(entries(2), nil, "admin")
	if got := a.Live.redactor.Redact("x " + liveKeys[1]); strings.Contains(got, liveKeys[1]) {
		t.Fatalf("key 1, removed again, is not masked: %q", got)
	}
}
