package relay_test

import (
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestHoldReadsPastABOM: a held stream that opens with a UTF-8 BOM (allowed by
// the event-stream format, stripped by every browser EventSource) and whose
// first and only data event is a key's 429 must be judged by that event
// (CONTRACT "Streams": the key rests, the call goes on, failover reason
// error_event). The BOM hid the event from the hold's splitter: the
// attempt counted as "closed before data", and nothing rested.
func TestHoldReadsPastABOM(t *testing.T) {
	e := newEnv(t, envOptions{keys: 2}, streams(map[int][]string{1: {"\xEF\xBB\xBF" + keyRL}}, nil))
	resp, err := e.do(t, nil, &relay.Call{})
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.Header.Get("X-Keygate-Key") != "2" || body != okStream {
		t.Fatalf("answer from key %s %q", resp.Header.Get("X-Keygate-Key"), body)
	}
	e.obs.mu.Lock()
	failovers := e.obs.failovers
	e.obs.mu.Unlock()
	equalEvents(t, "StreamFailover", failovers, []string{relay.FailoverErrorEvent})
	var rested []int
	for _, c := range e.obs.cooldownList() {
		rested = append(rested, c.key)
	}
	equalEvents(t, "cooldowns", rested, []int{1})
}
