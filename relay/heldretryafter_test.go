package relay_test

import (
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestHeldErrorGivesItsRetryAfter: a streamed 200 whose first event is a
// provider's 429 ("temporarily rate-limited upstream", metadata
// provider_name and retry_after_seconds, OPENROUTER.md 1.6) becomes the
// JSON 429 it is, with its Retry-After (CONTRACT: a provider's 429 is
// returned with its Retry-After). The hint was in the event's metadata
// only, which SDKs do not read, so they retried at once.
func TestHeldErrorGivesItsRetryAfter(t *testing.T) {
	const ev = `data: {"error":{"code":429,"message":"x/m:free is temporarily rate-limited upstream. Please retry shortly","metadata":{"provider_name":"P","retry_after_seconds":7}},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}` + "\n\n"
	e := newEnv(t, envOptions{keys: 2}, streams(map[int][]string{1: {processing, ev}}, nil))
	resp, err := e.do(t, nil, &relay.Call{})
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != 429 {
		t.Fatalf("status %d %q, want 429", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After %q, want \"7\" (from the error's metadata)", got)
	}
}
