package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestKeyInfoIsNotForwardedLongPath (helper-77): GET /key written with
// many slashes or a long ;parameter, which an upstream that cleans paths
// (nginx's merge_slashes, a servlet container dropping ;params) answers as
// GET /key, is refused like /v1//key: its answer would name the pool key's
// account by its id.
func TestKeyInfoIsNotForwardedLongPath(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2))
	for _, path := range []string{"/v1/" + strings.Repeat("/", 64) + "key", "/v1/key;" + strings.Repeat("x", 64),
		"/v1/auth/" + strings.Repeat("/", 60) + "key"} {
		resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET %.40s…: %d %.100s, want 403", path, resp.StatusCode, b)
		}
	}
	if n := seen.len(); n != 0 {
		t.Fatalf("upstream got %d requests, want none", n)
	}
}
