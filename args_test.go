package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestStrayArgumentsAreRefused: "keygate demo" (the dash forgotten), or a
// flag after a word (which flag parsing drops), is a usage error naming
// the argument, not a start without the flag; an argument that may be a
// key is not quoted.
func TestStrayArgumentsAreRefused(t *testing.T) {
	const key = "sk-or-v1-7c1e94b2d05fa8e3916c4b7d2a08f5e1c3b96a74d82e0f15"
	for _, tt := range []struct {
		args        []string
		want, never string
	}{
		{[]string{"demo"}, `unexpected argument "demo"`, ""},
		{[]string{"run", "-demo"}, `unexpected argument "run"`, ""},
		{[]string{"-demo", "extra"}, `unexpected argument "extra"`, ""},
		{[]string{key}, "unexpected argument (not quoted: it may be a key)", "7c1e94b2"},
	} {
		var out, errb bytes.Buffer
		code := run(tt.args, nil, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tt.want) || !strings.Contains(errb.String(), "usage:") {
			t.Errorf("%q: exit %d, stderr %q; want 2 with %q and the usage", tt.args, code, errb.String(), tt.want)
		}
		if tt.never != "" && strings.Contains(errb.String()+out.String(), tt.never) {
			t.Errorf("%q: the output quotes the key", tt.args)
		}
	}
}
