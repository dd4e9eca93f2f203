package app

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestKeysReadWithTheAdminToken: GET /keys, the pool's state, is read with
// what reads the status page: a client token or ADMIN_TOKEN. The admin
// token opens nothing that spends (/run, /v1).
func TestKeysReadWithTheAdminToken(t *testing.T) {
	u := newUpstream(t)
	a, _ := newLiveApp(t, u.URL, []int{1, 2}, Options{}, "GATEWAY_API_KEYS=client-token-for-tests")
	for _, tc := range []struct {
		method, path, body, token string
		want                      int
	}{
		{http.MethodGet, "/keys", "", "client-token-for-tests", http.StatusOK},
		{http.MethodGet, "/keys", "", "admin-token-for-tests", http.StatusOK},
		{http.MethodGet, "/keys", "", "", http.StatusUnauthorized},
		{http.MethodGet, "/keys", "", "wrong", http.StatusUnauthorized},
		{http.MethodGet, "/status.json", "", "admin-token-for-tests", http.StatusOK},
		{http.MethodPost, "/v1/chat/completions", `{"model":"a/b","messages":[]}`, "admin-token-for-tests", http.StatusUnauthorized},
		{http.MethodPost, "/run", `{"prompt":"hi","models":["a/b"]}`, "admin-token-for-tests", http.StatusUnauthorized},
		{http.MethodPost, "/v1/chat/completions", `{"model":"a/b","messages":[]}`, "client-token-for-tests", http.StatusOK},
	} {
		r := localRequest(tc.method, tc.path, tc.body)
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if tc.body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, r)
		if rec.Code != tc.want {
			t.Errorf("%s %s with %q: %d, want %d: %s", tc.method, tc.path, tc.token, rec.Code, tc.want, rec.Body)
		}
	}
}
