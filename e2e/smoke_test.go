package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSmokePassthroughRetries401(t *testing.T) {
	keys := testKeys(3)
	seen := map[string]int{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		seen[auth]++
		if auth == "Bearer "+keys[0] {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":{"message":"bad key","code":401}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true,"path":"` + r.URL.Path + `"}`))
	}))
	defer up.Close()
	gw := startGateway(t, up.URL+"/api/v1", keys, "KEY_ROTATION=round-robin")
	for i := 0; i < 6; i++ {
		resp, body := do(t, newRequest(t, "POST", gw.URL+"/v1/chat/completions", []byte(`{"model":"a/b"}`)))
		if resp.StatusCode != 200 || !strings.Contains(string(body), "/api/v1/chat/completions") {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
		if resp.Header.Get("X-Keygate-Key") == "1" {
			t.Fatalf("key 1 answered")
		}
	}
	if seen["Bearer "+keys[0]] != 1 {
		t.Fatalf("revoked key used %d times", seen["Bearer "+keys[0]])
	}
	t.Log(gw.Logs.String())
}
