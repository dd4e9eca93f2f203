package e2e

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keygate/keygate/simulator"
)

// TestRunCutAtMaxTokens: against the simulator, which stops a reply at
// max_tokens as a model does, a /run entry cut there is a success that
// says finish_reason "length", and its console line says it was cut; one
// that fits says "stop".
func TestRunCutAtMaxTokens(t *testing.T) {
	key := testKeys(1)[0]
	sim := simulator.New(simulator.Options{Keys: map[string]simulator.Profile{key: {}}})
	t.Cleanup(func() { _ = sim.Close() })
	up := httptest.NewServer(sim)
	t.Cleanup(up.Close)
	gw := startGateway(t, up.URL+simulator.PathPrefix, []string{key})

	for _, tc := range []struct {
		maxTokens   int
		output, why string
		tokens      int
	}{
		{3, "Hello from openai/gpt-4o:", "length", 3},
		{100, `Hello from openai/gpt-4o: you said "Say hi"`, "stop", 7},
	} {
		out := runOK(t, gw, "Say hi", []string{"openai/gpt-4o"}, map[string]any{"params": map[string]any{"max_tokens": tc.maxTokens}})
		e := out.Responses[0]
		if e.Status != "success" || e.Output != tc.output || e.FinishReason != tc.why {
			t.Errorf("max_tokens %d: entry %+v; want a success %q with finish_reason %q", tc.maxTokens, e, tc.output, tc.why)
		}
		if e.Usage == nil || e.Usage.CompletionTokens != tc.tokens {
			t.Errorf("max_tokens %d: usage %+v; want %d completion tokens", tc.maxTokens, e.Usage, tc.tokens)
		}
	}
	if n := strings.Count(gw.Logs.String(), "(cut at max_tokens)"); n != 1 {
		t.Errorf("console names the cut %d times; want once, for the cut answer:\n%s", n, gw.Logs.String())
	}
}
