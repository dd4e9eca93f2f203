package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestFetchedResponseCountsNoTokens: a stored response fetched again
// (GET /v1/responses/{id}, as JSON or replayed as its stream) repeats the
// usage of the call that made it; keygate_tokens_total counted its tokens
// once more on every fetch, as the spend did before 1b9a529, so a client
// polling a response's state inflated the key's tokens. The access line
// still tells the fetched object's tokens. An inference answer counts.
func TestFetchedResponseCountsNoTokens(t *testing.T) {
	const (
		stored = `{"id":"resp_1","object":"response","status":"completed","model":"a/b","output":[],"usage":{"input_tokens":9,"output_tokens":5,"total_tokens":14}}`
		replay = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"model\":\"a/b\",\"status\":\"completed\",\"usage\":{\"input_tokens\":9,\"output_tokens\":5,\"total_tokens\":14}}}\n\n"
		chat = `{"model":"a/b","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`
	)
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, _ ptSeen) {
		switch {
		case r.Method == http.MethodGet && r.URL.Query().Get("stream") == "true":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, replay)
		case r.Method == http.MethodGet:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, stored)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, chat)
		}
	})
	gw := startGateway(t, up.URL+"/api/v1", testKeys(1))
	for _, path := range []string{"/v1/responses/resp_1", "/v1/responses/resp_1?stream=true", "/v1/responses/resp_1"} {
		if resp, b := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil)); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	if resp, b := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"model":"a/b","messages":[{"role":"user","content":"hi"}]}`))); resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d %s", resp.StatusCode, b)
	}
	_, mfs := mtScrape(t, gw)
	var prompt, completion float64
	for series, v := range mtSeries(t, mfs) {
		switch {
		case strings.HasPrefix(series, "keygate_tokens_total{") && strings.Contains(series, `type="prompt"`):
			prompt += v
		case strings.HasPrefix(series, "keygate_tokens_total{") && strings.Contains(series, `type="completion"`):
			completion += v
		}
	}
	if prompt != 3 || completion != 1 {
		t.Errorf("keygate_tokens_total prompt %v, completion %v; want 3 and 1 (the chat call's only)", prompt, completion)
	}
	if logs := gw.Logs.String(); !strings.Contains(logs, "14 tokens") && !strings.Contains(logs, "tokens=14") {
		t.Errorf("no access line told the fetched response's 14 tokens:\n%s", logs)
	}
}
