package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestQuickRun runs the whole benchmark in its -quick form: it must start
// the upstream, the floor and keygate, measure every figure, and stop every
// process it started. It checks that figures were taken, never their
// values: CI does not time anything.
func TestQuickRun(t *testing.T) {
	rep := quickRun(t, quickOptions(), 2*time.Minute)
	for name, v := range map[string]float64{
		"direct rps": rep.Throughput.DirectRPS, "floor rps": rep.Throughput.FloorRPS, "keygate rps": rep.Throughput.KeygateRPS,
		"keygate p99": rep.Latency[0].Keygate.P99Ms, "stream keygate p99": rep.Stream.Keygate.P99Ms,
		"run wall": rep.Run.WallP50Ms, "idle rss": rep.Memory.IdleRSSMiB, "rss with streams": rep.Memory.StreamsRSSMiB,
		"keygate cpu": rep.CPU.KeygateUs, "floor cpu": rep.CPU.FloorUs, "pooled floor rps": rep.Throughput.PooledFloorRPS,
	} {
		if v <= 0 {
			t.Errorf("%s = %v, want a measurement", name, v)
		}
	}
	if rep.Budgets == nil || rep.Economy == nil {
		t.Fatalf("budgets %v, economy %v: want both figures", rep.Budgets, rep.Economy)
	}
	// The run leaves the Redis phase out without redis-server; CI has it.
	if rep.Replicas == nil {
		redistest.Need(t)
		t.Fatal("no Redis phase, though redis-server is installed")
	}
	for name, v := range map[string]float64{
		"budgets on rps": rep.Budgets.OnRPS, "budgets off rps": rep.Budgets.OffRPS,
		"budgets on cpu": rep.Budgets.OnCPUUs, "budgets off cpu": rep.Budgets.OffCPUUs,
		"economy credit share": rep.Economy.Runs[0].CreditShare,
	} {
		if v <= 0 {
			t.Errorf("%s = %v, want a measurement", name, v)
		}
	}
	if len(rep.Latency) != 2 || len(rep.Selection) != 3 || len(rep.Targets) < 12 {
		t.Errorf("%d rates, %d strategies, %d targets", len(rep.Latency), len(rep.Selection), len(rep.Targets))
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.printTable(&table)
	for _, want := range []string{"max throughput", "1000 req/s", "SSE chunk delay", "/run", "per stream", "key selection", "keygate/floor", "budgets", "key economics", "TLS + HTTP/2 upstream"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	// floor, pooled floor, keygate, keygate with budgets off; fresh floor
	// and keygate, and another pair for the memory curve; the TLS phase's
	// floor, pooled floor and keygate.
	if len(rep.pids) != 11 {
		t.Fatalf("%d processes recorded, want 11", len(rep.pids))
	}
	if rep.TLS == nil || rep.TLS.RPS["keygate"] <= 0 || rep.TLS.Proto["keygate"] != "HTTP/2.0" || rep.TLS.Proto["floor"] != "HTTP/2.0" {
		t.Errorf("TLS phase: %+v", rep.TLS)
	}
	if len(rep.Memory.Curve) != 2 || rep.Memory.Curve[0].Streams != 10 || rep.Memory.Curve[1].KeygateKiB == 0 {
		t.Errorf("memory curve %+v, want 10 and 50 streams", rep.Memory.Curve)
	}
	if rep.Latency[0].Keygate.P90Ms <= 0 {
		t.Errorf("no p90: %+v", rep.Latency[0].Keygate)
	}
	files, err := writeCharts(t.TempDir(), rep)
	if err != nil || len(files) != 4 {
		t.Errorf("charts of the run: %v, %v", files, err)
	}

	wantGone(t, rep.pids, "run")
}

func TestQuantileAndMedian(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := quantile(d, q); got != want {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("quantile of nothing")
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
}

func TestProcReadings(t *testing.T) {
	pid := os.Getpid()
	end := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(end) {
	}
	cpu, err := cpuTime(pid)
	if err != nil || cpu <= 0 { // 50 ms of spinning took some CPU time
		t.Fatalf("cpuTime = %v, %v", cpu, err)
	}
	user, sys, err := cpuTimes(pid)
	if err != nil || user <= 0 || sys < 0 || user+sys < cpu {
		t.Fatalf("cpuTimes = %v + %v, %v; cpuTime before them %v", user, sys, err, cpu)
	}
	before, err := contextSwitches(pid)
	if err != nil || before <= 0 {
		t.Fatalf("contextSwitches = %d, %v", before, err)
	}
	for range 20 { // each sleep leaves the threads with nothing to run
		time.Sleep(time.Millisecond)
	}
	if after, err := contextSwitches(pid); err != nil || after <= before {
		t.Fatalf("contextSwitches after 20 sleeps = %d, %v; before %d", after, err, before)
	}
	if _, err := contextSwitches(1 << 30); err == nil {
		t.Error("contextSwitches of no process: no error")
	}
	rss, peak, err := memory(pid)
	if err != nil || rss <= 0 || peak < rss {
		t.Fatalf("memory = %d, %d, %v", rss, peak, err)
	}
}

func TestFlags(t *testing.T) {
	var errs bytes.Buffer
	o, err := parseFlags([]string{"-rounds", "5", "-rates", "100, 200", "-json", "x.json"}, &errs)
	if err != nil || o.rounds != 5 || len(o.rates) != 2 || o.rates[1] != 200 || o.jsonOut != "x.json" {
		t.Fatalf("parseFlags = %+v, %v (%s)", o, err, errs.String())
	}
	o, err = parseFlags([]string{"-quick", "-json", "q.json"}, &errs)
	if err != nil || o.rounds != 1 || o.jsonOut != "q.json" {
		t.Fatalf("-quick = %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"-rates", "fast"}, &errs); err == nil {
		t.Fatal("bad -rates accepted")
	}
	if _, err := parseFlags([]string{"-chunks", "1"}, &errs); err == nil {
		t.Fatal("-chunks 1 accepted")
	}
	o, err = parseFlags([]string{"-only", "economy, budgets", "-economy=false"}, &errs)
	if err != nil || !o.only["economy"] || !o.only["budgets"] || len(o.only) != 2 || o.economy {
		t.Fatalf("-only = %+v, %v", o.only, err)
	}
	o, err = parseFlags([]string{"-streams", "10000", "-mem-counts", "100, 3000", "-charts", "docs/bench"}, &errs)
	if err != nil || o.streams != 10000 || o.chunkStreams() != defaultStreams || !slices.Equal(o.memCounts, []int{100, 3000}) || o.charts != "docs/bench" {
		t.Fatalf("-streams 10000 = %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-streams", "10000", "-scale-ramp", "10s", "-scale-h2-streams", "250"}, &errs)
	if err != nil || o.scaleRamp != 10*time.Second || o.scaleH2 != 250 {
		t.Fatalf("-scale-ramp 10s -scale-h2-streams 250 = %v %v, %v", o.scaleRamp, o.scaleH2, err)
	}
	if _, err := parseFlags([]string{"-scale-h2-streams", "-1"}, &errs); err == nil {
		t.Fatal("-scale-h2-streams -1 accepted")
	}
	if _, err := parseFlags([]string{"-mem-counts", "0"}, &errs); err == nil {
		t.Fatal("-mem-counts 0 accepted")
	}
	if _, err := parseFlags([]string{"-only", "memories"}, &errs); err == nil {
		t.Fatal("-only memories accepted")
	}
	if o, err := parseFlags([]string{"-only", "stream", "-rounds", "9"}, &errs); err != nil || !o.only["stream"] || o.rounds != 9 {
		t.Fatalf("-only stream -rounds 9 = %+v %d, %v", o.only, o.rounds, err)
	}
	if o, err := parseFlags([]string{"-only", "memory"}, &errs); err != nil || !o.only["memory"] {
		t.Fatalf("-only memory = %+v, %v", o.only, err)
	}
	if o, err := parseFlags([]string{"-only", "paired", "-rounds", "7", "-paired-against", "/tmp/kg"}, &errs); err != nil || !o.only["paired"] || o.rounds != 7 || o.pairedAgainst != "/tmp/kg" {
		t.Fatalf("-only paired -rounds 7 -paired-against /tmp/kg = %+v %d %q, %v", o.only, o.rounds, o.pairedAgainst, err)
	}
	if o, err := parseFlags([]string{"-quick", "-only", "paired", "-paired-against", "/tmp/kg", "-paired-rate", "1500"}, &errs); err != nil || o.pairedAgainst != "/tmp/kg" || o.pairedRate != 1500 {
		t.Fatalf("-quick -only paired -paired-against /tmp/kg -paired-rate 1500 = %q %d, %v", o.pairedAgainst, o.pairedRate, err)
	}
	for _, args := range [][]string{
		{"-paired-rate", "1500"},
		{"-paired-against", "/tmp/kg"},
		{"-quick", "-paired-rate", "1500"},
		{"-only", "throughput", "-paired-rate", "1500"},
		{"-only", "paired", "-paired-rate", "-1"},
	} {
		if _, err := parseFlags(args, &errs); err == nil {
			t.Errorf("%q accepted: the paired flags would change nothing", args)
		}
	}
	for _, args := range [][]string{{"-redis-control"}, {"-only", "redis,tls", "-redis-control"}} {
		if o, err := parseFlags(args, &errs); err != nil || !o.redisControl {
			t.Errorf("%q = %v, %v", args, o.redisControl, err)
		}
	}
	for _, args := range [][]string{{"-redis-control", "-no-redis"}, {"-only", "throughput", "-redis-control"}} {
		if _, err := parseFlags(args, &errs); err == nil {
			t.Errorf("%q accepted: -redis-control would change nothing", args)
		}
	}
}

// TestOnlyRedis runs -only redis in its -quick form, set against unset
// and as the A/A control: the "set" keygate really shares through Redis,
// the control's does not, and the report says which it was.
func TestOnlyRedis(t *testing.T) {
	redistest.Need(t)
	for _, control := range []bool{false, true} {
		o := quickOptions()
		o.only, o.redisControl = map[string]bool{"redis": true}, control
		rep := quickRun(t, o, time.Minute)
		x := rep.Replicas
		if x == nil || x.PlainRPS <= 0 || x.RedisRPS <= 0 || x.Redis.P99Ms <= 0 || x.Rests != o.restSamples {
			t.Fatalf("control %v: %+v, want both sides measured", control, x)
		}
		wantUp, wantName := 1.0, "REDIS_URL set/unset"
		if control {
			wantUp, wantName = -1, "A/A control"
		}
		if x.Control != control || x.SetRedisUp != wantUp {
			t.Errorf("control %v: Control %v, keygate_redis_up of the second keygate %v, want %v", control, x.Control, x.SetRedisUp, wantUp)
		}
		if len(rep.Targets) != 3 || !strings.Contains(rep.Targets[1].Name, wantName) {
			t.Errorf("control %v: targets %+v, want %q in their names", control, rep.Targets, wantName)
		}
		var table bytes.Buffer
		rep.printTable(&table)
		if strings.Contains(table.String(), "A/A control") != control {
			t.Errorf("control %v: table:\n%s", control, table.String())
		}
	}
}

func TestBesideProfile(t *testing.T) {
	for in, want := range map[string]string{"mem.prof": "mem.streams.prof", "/tmp/m": "/tmp/m.streams", "a.b/mem.out": "a.b/mem.streams.out"} {
		if got := besideProfile(in, "streams"); got != want {
			t.Errorf("besideProfile(%q, streams) = %q, want %q", in, got, want)
		}
	}
	if got := besideProfile("cpu.out", "floor"); got != "cpu.floor.out" {
		t.Errorf("besideProfile(cpu.out, floor) = %q", got)
	}
}

// TestJudgeFlat checks that flatness is judged per strategy and that only a
// missed round-robin figure carries the reason it is missed on purpose.
func TestJudgeFlat(t *testing.T) {
	tests := []struct {
		strategy string
		ratio    float64
		met      bool
		why      bool
	}{
		{"random", 0.5, true, false},
		{"random", 1.3, false, false},
		{"least-busy", 1.25, true, false},
		{"round-robin", 1.1, true, false},
		{"round-robin", 1.6, false, true},
	}
	for _, tt := range tests {
		r := &Report{Selection: []selectionResult{{Strategy: tt.strategy, NsPerOp1CPU: 10, NsPerOp2CPU: 10 * tt.ratio, TwoOverOne: tt.ratio}}}
		r.judge()
		var got *Target
		for i := range r.Targets {
			if strings.HasSuffix(r.Targets[i].Name, "(flat), "+tt.strategy) {
				got = &r.Targets[i]
			}
		}
		if got == nil {
			t.Fatalf("%s: no flat target in %+v", tt.strategy, r.Targets)
		}
		if got.Met != tt.met || (got.Why != "") != tt.why {
			t.Errorf("%s at %v: met %v why %q, want met %v, a reason %v", tt.strategy, tt.ratio, got.Met, got.Why, tt.met, tt.why)
		}
	}
}

// TestOnlyBudgets runs -only budgets in its -quick form: two fresh
// keygates, budgets on and off, side by side, and nothing else.
func TestOnlyBudgets(t *testing.T) {
	o := quickOptions()
	o.only = map[string]bool{"budgets": true}
	rep := quickRun(t, o, time.Minute)
	b := rep.Budgets
	if b == nil || b.OnRPS <= 0 || b.OffRPS <= 0 || b.OnCPUUs <= 0 || b.OffCPUUs <= 0 || b.InProcess == nil ||
		b.InProcess.OnAllocs <= 0 || b.InProcess.KeyReads < 4 {
		t.Fatalf("budgets %+v, want both measured", b)
	}
	if rep.Economy != nil || rep.Throughput.KeygateRPS != 0 || len(rep.Targets) != 3 {
		t.Errorf("ran more than -only budgets: economy %v, throughput %+v, %d targets", rep.Economy, rep.Throughput, len(rep.Targets))
	}
	var table bytes.Buffer
	rep.printTable(&table)
	if !strings.Contains(table.String(), "budgets on/off") || strings.Contains(table.String(), "SSE chunk delay") {
		t.Errorf("table:\n%s", table.String())
	}
	if len(rep.pids) != 2 {
		t.Fatalf("%d processes recorded, want 2", len(rep.pids))
	}
	wantGone(t, rep.pids, "run")
}

// TestOnlyStream runs -only stream in its -quick form: the chunk-delay
// phase alone, through direct, the floor and keygate, judged by #12's
// two streamed bounds.
func TestOnlyStream(t *testing.T) {
	o := quickOptions()
	o.only = map[string]bool{"stream": true}
	rep := quickRun(t, o, time.Minute)
	st := rep.Stream
	// A delay may be a little below zero (the upstream's time stamp and
	// the client's read race); a target measured has some not zero.
	measured := func(l Lat) bool { return l.P50Ms != 0 || l.P99Ms != 0 }
	if st.Samples < o.chunkStreams()*(o.chunks-1) || !measured(st.Direct) || !measured(st.Floor) || !measured(st.Keygate) ||
		!measured(st.FirstEvent.Direct) || !measured(st.FirstEvent.Floor) || !measured(st.FirstEvent.Keygate) {
		t.Fatalf("stream %+v, want every target's chunks measured", st)
	}
	if rep.Economy != nil || rep.Throughput.KeygateRPS != 0 || rep.Paired != nil {
		t.Errorf("ran more than -only stream: economy %v, throughput %+v, paired %v", rep.Economy, rep.Throughput, rep.Paired)
	}
	var judged []string
	for _, tg := range rep.Targets {
		judged = append(judged, tg.Name)
	}
	if len(judged) != 2 || !strings.Contains(judged[0], "per-chunk") || !strings.Contains(judged[1], "first event") {
		t.Errorf("targets judged %q, want the two streamed bounds", judged)
	}
	var table bytes.Buffer
	rep.printTable(&table)
	if !strings.Contains(table.String(), "SSE chunk delay added") || strings.Contains(table.String(), "max throughput") {
		t.Errorf("table:\n%s", table.String())
	}
	wantGone(t, rep.pids, "run")
}

// TestOnlyPaired runs -only paired in its -quick form: keygate and the
// pooled floor loaded at once, and the control pair, two pooled floors or
// (-paired-against) keygate beside another keygate binary, each ratio
// taken from CPU time and requests that were really counted; and at a
// fixed rate each (-paired-rate), where only CPU per request is judged.
func TestOnlyPaired(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs keygate")
	}
	_, _, kgBin, _ := phaseBinaries(t)
	for _, c := range []struct {
		name, against, control, line string
		rate                         int
	}{
		{"pooled floors", "", "floor+pool/floor+pool", "control, floor+pool/floor+pool:", 0},
		{"against a keygate binary", kgBin, "keygate/keygate of " + kgBin, "control, keygate/keygate of " + kgBin + ":", 0},
		{"at a fixed rate", "", "floor+pool/floor+pool", "(loaded at once, 1000 req/s each)", 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := quickOptions()
			o.rounds = 2
			o.only = map[string]bool{"paired": true}
			o.pairedAgainst, o.pairedRate = c.against, c.rate
			rep := quickRun(t, o, time.Minute)
			x := rep.Paired
			if x == nil {
				t.Fatal("no paired figures")
			}
			if x.Rounds != 2 || x.ConnectionsEach != o.conns/2 || x.ControlName != c.control || x.RateEach != c.rate {
				t.Errorf("rounds %d, connections %d, control %q, rate %d", x.Rounds, x.ConnectionsEach, x.ControlName, x.RateEach)
			}
			for name, r := range map[string]PairedRatio{"keygate": x.Keygate, "control": x.Control} {
				if len(r.CPU.Rounds) != 2 || len(r.Throughput.Rounds) != 2 {
					t.Errorf("%s: rounds %v / %v, want 2 each", name, r.CPU.Rounds, r.Throughput.Rounds)
				}
				if r.FirstUs <= 0 || r.SecondUs <= 0 || r.FirstRPS <= 0 || r.SecondRPS <= 0 {
					t.Errorf("%s: %+v, want both sides measured", name, r)
				}
				// The split adds up to the whole (each is rounded to 0.1
				// µs), and serving takes wakeups.
				for _, side := range [][3]float64{{r.FirstUs, r.FirstUserUs, r.FirstSysUs}, {r.SecondUs, r.SecondUserUs, r.SecondSysUs}} {
					if side[1] < 0 || side[2] < 0 || math.Abs(side[1]+side[2]-side[0]) > 0.2 {
						t.Errorf("%s: user %.1f + system %.1f µs per request, want %.1f", name, side[1], side[2], side[0])
					}
				}
				if r.FirstSwitches <= 0 || r.SecondSwitches <= 0 {
					t.Errorf("%s: context switches per request %.1f and %.1f, want both above 0", name, r.FirstSwitches, r.SecondSwitches)
				}
				for _, s := range []Spread{r.CPU, r.Throughput} {
					if s.Min <= 0 || s.Min > s.Median || s.Median > s.Max {
						t.Errorf("%s: spread %+v out of order", name, s)
					}
				}
			}
			judged := 2 // throughput and CPU; at a fixed rate only CPU
			if c.rate > 0 {
				judged = 1
				// Open loop: no side served more than it was sent (a
				// closed loop would serve thousands a second); less, on
				// a busy machine, is no error of the rate's.
				for _, rps := range []float64{x.Keygate.FirstRPS, x.Keygate.SecondRPS} {
					if rps > 1100 {
						t.Errorf("served %.0f req/s at a rate of 1000", rps)
					}
				}
				if len(rep.Targets) == 1 && !strings.Contains(rep.Targets[0].Name, "at 1000 req/s each") {
					t.Errorf("target %q does not name the rate", rep.Targets[0].Name)
				}
			}
			if rep.Throughput.KeygateRPS != 0 || len(rep.Targets) != judged {
				t.Errorf("ran more than -only paired: throughput %+v, targets %+v", rep.Throughput, rep.Targets)
			}
			var table bytes.Buffer
			rep.printTable(&table)
			if !strings.Contains(table.String(), "keygate/floor+pool:") || !strings.Contains(table.String(), c.line) ||
				strings.Count(table.String(), "per request, user + system CPU") != 2 {
				t.Errorf("table:\n%s", table.String())
			}
			if len(rep.pids) != 3 {
				t.Fatalf("%d processes recorded, want 3", len(rep.pids))
			}
			wantGone(t, rep.pids, "run")
		})
	}
}

// TestSpreadOf checks the median, least and greatest of a ratio's rounds.
func TestSpreadOf(t *testing.T) {
	for _, c := range []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{1.2}, 1.2, 1.2, 1.2},
		{[]float64{1.1, 0.9, 1.0}, 1.0, 0.9, 1.1},
		{[]float64{1.0, 1.1, 0.95, 1.3}, 1.05, 0.95, 1.3},
	} {
		s := spreadOf(c.in)
		if s.Median != c.med || s.Min != c.min || s.Max != c.max || len(s.Rounds) != len(c.in) {
			t.Errorf("spreadOf(%v) = %+v, want %v (%v–%v)", c.in, s, c.med, c.min, c.max)
		}
	}
}

