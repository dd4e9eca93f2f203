package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAllKeysDisabled: with every key disabled by hand, the 503 says so
// and sends no Retry-After, for none comes back by itself; it used to say
// the keys were cooling down and to retry after 1 s, for ever. One key
// resting among the disabled ones is still a wait with a Retry-After.
func TestAllKeysDisabled(t *testing.T) {
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{})
	post := func(path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		a.Handler.ServeHTTP(rec, localRequest(http.MethodPost, path, body))
		return rec
	}
	for _, id := range []int{1, 2} {
		if err := a.Live.Disable(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	rec := post("/v1/chat/completions", `{"model":"a/b","messages":[]}`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "" ||
		!strings.Contains(rec.Body.String(), "disabled by an admin") || !strings.Contains(rec.Body.String(), `"keys_unavailable"`) {
		t.Errorf("every key disabled: %d, Retry-After %q, %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	rec = post("/run", `{"prompt":"hi","models":["a/b"]}`)
	var run struct {
		Responses []struct{ Status, Error string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &run); err != nil || len(run.Responses) != 1 || !strings.Contains(run.Responses[0].Error, "disabled by an admin") {
		t.Errorf("/run with every key disabled: %v %s", err, rec.Body)
	}
	// Key 2 back, then revoked: it rests, so there is a time to wait for.
	if err := a.Live.Enable(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	up.revoke(2)
	if code := chat(t, a.Handler); code != http.StatusUnauthorized {
		t.Fatalf("revoked key 2: %d", code)
	}
	rec = post("/v1/chat/completions", `{"model":"a/b","messages":[]}`)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || strings.Contains(rec.Body.String(), "disabled") {
		t.Errorf("one key resting, one disabled: %d, Retry-After %q, %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}
