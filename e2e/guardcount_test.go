package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestBrowserRefusalCounted: a /v1 or /run request the browser checks turn
// away (an origin CORS_ORIGINS does not allow) is counted in
// keygate_requests_total and, on /v1, gets its access line, as the 401 of
// a missing token and the 503 past MAX_IN_FLIGHT do: an operator whose
// browser app gets 403s sees them on the dashboard and the console.
func TestBrowserRefusalCounted(t *testing.T) {
	up, _ := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL, testKeys(1))
	for _, path := range []string{"/v1/chat/completions", "/run"} {
		req := newRequest(t, http.MethodPost, gw.URL+path, []byte(`{"model":"m","messages":[]}`))
		req.Header.Set("Origin", "https://evil.example")
		if resp, body := do(t, req); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: %d %s, want 403", path, resp.StatusCode, body)
		}
	}
	_, mfs := mtScrape(t, gw)
	s := mtSeries(t, mfs)
	for _, route := range []string{"passthrough", "run"} {
		if n := s[`keygate_requests_total{code="403",route="`+route+`"}`]; n != 1 {
			t.Errorf("keygate_requests_total 403 %s = %v, want 1", route, n)
		}
	}
	if !strings.Contains(gw.Logs.String(), "↪️ POST /v1/chat/completions → 403") {
		t.Errorf("no access line for the refused /v1 request:\n%s", gw.Logs.String())
	}
}
