package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// pathsToken is the client token of the paths tests' gateway.
const pathsToken = "gw-token-paths-0001"

// TestAPIV1IsV1: /api/v1/* (a base URL copied from OpenRouter with only the
// host changed) is served exactly as /v1/*: the same upstream request, auth,
// X-Keygate-Key and metrics.
func TestAPIV1IsV1(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2), "GATEWAY_API_KEYS="+pathsToken)
	for _, tc := range []struct{ method, rest, want string }{
		{"POST", "/chat/completions", "/api/v1/chat/completions"},
		{"GET", "/models?limit=5", "/api/v1/models?limit=5"},
		{"GET", "/models/openai%2Fgpt-4o", "/api/v1/models/openai%2Fgpt-4o"},
		{"DELETE", "/files/f-1", "/api/v1/files/f-1"},
		{"GET", "", "/api/v1"},
		{"GET", "/", "/api/v1/"},
	} {
		t.Run(tc.method+" "+tc.rest, func(t *testing.T) {
			var got [2]ptSeen
			var keyHeader [2]string
			for i, prefix := range []string{"/v1", "/api/v1"} {
				var body []byte
				if tc.method == "POST" {
					body = []byte(`{"model":"a/b"}`)
				}
				before := seen.len()
				req := newRequest(t, tc.method, gw.URL+prefix+tc.rest, body)
				req.Header.Set("Authorization", "Bearer "+pathsToken)
				resp, b := do(t, req)
				if resp.StatusCode != http.StatusOK || string(b) != `{"ok":true}` {
					t.Fatalf("%s %s: %d %s", tc.method, prefix+tc.rest, resp.StatusCode, b)
				}
				all := seen.all()[before:]
				if len(all) != 1 {
					t.Fatalf("%s %s: upstream got %d requests, want 1", tc.method, prefix+tc.rest, len(all))
				}
				got[i], keyHeader[i] = all[0], resp.Header.Get("X-Keygate-Key")
			}
			for i, s := range got {
				if s.Method != tc.method || s.RequestURI != tc.want {
					t.Errorf("prefix %d: upstream got %s %s, want %s %s", i, s.Method, s.RequestURI, tc.method, tc.want)
				}
				if s.Key == "" || s.Key == pathsToken {
					t.Errorf("prefix %d: upstream got key %q, want a pool key", i, s.Key)
				}
				if keyHeader[i] != "1" && keyHeader[i] != "2" {
					t.Errorf("prefix %d: X-Keygate-Key %q, want a key id", i, keyHeader[i])
				}
			}
		})
	}

	t.Run("auth", func(t *testing.T) {
		before := seen.len()
		for _, path := range []string{"/v1/models", "/api/v1/models", "/api/v1"} {
			resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
			ptAPIError(t, resp, body, http.StatusUnauthorized, "invalid_request_error")
			if got := resp.Header.Get("X-Keygate-Key"); got != "none" {
				t.Errorf("%s: X-Keygate-Key %q, want none", path, got)
			}
		}
		if n := seen.len() - before; n != 0 {
			t.Errorf("upstream got %d requests without a token", n)
		}
	})

	t.Run("dot segments", func(t *testing.T) {
		before := seen.len()
		for _, path := range []string{"/api/v1/../../keys", "/api/v1/%2e%2e/admin", "/api/v1/./models"} {
			req := newRequest(t, http.MethodGet, gw.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+pathsToken)
			resp, body := do(t, req)
			ptAPIError(t, resp, body, http.StatusBadRequest, "invalid_request_error")
		}
		if n := seen.len() - before; n != 0 {
			t.Errorf("upstream got %d requests", n)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		// 6 cases × 2 prefixes, 3 refused without a token, 3 dot paths.
		want := map[string]float64{
			`keygate_requests_total{code="200",route="passthrough"}`: 12,
			`keygate_requests_total{code="401",route="passthrough"}`: 3,
			`keygate_requests_total{code="400",route="passthrough"}`: 3,
		}
		_, mfs := mtScrape(t, gw)
		series := mtSeries(t, mfs)
		for name, v := range want {
			if series[name] != v {
				t.Errorf("%s = %v, want %v", name, series[name], v)
			}
		}
	})
}

// TestUnknownPathHint: a path no route serves gets 404 in /v1's JSON error
// shape, with the passthrough path it was probably meant for and the routes
// that exist, and reaches no upstream.
func TestUnknownPathHint(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2))
	routes := []string{"/v1/*", "/api/v1/*", "POST /run", "GET /keys", "GET /healthz", "GET /readyz", "GET /metrics"}
	for _, tc := range []struct{ method, path, guess string }{
		{"POST", "/chat/completions", "/v1/chat/completions"},
		{"GET", "/models", "/v1/models"},
		{"POST", "/api/chat/completions", "/api/v1/chat/completions"},
		{"GET", "/v2/models", ""},
		{"GET", "/v1x", ""},
		{"GET", "/api/v2/models", ""},
		{"GET", "/favicon.ico", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body []byte
			if tc.method == "POST" {
				body = []byte(`{"model":"a/b"}`)
			}
			resp, b := do(t, newRequest(t, tc.method, gw.URL+tc.path, body))
			msg := ptAPIError(t, resp, b, http.StatusNotFound, "invalid_request_error")
			if !strings.Contains(msg, tc.method+" "+tc.path) {
				t.Errorf("message %q does not quote the request", msg)
			}
			if guess := "did you mean " + tc.guess + "?"; tc.guess != "" && !strings.Contains(msg, guess) {
				t.Errorf("message %q lacks %q", msg, guess)
			} else if tc.guess == "" && strings.Contains(msg, "did you mean") {
				t.Errorf("message %q guesses", msg)
			}
			for _, r := range routes {
				if !strings.Contains(msg, r) {
					t.Errorf("message %q does not name %s", msg, r)
				}
			}
		})
	}
	if n := seen.len(); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}

// TestKeyInfoIsNotForwarded: GET /key (and /auth/key) would answer about a
// pool key, naming its account by id: keygate refuses it with a JSON 403,
// on both prefixes, and no upstream sees it.
func TestKeyInfoIsNotForwarded(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2))
	for _, path := range []string{"/v1/key", "/api/v1/key", "/v1/auth/key", "/v1/key/", "/v1/KEY?x=1", "/api/v1/auth/key",
		// As an upstream may clean them: the same paths.
		"/v1//key", "/v1/key//", "/v1/key;x", "/v1/%2Fkey", "/v1/auth//key;a=b"} {
		resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `"error"`) || !strings.Contains(string(b), "GET /keys") ||
			resp.Header.Get("X-Keygate-Key") != "none" {
			t.Errorf("GET %s: %d %s (X-Keygate-Key %q), want a JSON 403 pointing at GET /keys", path, resp.StatusCode, b, resp.Header.Get("X-Keygate-Key"))
		}
	}
	if n := seen.len(); n != 0 {
		t.Fatalf("upstream got %d requests, want none", n)
	}
	// Paths that only start like it go on.
	for _, path := range []string{"/v1/keys", "/v1/keyring"} {
		if resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil)); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s, want it forwarded", path, resp.StatusCode, b)
		}
	}
}
