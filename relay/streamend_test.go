package relay_test

import (
	"bytes"
	"testing"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/relay"
)

// TestUnterminatedFirstEvent: a stream whose one event ends without its
// blank line is judged by that event, as the usage tap reads it: an error
// is answered as itself, data is passed on; an event cut short is no
// event, and the call goes on.
func TestUnterminatedFirstEvent(t *testing.T) {
	const ok = `data: {"choices":[{"delta":{"content":"hi"}}]}`
	for _, tc := range []struct {
		event, want string
		status, key int
	}{
		{`data: {"error":{"code":401,"message":"User not found."}}`, `{"error":{"code":401,"message":"User not found."}}`, 401, 1},
		{ok, ok, 200, 1},
		{ok[:20], okStream, 200, 2},
	} {
		e := newEnv(t, envOptions{keys: 2}, streams(map[int][]string{1: {tc.event}, 2: {okStream}}, nil))
		if tc.status == 401 {
			e = newEnv(t, envOptions{keys: 1}, streams(map[int][]string{1: {tc.event}}, nil))
		}
		c := relay.Call{}
		resp, err := e.do(t, nil, &c)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != tc.status || got != tc.want || c.Key.ID != tc.key {
			t.Errorf("%.30q: %d %q from key %d, want %d %q from key %d", tc.event, resp.StatusCode, got, c.Key.ID, tc.status, tc.want, tc.key)
		}
	}
}

// TestLateLargeRequest402: a large request's 402 is the request's doing
// (fault.Verdict.Sized) later in a stream as in its first event: the key's
// account does not rest. A small request's rests it.
func TestLateLargeRequest402(t *testing.T) {
	const credits = `{"error":{"code":402,"message":"Insufficient credits. This account never purchased credits.","metadata":{"limit_source":"openrouter_credits"}},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}`
	for _, tc := range []struct {
		name  string
		body  []byte
		rests bool
	}{
		{"large", bytes.Repeat([]byte("a "), fault.LargeRequest/2+1), false},
		{"small", []byte(`{"model":"m","stream":true,"messages":[]}`), true},
	} {
		e := newEnv(t, envOptions{keys: 1}, streams(nil, nil))
		resp, err := e.do(t, tc.body, &relay.Call{Client: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		late := relay.LateOf(resp)
		readAll(t, resp)
		if !late.Event([]byte(credits)) {
			t.Fatalf("%s: the 402 event not counted as an error", tc.name)
		}
		if rests := !e.pool.Available(e.key(1), e.clock.ns.Load()); rests != tc.rests {
			t.Errorf("%s request: key 1 resting %v after a late 402, want %v", tc.name, rests, tc.rests)
		}
	}
}
