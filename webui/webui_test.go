package webui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/secret"
)

func itoa(n int) string { return strconv.Itoa(n) }

const (
	clientTok = "client-token-1"
	adminTok  = "admin-token-1"
)

func get(t *testing.T, h http.Handler, path, auth string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	if auth != "" {
		r.Header.Set("Authorization", "Bearer "+auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Result(), string(b)
}

func noRawKeys(t *testing.T, where, body string) {
	t.Helper()
	for _, raw := range rawKeys {
		if strings.Contains(body, raw[9:len(raw)-4]) {
			t.Fatalf("%s holds key text beyond the mask", where)
		}
	}
}

func TestPageOpen(t *testing.T) {
	h := New(access.New(nil, secret.Key{}), newFakePool(), nil)
	resp, body := get(t, h, "/", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("CSP = %q", resp.Header.Get("Content-Security-Policy"))
	}
	noRawKeys(t, "page", body)
	for _, want := range []string{
		`name="viewport"`, `data-key="1" data-state="active"`, `data-key="4"`, "sk-or-v1-…1111",
		"$4.20 of $5.00", "replica test-1", "Redis up", `data-account="key #4"`, "upstream 3", "700 ms",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("page refers to another site")
	}
}

// TestPageFreeBlocked: the first paint shows a free-model block as the
// polls do.
func TestPageFreeBlocked(t *testing.T) {
	pool := newFakePool()
	pool.set(1, func(k *Key) { k.FreeBlockedLeft = Seconds(58*time.Minute + 10*time.Second) })
	_, body := get(t, New(access.New(nil, secret.Key{}), pool, nil), "/", "")
	for _, want := range []string{
		`<span class="reason free-blocked">free models blocked 58m10s</span>`,
		`<td data-label="free req. left">0</td>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestPageNeedsToken(t *testing.T) {
	h := New(access.New([]secret.Key{secret.New(clientTok)}, secret.New(adminTok)), newFakePool(), nil)
	// Even a request with a valid token gets the shell: the page loads
	// its data with the token from the browser's session.
	for _, auth := range []string{"", "wrong", clientTok} {
		_, body := get(t, h, "/", auth)
		if strings.Contains(body, "data-key=") || strings.Contains(body, "sk-or-v1-") || strings.Contains(body, "test-1") {
			t.Fatalf("page for auth %q renders pool data without a token:\n%s", auth, body)
		}
		if !strings.Contains(body, `data-token-required="true"`) || !strings.Contains(body, `id="token"`) {
			t.Fatal("page does not ask for a token")
		}
	}
}

func TestStatus(t *testing.T) {
	pool := newFakePool()
	tests := []struct {
		name      string
		clients   []secret.Key
		adm       secret.Key
		auth      string
		want      int
		wantAdmin bool
	}{
		{"open", nil, secret.Key{}, "", 200, false},
		{"open, admin token", nil, secret.New(adminTok), adminTok, 200, true},
		{"open, wrong admin token", nil, secret.New(adminTok), "nope", 200, false},
		{"tokens, none", []secret.Key{secret.New(clientTok)}, secret.New(adminTok), "", 401, false},
		{"tokens, wrong", []secret.Key{secret.New(clientTok)}, secret.New(adminTok), "nope", 401, false},
		{"tokens, client", []secret.Key{secret.New(clientTok)}, secret.New(adminTok), clientTok, 200, false},
		{"tokens, admin", []secret.Key{secret.New(clientTok)}, secret.New(adminTok), adminTok, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(access.New(tt.clients, tt.adm), pool, nil)
			resp, body := get(t, h, StatusPath, tt.auth)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
			}
			if tt.want != 200 {
				if strings.Contains(body, "sk-or-") || !strings.Contains(body, `"code":401`) {
					t.Fatalf("401 body: %s", body)
				}
				return
			}
			noRawKeys(t, "status.json", body)
			var v struct {
				Admin bool `json:"admin"`
				Keys  []struct {
					ID     int    `json:"id"`
					Masked string `json:"masked"`
				} `json:"keys"`
				Pool Totals `json:"pool"`
			}
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatal(err)
			}
			if v.Admin != tt.wantAdmin || len(v.Keys) != 4 || v.Keys[0].Masked != "sk-or-v1-…1111" || v.Pool.Calls != 1000 {
				t.Fatalf("status = %+v", v)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	h := New(access.New(nil, secret.Key{}), newFakePool(), nil)
	tests := []struct {
		path string
		want int
		ct   string
	}{
		{"/ui/app.js", 200, "text/javascript"},
		{"/ui/style.css", 200, "text/css"},
		{"/ui/", 404, ""},
		{"/ui/nothing.js", 404, ""},
		{"/index.html", 404, ""},
	}
	for _, tt := range tests {
		resp, _ := get(t, h, tt.path, "")
		if resp.StatusCode != tt.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ct) {
			t.Errorf("GET %s = %d %s, want %d %s", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.want, tt.ct)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", nil))
	if w.Code != 405 {
		t.Errorf("POST / = %d, want 405", w.Code)
	}
}

func TestView(t *testing.T) {
	free := func(n int, at time.Time) *admin.Budget {
		return &admin.Budget{FreeRequestsRemaining: &n, CheckedAt: at}
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	v := newView(Snapshot{Keys: []Key{
		{ID: 3, Account: "bbb", State: StateResting, Calls: 5, Failures: map[string]uint64{"key": 2}},
		{ID: 1, Account: "aaa", State: StateActive, Calls: 10, Failures: map[string]uint64{"key": 0}, InFlight: 2, Budget: free(7, t0)},
		{ID: 2, Account: "aaa", State: StateTrial, Calls: 1, Failures: map[string]uint64{"account": 1, "upstream": 1}, Budget: free(4, t0.Add(time.Minute))},
		{ID: 4, State: StateDisabled, Disabled: true},
		{ID: 5, Account: "ccc", State: StateActive, Budget: free(9, t0), FreeBlockedLeft: Seconds(58 * time.Minute)},
	}})
	if got := [5]int{v.Keys[0].ID, v.Keys[1].ID, v.Keys[2].ID, v.Keys[3].ID, v.Keys[4].ID}; got != [5]int{1, 2, 3, 4, 5} {
		t.Fatalf("keys not ordered by id: %v", got)
	}
	want := Totals{Keys: 5, InRotation: 3, Resting: 1, Disabled: 1, InFlight: 2, Calls: 16, Failures: 4}
	if v.Pool != want {
		t.Fatalf("pool = %+v, want %+v", v.Pool, want)
	}
	if len(v.Accounts) != 4 {
		t.Fatalf("accounts = %+v", v.Accounts)
	}
	a := v.Accounts[0]
	if a.Account != "aaa" || a.Keys != 2 || a.InRotation != 2 || a.Calls != 11 || a.Failures != 2 || a.FreeRequestsRemaining == nil || *a.FreeRequestsRemaining != 4 {
		t.Fatalf("account aaa = %+v (free: the newest poll's 4)", a)
	}
	if c := v.Accounts[2]; c.Account != "ccc" || c.FreeRequestsRemaining == nil || *c.FreeRequestsRemaining != 0 {
		t.Fatalf("account ccc = %+v (free: 0 while blocked, not the poll's 9)", c)
	}
	if v.Accounts[3].Account != "key #4" || v.Accounts[3].InRotation != 0 {
		t.Fatalf("a key of unknown account = %+v", v.Accounts[3])
	}
	if got := v.Keys[1].FailureList(); strings.Join(got, ",") != "account 1,upstream 1" || len(v.Keys[0].FailureList()) != 0 {
		t.Fatalf("FailureList = %v", got)
	}
}

func TestFormats(t *testing.T) {
	x := 4.2
	n := 0
	tests := []struct{ got, want string }{
		{fmtUSD(nil), "∞"}, {fmtUSD(&x), "$4.20"},
		{fmtCount(nil), "—"}, {fmtCount(&n), "0"},
		{fmtSeconds(0), "—"}, {fmtSeconds(Seconds(300 * time.Millisecond)), "1s"}, {fmtSeconds(Seconds(59 * time.Second)), "59s"},
		{fmtSeconds(Seconds(65 * time.Second)), "1m05s"}, {fmtSeconds(Seconds(2*time.Hour + 5*time.Minute)), "2h05m"},
		{fmtLatency(0), "—"}, {fmtLatency(Seconds(420 * time.Millisecond)), "420 ms"}, {fmtLatency(Seconds(3450 * time.Millisecond)), "3.45 s"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	b, _ := json.Marshal(Seconds(1500 * time.Millisecond))
	if string(b) != "1.5" {
		t.Errorf("Seconds JSON = %s", b)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
