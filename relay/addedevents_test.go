package relay_test

import (
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestHoldLooksPastEveryAddedEvent: README's STREAM_HOLD_TIMEOUT row
// says the hold looks past the Responses API's `*.added` events, which
// say nothing yet; a reasoning model's stream opens a summary part
// (response.reasoning_summary_part.added, its text "") before any token,
// and an error right after it must go on to another key as after
// response.content_part.added.
func TestHoldLooksPastEveryAddedEvent(t *testing.T) {
	const (
		created = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n"
		item    = "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]}}\n\n"
		part    = "event: response.reasoning_summary_part.added\ndata: {\"type\":\"response.reasoning_summary_part.added\",\"sequence_number\":2,\"item_id\":\"rs_1\",\"output_index\":0,\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}}\n\n"
		failed  = "event: error\ndata: {\"type\":\"error\",\"sequence_number\":3,\"code\":\"429\",\"message\":\"Rate limit exceeded\",\"param\":null}\n\n"
	)
	for _, named := range []bool{true, false} {
		strip := func(s string) string {
			if named {
				return s
			}
			for i := 0; i < len(s); i++ {
				if s[i] == '\n' {
					return s[i+1:]
				}
			}
			return s
		}
		e := newEnv(t, envOptions{keys: 2}, streams(map[int][]string{1: {strip(created), strip(item), strip(part), strip(failed)}}, nil))
		resp, err := e.do(t, nil, &relay.Call{})
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.Header.Get("X-Keygate-Key") != "2" || body != okStream {
			t.Errorf("named events %v: answer %d from key %s %q, want key 2's stream", named, resp.StatusCode, resp.Header.Get("X-Keygate-Key"), body)
		}
	}
}
