package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestUnknownPageFileHint: a path under /ui/ that is none of the status
// page's files is an unknown path like any other: 404 with the JSON error
// shape of /v1 and the routes that exist, not Go's plain-text "404 page not
// found". The page's own files are still served.
func TestUnknownPageFileHint(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2))
	for _, path := range []string{"/ui/", "/ui/nothing.js", "/ui/static/app.js"} {
		t.Run(path, func(t *testing.T) {
			resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
			msg := ptAPIError(t, resp, b, http.StatusNotFound, "invalid_request_error")
			for _, r := range []string{"GET /", "GET /status.json", "/v1/*"} {
				if !strings.Contains(msg, r) {
					t.Errorf("message %q does not name %s", msg, r)
				}
			}
		})
	}
	for _, path := range []string{"/ui/app.js", "/ui/style.css"} {
		resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
		if resp.StatusCode != http.StatusOK || len(b) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, len(b))
		}
	}
	if n := seen.len(); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
}
