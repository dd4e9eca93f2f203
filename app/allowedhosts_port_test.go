package app

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAllowedHostsWithPort: ALLOWED_HOSTS holds Host values as a client
// sends them, port included when it is not the default one (and as the 403
// quotes them: `Host "keygate.internal:4000" is not this machine`), or with
// a DNS root dot or an IPv6 literal's brackets. Each lets the Host in; the
// listed value used to be compared whole with the request's Host stripped
// of its port, so it never matched and every request stayed 403.
func TestAllowedHostsWithPort(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1}, Options{}, "ALLOWED_HOSTS=keygate.internal:4000,gw.example.com.,[fd00::4b]:4000")
	for _, host := range []string{"keygate.internal:4000", "keygate.internal", "gw.example.com", "[fd00::4b]:4000"} {
		r := httptest.NewRequest(http.MethodGet, "/keys", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Errorf("Host %s, listed in ALLOWED_HOSTS: %d %s", host, rec.Code, rec.Body)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/keys", nil)
	r.Host = "evil.example:4000"
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden {
		t.Errorf("Host evil.example:4000, not listed: %d", rec.Code)
	}
}
