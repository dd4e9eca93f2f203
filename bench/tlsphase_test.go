package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestTLSPhase runs the TLS phase in its -quick form: every target must be
// measured, the floor and keygate must reach the upstream over HTTP/2, and
// every process it started must be gone.
func TestTLSPhase(t *testing.T) {
	ctx, dir, kgBin, floorBin := phaseBinaries(t)
	res, err := tlsPhase(ctx, quickOptions(), kgBin, floorBin, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range tlsTargets {
		if res.RPS[name] <= 0 || res.CPUUs[name] <= 0 || res.UpstreamConns[name] <= 0 {
			t.Errorf("%s: %v req/s, %v µs, %d upstream connections: want measurements", name, res.RPS[name], res.CPUUs[name], res.UpstreamConns[name])
		}
		if res.Proto[name] != "HTTP/2.0" {
			t.Errorf("%s reached the upstream over %q, want HTTP/2.0", name, res.Proto[name])
		}
	}
	if _, ok := res.PerStreamKiB["keygate"]; !ok {
		t.Errorf("no memory per stream for keygate: %v", res.PerStreamKiB)
	}
	var out bytes.Buffer
	res.print(&out)
	if !strings.Contains(out.String(), "upstream protocol") {
		t.Errorf("table:\n%s", out.String())
	}
	if len(res.pids) != 3 {
		t.Fatalf("%d processes recorded, want 3", len(res.pids))
	}
	wantGone(t, res.pids, "phase")
}
