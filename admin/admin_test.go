package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/secret"
)

// fakePool records the calls it gets and answers as told.
type fakePool struct {
	mu       sync.Mutex
	calls    []string
	known    map[int]bool
	shared   map[int]bool
	checkErr error
	reload   ReloadResult
	failAll  error
}

func (f *fakePool) note(call string, id int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s %d", call, id))
	if f.failAll != nil {
		return f.failAll
	}
	if !f.known[id] {
		return fmt.Errorf("pool: key %d: %w", id, ErrUnknownKey)
	}
	return nil
}

// Named names key id by its id: its mask ends in it, its fingerprint is it
// in hex; the mask is shared for the ids in shared.
func (f *fakePool) Named(id int) (KeyName, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return KeyName{Masked: fmt.Sprintf("sk-or-v1-…%04d", id), Fingerprint: fmt.Sprintf("fp-%016x", id), MaskShared: f.shared[id]}, f.known[id]
}

func (f *fakePool) Disable(_ context.Context, id int) error { return f.note("disable", id) }
func (f *fakePool) Enable(_ context.Context, id int) error  { return f.note("enable", id) }

func (f *fakePool) Check(_ context.Context, id int) (Budget, error) {
	if err := f.note("check", id); err != nil {
		return Budget{}, err
	}
	if f.checkErr != nil {
		return Budget{}, f.checkErr
	}
	limit, left, free, reset := 5.0, 0.42, 50, "monthly"
	return Budget{Limit: &limit, LimitRemaining: &left, LimitReset: &reset, Usage: 4.58, UsageDaily: 0.1,
		FreeRequestsRemaining: &free, CheckedAt: time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)}, nil
}

func (f *fakePool) Reload(context.Context) (ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "reload")
	return f.reload, f.failAll
}

const adminTok = "admin-secret-token"

