package gateway

import "testing"

func TestMediaType(t *testing.T) {
	for in, want := range map[string]string{
		"application/json":                  "application/json",
		"application/json; charset=utf-8":   "application/json",
		" text/event-stream ;charset=utf-8": "text/event-stream",
		"":                                  "",
	} {
		if got := mediaType(in); got != want {
			t.Errorf("mediaType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCountOf(t *testing.T) {
	for _, tc := range []struct {
		usage string
		n     int
		ok    bool
	}{
		{`{"prompt_tokens":12,"completion_tokens":3}`, 12, true},
		{`{ "completion_tokens" : 3 , "prompt_tokens" : 0 }`, 0, true},
		{`{"completion_tokens":3}`, 0, true},
		{`{"prompt_tokens":null}`, 0, true},
		{`{"prompt_tokens":-2}`, 0, false}, // a count is never negative
		{`{"prompt_tokens":}`, 0, false},   // no value: once a panic
		{`{"prompt_tokens":"12"}`, 0, false},
		{`{"prompt_tokens":1.5}`, 0, false},
		{`{"prompt_tokens":1e3}`, 0, false},
		{`{"prompt_tokens":-}`, 0, false},
		{`{"prompt_tokens":1234567890123456}`, 0, false},
	} {
		n, ok := countOf(topLevel([]byte(tc.usage), "prompt_tokens"))
		if n != tc.n || ok != tc.ok {
			t.Errorf("countOf(prompt_tokens of %s) = %d, %v; want %d, %v", tc.usage, n, ok, tc.n, tc.ok)
		}
	}
}
