package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/simulator"
)

// TestRunClientLeftCounts499: a /run whose client left before the models
// answered is counted with code 499, as the passthrough counts a client
// that left, not as a 200 nobody received.
func TestRunClientLeftCounts499(t *testing.T) {
	clk := newClock()
	keys := hdKeys(1)
	sim := hdSim(t, clk, map[string]simulator.Profile{keys[0]: {}})
	g := hdStart(t, sim.BaseURL(), keys, clk)

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/run",
		strings.NewReader(`{"prompt":"p","models":["sim/delay=1h"]}`))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := g.Client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Leave once the model's call is waiting upstream.
	ptEventually(t, "the model's call upstream", func() bool { return sim.Stats().InFlight == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the client got an answer after it left")
	}
	ptEventually(t, "the /run to be counted", func() bool {
		return hdSum(hdScrape(t, g)["keygate_requests_total"], map[string]string{"route": "run"}) == 1
	})
	m := hdScrape(t, g)["keygate_requests_total"]
	if n := hdSum(m, map[string]string{"route": "run", "code": "499"}); n != 1 {
		t.Fatalf("/run counted %v times as 499; samples %v", n, m)
	}
}
