package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/simulator"
)

// spGateway runs keygate over sim with budget polling on (the clock at
// at) and waits for every key's first poll.
func spGateway(t *testing.T, sim *simulator.Server, keys []string, at time.Time, env ...string) *gateway {
	t.Helper()
	gw := startGateway(t, sim.BaseURL(), keys, append([]string{"BUDGET_POLL_INTERVAL=1m", "KEY_ROTATION=round-robin"}, env...)...)
	gw.Clock.Set(at)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { gw.Budgets.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	ptEventually(t, "first polls", func() bool {
		for _, k := range gw.Pool.Keys() {
			if gw.Budgets.View(k) == nil {
				return false
			}
		}
		return true
	})
	return gw
}

// spSim is a simulator with one account whose keys have a $10 daily cap.
func spSim(t *testing.T, keys []string, at time.Time) *simulator.Server {
	t.Helper()
	clk := newClock()
	clk.t = at
	var specs []simulator.KeySpec
	for _, k := range keys {
		specs = append(specs, simulator.KeySpec{Secret: k, Limit: 10, LimitReset: "daily"})
	}
	sim, err := simulator.Start(simulator.Options{Now: clk.Now, Accounts: []simulator.Account{
		{ID: "user_A", Balance: 50, Purchased: 20, Keys: specs}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// spTokens is the sum of keygate_tokens_total.
func spTokens(t *testing.T, gw *gateway) float64 {
	t.Helper()
	_, mfs := mtScrape(t, gw)
	sum := 0.0
	for name, v := range mtSeries(t, mfs) {
		if strings.HasPrefix(name, "keygate_tokens_total{") {
			sum += v
		}
	}
	return sum
}

// TestSpendOfEveryAnswer: whatever the shape of an answer (a JSON answer
// over the tap's 256 KiB, a JSON answer labelled an event stream, the
// Responses API streamed or not), keygate takes off the key exactly what
// upstream charged for it, and counts its tokens.
func TestSpendOfEveryAnswer(t *testing.T) {
	const chat = `{"model":"openai/gpt-4o-mini","max_tokens":16,"stream":%v,"messages":[{"role":"user","content":"hello there"}]}`
	const responses = `{"model":"openai/gpt-4o-mini","max_output_tokens":16,"stream":%v,"input":"hello there"}`
	for _, tc := range []struct {
		name, path, body, fault string
		stream                  bool
	}{
		{"chat", "/v1/chat/completions", chat, "", false},
		{"chat over 256 KiB", "/v1/chat/completions", chat, "big=300KB", false},
		{"chat streamed over 256 KiB", "/v1/chat/completions", chat, "big=300KB", true},
		{"chat streamed, answered with one JSON object", "/v1/chat/completions", chat, "jsonstream", true},
		{"responses", "/v1/responses", responses, "", false},
		{"responses streamed", "/v1/responses", responses, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKeys(1)
			at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			sim := spSim(t, k, at)
			gw := spGateway(t, sim, k, at)
			key := gw.Pool.ByID(1)
			before := gw.Budgets.View(key).Usage
			req := newRequest(t, http.MethodPost, gw.URL+tc.path, []byte(fmt.Sprintf(tc.body, tc.stream)))
			req.Header.Set("Content-Type", "application/json")
			if tc.fault != "" {
				req.Header.Set(simulator.HeaderFault, tc.fault)
			}
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
			if n := spTokens(t, gw); n <= 0 {
				t.Errorf("keygate_tokens_total is %v after the answer", n)
			}
		})
	}
}

// TestCutStreamsArePolledSoon: streams the client abandons end without
// their usage, but upstream charges them (the simulator at admission).
// Such an answer brings its key's budget poll to within a few seconds,
// so that keygate's figures come back to upstream's without waiting for
// the interval.
func TestCutStreamsArePolledSoon(t *testing.T) {
	k := testKeys(1)
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sim := spSim(t, k, at)
	gw := spGateway(t, sim, k, at, "BUDGET_POLL_INTERVAL=1h")
	key := gw.Pool.ByID(1)
	polled := gw.Budgets.View(key).CheckedAt
	body := `{"model":"openai/gpt-4o-mini","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hello there"}]}`
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(body)).WithContext(ctx)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(simulator.HeaderFault, "chunks=10,chunkdelay=50ms")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = resp.Body.Read(make([]byte, 64)) // the first bytes, then the client goes away
		cancel()
		resp.Body.Close()
	}
	ptIdle(t, gw)
	gw.Clock.Advance(budget.SoonPoll + time.Second)
	ptEventually(t, "a poll after the cut streams", func() bool { return gw.Budgets.View(key).CheckedAt.After(polled) })
	info, _ := sim.KeyInfo(k[0])
	v := gw.Budgets.View(key)
	if math.Abs(*v.LimitRemaining-*info.LimitRemaining) > 1e-9 {
		t.Errorf("keygate's limit_remaining %.7f after the poll, upstream's %.7f (charged $%.7f)", *v.LimitRemaining, *info.LimitRemaining, sim.Spent(k[0]))
	}
}