func TestHandler(t *testing.T) {
	tests := []struct {
		name    string
		noAdmin bool
		// sharedMask: a reload put key 3 in place of another with its mask.
		sharedMask bool
		method     string
		path       string
		auth       string
		pool       *fakePool
		want       int
		wantType   string
		wantBody   string
		never      string
		calls      []string
	}{
		{name: "admin off", noAdmin: true, path: "/admin/reload", auth: "Bearer " + adminTok, want: 404, wantType: "invalid_request_error"},
		{name: "admin off, key path", noAdmin: true, path: "/admin/keys/1/disable", want: 404},
		{name: "no token", path: "/admin/reload", want: 401, wantType: "invalid_request_error"},
		{name: "client token", path: "/admin/keys/1/disable", auth: "Bearer client-token", want: 401},
		{name: "wrong token", path: "/admin/reload", auth: "Bearer " + adminTok + "x", want: 401},
		{name: "no token, unknown path", path: "/admin/nothing", want: 401},
		{name: "disable", path: "/admin/keys/3/disable", want: 200, wantBody: `{"id":3,"disabled":true}`, calls: []string{"disable 3"}},
		{name: "enable", path: "/admin/keys/3/enable", want: 200, wantBody: `{"id":3,"disabled":false}`, calls: []string{"enable 3"}},
		{name: "disable unknown", path: "/admin/keys/9/disable", want: 404, wantBody: "no key #9", calls: []string{"disable 9"}},
		// ?key= names the key the caller means: a reload may have put
		// another under the id since the caller looked.
		{name: "disable, the key named", path: "/admin/keys/3/disable?key=sk-or-v1-%E2%80%A60003", want: 200, wantBody: `{"id":3,"disabled":true}`, calls: []string{"disable 3"}},
		{name: "disable, another key under the id", path: "/admin/keys/3/disable?key=sk-or-v1-%E2%80%A60007", want: 409, wantType: "key_changed",
			wantBody: "key #3 is now sk-or-v1-…0003, not sk-or-v1-…0007"},
		{name: "enable, an empty key named", path: "/admin/keys/3/enable?key=", want: 400, wantType: "invalid_request_error"},
		// A raw key pasted in is no mask: a 400 that quotes none of it,
		// not a 409 saying the pool was reloaded.
		{name: "disable, a raw key named", path: "/admin/keys/3/disable?key=sk-or-v1-7c1e94b2d05fa8e3916c4b7d2a08f5e1c3b96a74d82e0f15aa", want: 400, wantType: "invalid_request_error",
			wantBody: "mask or fingerprint as /keys shows it", never: "7c1e94b2"},
		// The fingerprint tells apart keys that share a mask: a short
		// key's (its prefix alone), or two with the same last four.
		{name: "disable, the fingerprint named", path: "/admin/keys/3/disable?key=fp-0000000000000003", want: 200, calls: []string{"disable 3"}},
		{name: "check, another fingerprint", path: "/admin/keys/3/check?key=fp-0000000000000007", want: 409, wantType: "key_changed",
			wantBody: "key #3 is now sk-or-v1-…0003, not the key with fingerprint fp-0000000000000007", never: "fp-0000000000000003"},
		{name: "disable, a fingerprint in capitals", path: "/admin/keys/3/disable?key=fp-000000000000000A", want: 400},
		{name: "disable, a short fingerprint", path: "/admin/keys/3/disable?key=fp-0003", want: 400},
		{name: "disable, a mask another key shared", sharedMask: true, path: "/admin/keys/3/disable?key=sk-or-v1-%E2%80%A60003", want: 409, wantType: "key_changed",
			wantBody: "name it by its fingerprint", never: "fp-0000000000000003"},
		{name: "enable, the fingerprint of a key whose mask was shared", sharedMask: true, path: "/admin/keys/3/enable?key=fp-0000000000000003", want: 200, calls: []string{"enable 3"}},
		{name: "enable, no key named, its mask shared", sharedMask: true, path: "/admin/keys/3/enable", want: 200, calls: []string{"enable 3"}},
		{name: "disable, two ellipses", path: "/admin/keys/3/disable?key=sk-or-v1-%E2%80%A6%E2%80%A6", want: 400},
		{name: "disable, a long tail", path: "/admin/keys/3/disable?key=sk-or-v1-%E2%80%A6000300", want: 400},
		{name: "disable, an unknown prefix", path: "/admin/keys/3/disable?key=gsk_%E2%80%A60003", want: 400},
		{name: "disable, no prefix", path: "/admin/keys/3/disable?key=%E2%80%A60003", want: 409, wantType: "key_changed"},
		{name: "check, another key under the id", path: "/admin/keys/3/check?key=sk-or-v1-%E2%80%A60007", want: 409, wantType: "key_changed"},
		{name: "disable unknown, a key named", path: "/admin/keys/9/disable?key=sk-or-v1-%E2%80%A60009", want: 404, wantBody: "no key #9"},
		{name: "bad id", path: "/admin/keys/x1/disable", want: 400, wantType: "invalid_request_error"},
		{name: "leading zero id", path: "/admin/keys/03/disable", want: 400},
		{name: "zero id", path: "/admin/keys/0/enable", want: 400},
		{name: "unknown action", path: "/admin/keys/3/delete", want: 404, wantBody: "POST /admin/reload"},
		{name: "too deep", path: "/admin/keys/3/disable/now", want: 404},
		{name: "GET disable", method: "GET", path: "/admin/keys/3/disable", want: 405},
		{name: "GET reload", method: "GET", path: "/admin/reload", want: 405},
		{name: "check", path: "/admin/keys/3/check", want: 200,
			wantBody: `{"id":3,"budget":{"limit":5,"limit_remaining":0.42,"limit_reset":"monthly","usage":4.58,"usage_daily":0.1,"free_requests_remaining":50,"checked_at":"2026-12-01T19:00:00Z"}}`,
			calls:    []string{"check 3"}},
		{name: "check fails upstream", path: "/admin/keys/3/check", pool: &fakePool{checkErr: errors.New("upstream 500")}, want: 502, wantType: "upstream_error", wantBody: "upstream 500", calls: []string{"check 3"}},
		{name: "check times out", path: "/admin/keys/3/check", pool: &fakePool{checkErr: fmt.Errorf("poll: %w", context.DeadlineExceeded)}, want: 504, wantType: "upstream_timeout", calls: []string{"check 3"}},
		{name: "reload", path: "/admin/reload", pool: &fakePool{reload: ReloadResult{Keys: 3, Added: []int{4}, Removed: []int{1}, Kept: []int{2, 3}}}, want: 200,
			wantBody: `{"keys":3,"added":[4],"removed":[1],"kept":[2,3]}`, calls: []string{"reload"}},
		{name: "reload, nothing changed", path: "/admin/reload", pool: &fakePool{reload: ReloadResult{Keys: 1, Kept: []int{1}}}, want: 200,
			wantBody: `{"keys":1,"added":[],"removed":[],"kept":[1]}`, calls: []string{"reload"}},
		{name: "reload refused", path: "/admin/reload", pool: &fakePool{reload: ReloadResult{Refused: "keys file k.env refused: no key in it"}}, want: 422, wantType: "reload_refused", wantBody: "no key in it", calls: []string{"reload"}},
		{name: "reload fails", path: "/admin/reload", pool: &fakePool{failAll: errors.New("redis down")}, want: 500, wantType: "internal_error", calls: []string{"reload"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adm := secret.New(adminTok)
			if tt.noAdmin {
				adm = secret.Key{}
			}
			pool := tt.pool
			if pool == nil {
				pool = &fakePool{}
			}
			pool.known = map[int]bool{3: true}
			if tt.sharedMask {
				pool.shared = map[int]bool{3: true}
			}
			h := New(access.New([]secret.Key{secret.New("client-token")}, adm), pool, nil)
			method := tt.method
			if method == "" {
				method = "POST"
			}
			r := httptest.NewRequest(method, tt.path, nil)
			auth := tt.auth
			if auth == "" && tt.want != 401 && !tt.noAdmin {
				auth = "Bearer " + adminTok
			}
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			body := strings.TrimSpace(w.Body.String())
			if w.Code != tt.want {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.want, body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
			if tt.want >= 400 {
				var e apiError
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != tt.want || e.Error.Message == "" {
					t.Fatalf("error body %s: %v", body, err)
				}
				if tt.wantType != "" && e.Error.Type != tt.wantType {
					t.Fatalf("type = %q, want %q", e.Error.Type, tt.wantType)
				}
			}
			if tt.want == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			if tt.want == 405 && w.Header().Get("Allow") != "POST" {
				t.Fatalf("Allow = %q", w.Header().Get("Allow"))
			}
			if tt.wantBody != "" && !strings.Contains(body, tt.wantBody) {
				t.Fatalf("body = %s, want it to hold %s", body, tt.wantBody)
			}
			if tt.never != "" && strings.Contains(body, tt.never) {
				t.Fatalf("body = %s quotes %s", body, tt.never)
			}
			if !slices.Equal(pool.calls, tt.calls) {
				t.Fatalf("pool calls = %v, want %v", pool.calls, tt.calls)
			}
		})
	}
}

func TestHandlerLogs(t *testing.T) {
	var buf bytes.Buffer
	log := console.New(&buf, "text", nil)
	h := New(access.New(nil, secret.New(adminTok)), &fakePool{known: map[int]bool{3: true}}, log)
	for _, path := range []string{"/admin/keys/3/disable", "/admin/keys/3/enable", "/admin/keys/4/disable"} {
		r := httptest.NewRequest("POST", path, nil)
		r.Header.Set("Authorization", "Bearer "+adminTok)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	want := "🚫 API Key #3 disabled by admin\n✅ API Key #3 enabled by admin\n"
	if buf.String() != want {
		t.Fatalf("console:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestConsoleLines(t *testing.T) {
	var buf bytes.Buffer
	log := console.New(&buf, "text", nil)
	LogReloaded(log, ReloadResult{Keys: 5, Added: []int{6}, Removed: []int{1}, Kept: []int{2, 3, 4, 5}}, "file")
	LogReloadRefused(log, "keys file /k refused: no key in it", 5, "sighup")
	LogDisabled(log, 3)
	want := "🔁 Key pool reloaded: 5 keys (+1 added, −1 removed, 4 kept)\n" +
		"WARN ⚠️ Key pool reload refused, keeping 5 keys: keys file /k refused: no key in it\n" +
		"🚫 API Key #3 disabled by admin\n"
	if buf.String() != want {
		t.Fatalf("console:\n%s\nwant:\n%s", buf.String(), want)
	}
	// One key is "1 key", not "1 keys".
	buf.Reset()
	LogReloaded(log, ReloadResult{Keys: 1, Kept: []int{1}}, "file")
	LogReloadRefused(log, "no key in it", 1, "file")
	want = "🔁 Key pool reloaded: 1 key (+0 added, −0 removed, 1 kept)\n" +
		"WARN ⚠️ Key pool reload refused, keeping 1 key: no key in it\n"
	if buf.String() != want {
		t.Fatalf("console:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	LogReloaded(slog.New(slog.NewJSONHandler(&buf, nil)), ReloadResult{Keys: 1, Kept: []int{1}}, "admin")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["event"] != "pool_reloaded" || rec["source"] != "admin" {
		t.Fatalf("json record %s: %v", buf.String(), err)
	}
	// As POST /admin/reload answers: no key added is [], not null.
	if !strings.Contains(buf.String(), `"added":[],"removed":[],"kept":[1]`) {
		t.Fatalf("json record %s: want empty lists as []", buf.String())
	}
}

func TestReloadCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := NewReloadCounter(reg)
	if err != nil {
		t.Fatal(err)
	}
	c.Count(ReloadResult{Keys: 1})
	c.Count(ReloadResult{Refused: "no key"})
	c.Count(ReloadResult{Refused: "no key"})
	want := `
# HELP keygate_pool_reloads_total Key pool reloads (KEYS_FILE change, SIGHUP, POST /admin/reload), by result: ok, or refused (the file did not parse or held no key; the last good pool stayed).
# TYPE keygate_pool_reloads_total counter
keygate_pool_reloads_total{result="ok"} 1
keygate_pool_reloads_total{result="refused"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewReloadCounter(reg); err == nil {
		t.Fatal("registered twice without an error")
	}
}

// TestOverLoopback mounts the handler in a real server, as the gateway will.
func TestOverLoopback(t *testing.T) {
	pool := &fakePool{known: map[int]bool{2: true}}
	mux := http.NewServeMux()
	mux.Handle("/admin/", New(access.New(nil, secret.New(adminTok)), pool, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/admin/keys/2/disable", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"id":2,"disabled":true}` {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}
