package e2e

import (
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// TestSpendOfALargeResponsesStream: a streamed Responses API answer
// ends in response.completed, which repeats the whole response (its
// output text, and the request's instructions and tools) beside its usage:
// an answer of 300 KB makes that one event longer than the usage tap's
// 256 KiB bound, and keygate took nothing off the key for it, though
// upstream charged it (TestSpendOfEveryAnswer's chat stream over 256 KiB
// is charged: its usage chunk is small).
func TestSpendOfALargeResponsesStream(t *testing.T) {
	const responses = `{"model":"openai/gpt-4o-mini","max_output_tokens":100000,"stream":%v,"input":"hello there"}`
	k := testKeys(1)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sim := spSim(t, k, at)
	gw := spGateway(t, sim, k, at)
	key := gw.Pool.ByID(1)
	before := gw.Budgets.View(key).Usage
	req := newRequest(t, http.MethodPost, gw.URL+"/v1/responses", []byte(fmt.Sprintf(responses, true)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(simulator.HeaderFault, "big=300KB")
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %.300s", resp.StatusCode, body)
	}
	ptIdle(t, gw)
	charged := sim.Spent(k[0])
	if charged <= 0 {
		t.Fatalf("the simulator charged nothing (%d bytes)", len(body))
	}
	took := gw.Budgets.View(key).Usage - before
	if math.Abs(took-charged) > 1e-9 {
		t.Errorf("upstream charged $%.7f for the answer (%d bytes), keygate took $%.7f off", charged, len(body), took)
	}
}
