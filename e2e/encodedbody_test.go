package e2e

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/simulator"
)

// TestEncodedInferenceBodyIsRefused: keygate reads an inference body for
// its model and measures it for the large-request rule. A gzip body would
// pass as a small one naming no model (no free-model count, no afford
// steering), so it is a 415 that never reaches upstream; "identity" is no
// coding, and a path that is not inference is forwarded as it is.
func TestEncodedInferenceBodyIsRefused(t *testing.T) {
	k := testKeys(1)
	sim, err := simulator.Start(simulator.Options{Accounts: []simulator.Account{
		{ID: "user_A", Balance: 5, Keys: []simulator.KeySpec{{Secret: k[0]}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	gw := startGateway(t, sim.BaseURL(), k, "BUDGET_POLL_INTERVAL=0")
	plain := []byte(`{"model":"openai/gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	tests := []struct {
		name, path, coding string
		body               []byte
		want               int
		reaches            bool
	}{
		{"gzip chat", "/v1/chat/completions", "gzip", zipped.Bytes(), http.StatusUnsupportedMediaType, false},
		{"gzip responses, api prefix", "/api/v1/responses", "gzip", zipped.Bytes(), http.StatusUnsupportedMediaType, false},
		{"two codings, one identity", "/v1/chat/completions", "identity, br", zipped.Bytes(), http.StatusUnsupportedMediaType, false},
		{"identity", "/v1/chat/completions", "identity", plain, http.StatusOK, true},
		{"none", "/v1/chat/completions", "", plain, http.StatusOK, true},
		{"gzip to a path that is not inference", "/v1/models", "gzip", zipped.Bytes(), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := sim.Stats().Total
			req := newRequest(t, http.MethodPost, gw.URL+tt.path, tt.body)
			req.Header.Set("Content-Type", "application/json")
			if tt.coding != "" {
				req.Header.Set("Content-Encoding", tt.coding)
			}
			resp, b := do(t, req)
			if tt.want != 0 && resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tt.want)
			}
			if reached := sim.Stats().Total - before; (reached != 0) != tt.reaches {
				t.Fatalf("%d upstream requests, want reaching %v", reached, tt.reaches)
			}
			if tt.want == http.StatusUnsupportedMediaType {
				if !strings.Contains(string(b), `"type":"invalid_request_error"`) || !strings.Contains(string(b), "Content-Encoding") {
					t.Fatalf("body %s", b)
				}
				if got := resp.Header.Get("Accept-Encoding"); got != "identity" {
					t.Fatalf("Accept-Encoding %q, want identity", got)
				}
				if got := resp.Header.Get("X-Keygate-Key"); got != "none" {
					t.Fatalf("X-Keygate-Key %q, want none", got)
				}
			}
		})
	}
}
