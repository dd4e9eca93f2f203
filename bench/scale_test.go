package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScalePhase runs the scale phase small: 30 streams through each
// target; every stream must be counted in flight and none cut, the chunks
// flushed while all were open (they open within the 100 ms ramp and last
// 250) must be counted apart, each target's upstream connections counted,
// and the processes it started must be gone.
func TestScalePhase(t *testing.T) {
	ctx, dir, kgBin, floorBin := phaseBinaries(t)
	rep := &Report{}
	o := quickOptions()
	o.scaleRamp = 100 * time.Millisecond
	o.memProfile = filepath.Join(t.TempDir(), "mem.prof")
	res, err := scalePhase(ctx, o, 30, 50*time.Millisecond, kgBin, floorBin, dir, rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"direct", "floor", "keygate"} {
		s := res.Targets[name]
		if s == nil || s.PeakInFlight < 1 || s.PeakInFlight > 30 || s.Cut != 0 || s.ChunkP99Ms <= 0 || s.UpstreamConns < 1 {
			t.Errorf("%s: %+v", name, s)
		}
		if s != nil && (s.SteadyChunks <= 0 || s.SteadyChunks > 30*4 || s.SteadyP99Ms <= 0 || s.SteadyP50Ms > s.SteadyP99Ms) {
			t.Errorf("%s: the chunks while all were open: %+v", name, s)
		}
	}
	if k := res.Targets["keygate"]; k.IdleGoroutines <= 0 || k.AfterGoroutines <= 0 || k.IdleRSSMiB <= 0 || k.AfterRSSMiB <= 0 {
		t.Errorf("keygate idle/after not read: %+v", k)
	}
	var out bytes.Buffer
	res.print(&out)
	if res.RampMs != 100 || !strings.Contains(out.String(), "30 concurrent streams x 5 chunks, 50 ms apart, started over 100 ms") || !strings.Contains(out.String(), "all open") {
		t.Errorf("table:\n%s", out.String())
	}
	for _, tag := range []string{"after-scale", "after-scale-goroutines"} {
		if fi, err := os.Stat(besideProfile(o.memProfile, tag)); err != nil || fi.Size() == 0 {
			t.Errorf("keygate's %s profile: %v", tag, err)
		}
	}
	if len(rep.pids) != 2 {
		t.Fatalf("%d processes recorded, want 2", len(rep.pids))
	}
	wantGone(t, rep.pids, "phase")
}

func TestRaiseFileLimit(t *testing.T) {
	cur, err := raiseFileLimit()
	var lim syscall.Rlimit
	if gerr := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); gerr != nil {
		t.Fatal(gerr)
	}
	if lim.Cur != cur {
		t.Errorf("raiseFileLimit = %d (%v), limit in force %d", cur, err, lim.Cur)
	}
	if err == nil && cur < fileLimit && lim.Max >= fileLimit {
		t.Errorf("limit %d left below %d with hard limit %d", cur, fileLimit, lim.Max)
	}
}

func TestScaleOverTLS(t *testing.T) {
	tests := []struct {
		limit uint64
		n     int
		tls   bool
	}{
		{20000, 30, false},
		{20000, 9000, false},
		{20000, 10000, true},
		{65536, 10000, false},
		{1024, 1, true},
	}
	for _, tt := range tests {
		if got := scaleOverTLS(tt.limit, tt.n); got != tt.tls {
			t.Errorf("scaleOverTLS(%d, %d) = %v, want %v", tt.limit, tt.n, got, tt.tls)
		}
	}
}

// TestSortedDelays: the delays of the samples kept, sorted.
func TestSortedDelays(t *testing.T) {
	t0 := time.Unix(100, 0)
	samples := []chunkSample{{t0, 3}, {t0.Add(time.Second), 1}, {t0.Add(2 * time.Second), 2}, {t0.Add(3 * time.Second), 5}}
	if got := sortedDelays(samples, nil); !slices.Equal(got, []time.Duration{1, 2, 3, 5}) {
		t.Errorf("all: %v", got)
	}
	mid := func(at time.Time) bool { return at.After(t0) && at.Before(t0.Add(3*time.Second)) }
	if got := sortedDelays(samples, mid); !slices.Equal(got, []time.Duration{1, 2}) {
		t.Errorf("kept: %v", got)
	}
}