// TestOnlyThroughputProfiles runs -only throughput with -cpuprofile and
// -memprofile: keygate's CPU profile, the pooled floor's beside it, and
// keygate's allocation profile are written, each a gzipped pprof profile.
func TestOnlyThroughputProfiles(t *testing.T) {
	dir := t.TempDir()
	o := quickOptions()
	o.only = map[string]bool{"throughput": true}
	o.cpuProfile, o.memProfile = filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "mem.prof")
	rep := quickRun(t, o, time.Minute)
	for _, name := range []string{"cpu.prof", "cpu.floor.prof", "mem.prof"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: %d bytes, not a gzipped profile", name, len(b))
		}
	}
	if rep.CPU.KeygateUs <= 0 || rep.CPU.PooledFloorUs <= 0 {
		t.Errorf("cpu %+v", rep.CPU)
	}
	wantGone(t, rep.pids, "run")
}

// quickRun runs the benchmark with o, bounded by within, and fails t with
// the run's log if it errs; under -short it skips, as the run builds and
// starts keygate.
func quickRun(t *testing.T, o options, within time.Duration) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs keygate")
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var log bytes.Buffer
	rep, err := run(ctx, o, &log)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	return rep
}

// wantGone fails t for each process of pids that still exists after the
// run or phase that started it.
func wantGone(t *testing.T, pids []int, after string) {
	t.Helper()
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			t.Errorf("process %d still exists after the %s", pid, after)
		}
	}
}

// phaseBinaries builds keygate and the floor into a temporary directory
// for a test that runs one phase, under a minute's context.
func phaseBinaries(t *testing.T) (ctx context.Context, dir, kgBin, floorBin string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs keygate")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	dir = t.TempDir()
	kgBin, floorBin, err := buildBinaries(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, dir, kgBin, floorBin
}
