package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/simulator"
)

// TestRepeatedModelIsRefused: keygate reads a body's first "model",
// upstream (as the simulator) its last; either way round, a free model
// among them makes the two count differently. A free-model call that names a
// model twice, {"model":"…:free","model":"openai/gpt-4o-mini"}, would be a
// paid call upstream counted by keygate as one of the account's free
// requests: enough of them, and keygate blocks the account's free calls
// for the day while upstream still takes them. It is a 400 that never
// reaches upstream; one model named, free or paid, goes through.
func TestRepeatedModelIsRefused(t *testing.T) {
	k := testKeys(1)
	sim, err := simulator.Start(simulator.Options{Accounts: []simulator.Account{
		{ID: "user_A", Balance: 5, Keys: []simulator.KeySpec{{Secret: k[0]}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	gw := startGateway(t, sim.BaseURL(), k, "BUDGET_POLL_INTERVAL=0")
	const free, paid = `"meta-llama/llama-3.3-70b-instruct:free"`, `"openai/gpt-4o-mini"`
	tests := []struct {
		name, head string
		want       int
	}{
		{"free, then paid", `"model":` + free + `,"model":` + paid, http.StatusBadRequest},
		{"free, then paid with an escaped key", `"model":` + free + `,"mod\u0065l":` + paid, http.StatusBadRequest},
		// The mirror: upstream calls the free model, uncounted.
		{"paid, then free", `"model":` + paid + `,"model":` + free, http.StatusBadRequest},
		{"paid, then free spelt with an escape", `"model":` + paid + `,"model":"meta-llama/llama-3.3-70b-instruct:fre\u0065"`, http.StatusBadRequest},
		{"paid, naming a free model elsewhere", `"model":` + paid + `,"metadata":{"model":` + free + `}`, http.StatusOK},
		{"free", `"model":` + free, http.StatusOK},
		{"paid", `"model":` + paid, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := sim.Stats().Total
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions",
				[]byte(`{`+tt.head+`,"max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Content-Type", "application/json")
			resp, b := do(t, req)
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %s, want %d", resp.StatusCode, b, tt.want)
			}
			reached := sim.Stats().Total - before
			if tt.want == http.StatusBadRequest && (reached != 0 || !strings.Contains(string(b), `"model\" is given more than once`)) {
				t.Fatalf("refusal %s; %d upstream requests, want none", b, reached)
			}
		})
	}
}
