package main

import (
	"strings"
	"testing"
)

// TestStartupWarnsMaxCooldownBelowFirstRest: a rest is never shorter than
// its first length, so MAX_COOLDOWN below AUTH_FAILURE_COOLDOWN (or
// RATE_LIMIT_COOLDOWN) caps nothing, and an operator who set it to keep
// revoked keys' rests short was told nothing. Start-up says so.
func TestStartupWarnsMaxCooldownBelowFirstRest(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string // "" for no warning
	}{
		{[]string{"MAX_COOLDOWN=5m"}, "MAX_COOLDOWN=5m is below AUTH_FAILURE_COOLDOWN=10m:"},
		{[]string{"MAX_COOLDOWN=20s"}, "MAX_COOLDOWN=20s is below AUTH_FAILURE_COOLDOWN=10m and RATE_LIMIT_COOLDOWN=30s:"},
		{[]string{"MAX_COOLDOWN=10m"}, ""},
		{nil, ""},
	} {
		p := startProcess(t, append(tc.env, "BUDGET_POLL_INTERVAL=0")...)
		out := p.out.String()
		if tc.want == "" {
			if strings.Contains(out, "MAX_COOLDOWN") {
				t.Errorf("%v: warned:\n%s", tc.env, out)
			}
			continue
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("%v: no %q in:\n%s", tc.env, tc.want, out)
		}
	}
}
