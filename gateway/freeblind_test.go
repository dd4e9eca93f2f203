package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestOnlyInferenceCallsUseFreeRequests: a passthrough call counts against
// its account's free-model requests when it is an inference call of a
// ":free" model; the same body sent to /v1/models or a made-up path used
// them up, one per call, though upstream counted none, and the account then
// got no free-model call.
func TestOnlyInferenceCallsUseFreeRequests(t *testing.T) {
	const answer = `{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`
	for _, tc := range []struct {
		name, method, path, model string
		free                      int
	}{
		{"chat completion of a free model", http.MethodPost, "/v1/chat/completions", "a/b:free", 1},
		{"chat completion of a paid model", http.MethodPost, "/v1/chat/completions", "a/b", 0},
		{"model list with a free model in the body", http.MethodGet, "/v1/models", "a/b:free", 0},
		{"made-up path with a free model in the body", http.MethodPost, "/api/v1/whatever", "a/b:free", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &fakeSpender{}
			s := newChargeServer(t, chargeTransport{ctype: "application/json", body: answer}, sp)
			body := `{"model":"` + tc.model + `","messages":[{"role":"user","content":"hi"}]}`
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, strings.NewReader(body)))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			sp.mu.Lock()
			defer sp.mu.Unlock()
			if sp.free != tc.free {
				t.Errorf("%d free requests used, want %d", sp.free, tc.free)
			}
		})
	}
}
