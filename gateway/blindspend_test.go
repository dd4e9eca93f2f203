package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestBlindAnswersSpendNothing: an answer of a call that is no
// inference (GET /v1/responses/{id}: a stored response fetched again, as
// JSON or replayed as its stream) repeats the usage, cost included, of
// the call that made it, which upstream billed then; fetching it costs
// nothing. keygate took that cost off the key's budget once more on every
// fetch, so that a client polling a response's state could make a key
// (and its account) look spent. An inference answer is charged as ever.
func TestBlindAnswersSpendNothing(t *testing.T) {
	const (
		stored = `{"id":"resp_1","object":"response","status":"completed","output":[],"usage":{"input_tokens":9,"output_tokens":5,"total_tokens":14,"cost":0.5}}`
		replay = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":9,\"output_tokens\":5,\"total_tokens\":14,\"cost\":0.5}}}\n\n"
		chat = `{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":1,"cost":0.5}}`
	)
	for _, tc := range []struct {
		name, method, path, ctype, body string
		spent                           float64
	}{
		{"chat completion", http.MethodPost, "/v1/chat/completions", "application/json", chat, 0.5},
		{"stored response fetched", http.MethodGet, "/v1/responses/resp_1", "application/json", stored, 0},
		{"stored response replayed as a stream", http.MethodGet, "/v1/responses/resp_1?stream=true", "text/event-stream", replay, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &fakeSpender{}
			s := newChargeServer(t, chargeTransport{ctype: tc.ctype, body: tc.body}, sp)
			var req *http.Request
			if tc.method == http.MethodPost {
				req = httptest.NewRequest(tc.method, tc.path, strings.NewReader(`{"model":"a/b","messages":[{"role":"user","content":"hi"}]}`))
			} else {
				req = httptest.NewRequest(tc.method, tc.path, nil)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			sp.mu.Lock()
			defer sp.mu.Unlock()
			if sp.spent != tc.spent {
				t.Errorf("charged $%v, want $%v", sp.spent, tc.spent)
			}
		})
	}
}
