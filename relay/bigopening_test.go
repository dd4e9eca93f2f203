package relay_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestHoldLooksPastALargeOpeningEvent: the Responses API's
// response.created (and response.in_progress) echo the request's
// instructions and tools, which an agent's request makes tens of KiB
// long; an error after them, before any output (bifrost #5395's
// insufficient quota, a key's 429), must still go on to another key.
// Past 64 KiB of such events the hold committed the answer: the client
// got a 200 stream ending in the key's error, and no other key was tried.
func TestHoldLooksPastALargeOpeningEvent(t *testing.T) {
	instructions := strings.Repeat("Follow the house style. ", 3000) // 72 KB
	created := `event: response.created` + "\n" +
		`data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","instructions":"` + instructions + `","usage":null}}` + "\n\n"
	rateLimited := `event: error` + "\n" +
		`data: {"type":"error","sequence_number":1,"code":"429","message":"Rate limit exceeded","param":null}` + "\n\n"
	e := newEnv(t, envOptions{keys: 2}, streams(map[int][]string{1: {created, rateLimited}}, nil))
	resp, err := e.do(t, []byte(`{"model":"m","stream":true,"instructions":"`+instructions+`","input":"hi"}`), &relay.Call{})
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.Header.Get("X-Keygate-Key") != "2" || body != okStream {
		t.Fatalf("answer %d from key %s (%d bytes, ends %q), want key 2's stream", resp.StatusCode,
			resp.Header.Get("X-Keygate-Key"), len(body), body[max(0, len(body)-120):])
	}
}
