package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/simulator"
)

// authRoute is a guarded route and the upstream calls it makes when let in.
type authRoute struct {
	name, method, path, body string
	upstream                 int64
	want                     int // status when let in
}

var authRoutes = []authRoute{
	{"run", http.MethodPost, "/run", `{"prompt":"p","models":["a/b","c/d"]}`, 2, http.StatusOK},
	{"chat", http.MethodPost, "/v1/chat/completions", hdChat("a/b", false), 1, http.StatusOK},
	{"stream", http.MethodPost, "/v1/chat/completions", hdChat("a/b", true), 1, http.StatusOK},
	{"models", http.MethodGet, "/v1/models", "", 1, http.StatusOK},
	{"echo", http.MethodPut, "/v1/echo/x?y=1", `{"a":1}`, 1, http.StatusOK},
	{"v1 root", http.MethodGet, "/v1", "", 1, http.StatusNotFound},
	{"keys", http.MethodGet, "/keys", "", 0, http.StatusOK},
}

const (
	authTokenA = "gw-token-Alpha-0001"
	authTokenB = "gw-token-Beta-0002"
)

// authCases are ways of presenting a token; ok when the gateway must let
// the request in. The scheme is case-insensitive and may be followed by
// several spaces (RFC 7235, RFC 6750); the token itself must match exactly.
var authCases = []struct {
	name string
	hdr  []string
	ok   bool
}{
	{"no token", nil, false},
	{"empty bearer", []string{"Authorization", "Bearer "}, false},
	{"wrong token", []string{"Authorization", "Bearer nope"}, false},
	{"token cut short", []string{"Authorization", "Bearer " + authTokenA[:len(authTokenA)-1]}, false},
	{"token with more", []string{"Authorization", "Bearer " + authTokenA + "x"}, false},
	{"token in other case", []string{"Authorization", "Bearer " + strings.ToUpper(authTokenA)}, false},
	{"two tokens glued", []string{"Authorization", "Bearer " + authTokenA + "," + authTokenB}, false},
	{"no scheme", []string{"Authorization", authTokenA}, false},
	{"no space", []string{"Authorization", "Bearer" + authTokenA}, false},
	{"basic scheme", []string{"Authorization", "Basic " + authTokenA}, false},
	{"in X-Api-Key", []string{"X-Api-Key", authTokenA}, false},
	{"first token", []string{"Authorization", "Bearer " + authTokenA}, true},
	{"second token", []string{"Authorization", "Bearer " + authTokenB}, true},
	{"scheme in lower case", []string{"Authorization", "bearer " + authTokenA}, true},
	{"scheme in upper case", []string{"Authorization", "BEARER " + authTokenB}, true},
	{"extra spaces", []string{"Authorization", "Bearer    " + authTokenA + "   "}, true},
}

// TestAuthEveryRoute: with GATEWAY_API_KEYS set, every guarded route lets
// in exactly the requests bearing a token, and the others get 401 without
// reaching upstream.
func TestAuthEveryRoute(t *testing.T) {
	clk := newClock()
	keys := hdKeys(2)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}, keys[1]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk, "GATEWAY_API_KEYS= "+authTokenA+" ,"+authTokenB+" ,")
	g.App.Warnings()
	if strings.Contains(g.Logs.String(), "GATEWAY_API_KEYS") {
		t.Errorf("warned about GATEWAY_API_KEYS while it is set:\n%s", g.Logs.String())
	}
	for _, rt := range authRoutes {
		for _, ac := range append(authCases, struct {
			name string
			hdr  []string
			ok   bool
		}{"pool key as token", []string{"Authorization", "Bearer " + keys[0]}, false}) {
			t.Run(rt.name+"/"+ac.name, func(t *testing.T) {
				before := sim.Stats().Total
				r := hdDo(g.Client, hdRequest(t, rt.method, g.URL+rt.path, rt.body, ac.hdr...))
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				calls := sim.Stats().Total - before
				if ac.ok {
					if r.Status != rt.want || calls != rt.upstream {
						t.Fatalf("let in: status %d, %d upstream calls; want %d, %d: %s", r.Status, calls, rt.want, rt.upstream, r.Body)
					}
					if strings.Contains(string(r.Body), authTokenA) || strings.Contains(string(r.Body), authTokenB) {
						t.Fatalf("the client's token went upstream: %s", r.Body)
					}
					return
				}
				if calls != 0 {
					t.Fatalf("a rejected request made %d upstream calls", calls)
				}
				authWant401(t, r, ac.hdr)
			})
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+path, "")); r.Status != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200", path, r.Status)
		}
	}
}

// authWant401 checks an OpenAI-style 401 that does not echo what was sent.
func authWant401(t *testing.T, r hdResult, sent []string) {
	t.Helper()
	ptAPIError(t, &http.Response{StatusCode: r.Status, Header: r.Header}, r.Body, http.StatusUnauthorized, "invalid_request_error")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	for i := 1; i < len(sent); i += 2 {
		if tok := strings.TrimSpace(strings.TrimPrefix(sent[i], "Bearer")); len(tok) > 4 && strings.Contains(string(r.Body), tok) {
			t.Errorf("401 echoes what the client sent: %s", r.Body)
		}
	}
}

// TestAuthUnset: without GATEWAY_API_KEYS every route is open, and start-up
// warns that anyone who reaches the port spends the keys.
func TestAuthUnset(t *testing.T) {
	clk := newClock()
	keys := hdKeys(1)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk)
	g.App.Warnings()
	if logs := g.Logs.String(); !strings.Contains(logs, "GATEWAY_API_KEYS is not set") || !strings.Contains(logs, "anyone who reaches this port spends") {
		t.Errorf("no warning about the open gateway:\n%s", logs)
	}
	for _, rt := range authRoutes {
		before := sim.Stats().Total
		r := hdDo(g.Client, hdRequest(t, rt.method, g.URL+rt.path, rt.body))
		if calls := sim.Stats().Total - before; r.Err != nil || r.Status != rt.want || calls != rt.upstream {
			t.Errorf("%s without a token: %d %v, %d upstream calls; want %d, %d", rt.name, r.Status, r.Err, calls, rt.want, rt.upstream)
		}
	}
}
