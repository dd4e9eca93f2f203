package main

import (
	"strings"
	"testing"
)

// TestStartupWarnsInFlightBelowRun: a /run takes a MAX_IN_FLIGHT slot and
// each of its models another, so with MAX_IN_FLIGHT not above
// RUN_MAX_MODELS a /run of MAX_IN_FLIGHT models loses one of them as
// "overloaded" on an idle gateway. Start-up says so, naming both settings.
func TestStartupWarnsInFlightBelowRun(t *testing.T) {
	p := startProcess(t, "MAX_IN_FLIGHT=4", "BUDGET_POLL_INTERVAL=0")
	out := p.out.String()
	if !strings.Contains(out, "MAX_IN_FLIGHT=4") || !strings.Contains(out, "RUN_MAX_MODELS=32") {
		t.Errorf("start-up does not warn that a /run of 4 models cannot get its slots:\n%s", out)
	}
	q := startProcess(t, "BUDGET_POLL_INTERVAL=0")
	if out := q.out.String(); strings.Contains(out, "RUN_MAX_MODELS") {
		t.Errorf("warned at the defaults:\n%s", out)
	}
}
