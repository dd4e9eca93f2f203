package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An upstream that echoes the request's Authorization in a 200 (an
// httpbin-style /anything route behind /v1/*): every pool key must come back
// masked, also a key that a reload added.
func TestReloadedKeyMaskedIn2xxBody(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"headers":{"Authorization":"`+r.Header.Get("Authorization")+`"}}`)
	}))
	t.Cleanup(echo.Close)
	a, _ := newLiveApp(t, echo.URL, []int{1}, Options{})
	get := func() string {
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, localRequest(http.MethodGet, "/v1/anything", ""))
		return rec.Body.String()
	}
	if body := get(); strings.Contains(body, liveKeys[1]) {
		t.Fatalf("start-up key in full: %s", body)
	}
	if res := a.Live.Apply(entries(3), nil, "admin"); res.Refused != "" {
		t.Fatalf("reload refused: %s", res.Refused)
	}
	if body := get(); strings.Contains(body, liveKeys[3]) {
		t.Errorf("key #3, added by a reload, reaches the client in full: %s", body)
	}
}
