package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/keyring"
)

// Report is everything one benchmark run measured; it is printed as a
// table and as JSON. Durations are in milliseconds (_ms) or microseconds
// (_us), sizes in MiB or KiB as named.
type Report struct {
	Machine    Machine           `json:"machine"`
	Command    string            `json:"command"`
	Settings   Settings          `json:"settings"`
	Throughput Throughput        `json:"throughput"`
	Latency    []RateLatency     `json:"latency"`
	Stream     StreamResult      `json:"stream"`
	Run        RunResult         `json:"run"`
	Memory     MemoryResult      `json:"memory"`
	CPU        CPUResult         `json:"cpu"`
	Replicas   *ReplicaResult    `json:"replicas,omitempty"`
	Selection  []selectionResult `json:"key_selection"`
	Budgets    *BudgetsResult    `json:"budgets,omitempty"`
	Economy    *EconomyResult    `json:"economy,omitempty"`
	TLS        *TLSResult        `json:"tls,omitempty"`
	Scale      *ScaleResult      `json:"scale,omitempty"`
	Paired     *PairedResult     `json:"paired,omitempty"`
	Targets    []Target          `json:"targets"`
	// Only names the phases run with -only; empty for a full run.
	Only     []string `json:"only,omitempty"`
	ElapsedS float64  `json:"elapsed_s"`

	pids []int // of the processes started, for tests to check they ended
}

// Machine says where the numbers come from.
type Machine struct {
	NProc int    `json:"nproc"`
	CPU   string `json:"cpu"`
	Go    string `json:"go"`
	OS    string `json:"os"`
	Date  string `json:"date"`
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// began and ended; the run itself keeps about 2 busy, anything far
	// above that was other work.
	LoadStart float64 `json:"loadavg_start"`
	LoadEnd   float64 `json:"loadavg_end"`
}

// Settings are the phase sizes of the run.
type Settings struct {
	Rounds        int     `json:"rounds"`
	Connections   int     `json:"connections"`
	ThroughputS   float64 `json:"throughput_round_s"`
	RateS         float64 `json:"rate_round_s"`
	Streams       int     `json:"streams"`
	Chunks        int     `json:"chunks"`
	ChunkGapMs    float64 `json:"chunk_gap_ms"`
	Runs          int     `json:"runs"`
	RunModels     int     `json:"run_models"`
	RunDelayMs    float64 `json:"run_upstream_delay_ms"`
	OpenStreams   int     `json:"open_streams"`
	UpstreamKeys  int     `json:"upstream_keys"`
	KeygateRotate string  `json:"keygate_key_rotation"`
}

// Throughput is the closed-loop maximum, median over rounds.
type Throughput struct {
	DirectRPS        float64 `json:"direct_rps"`
	FloorRPS         float64 `json:"floor_rps"`
	KeygateRPS       float64 `json:"keygate_rps"`
	KeygateOverFloor float64 `json:"keygate_over_floor"`
	// PooledFloorRPS is the floor with pooled copy buffers, a stricter
	// yardstick than the issue's; not a target.
	PooledFloorRPS         float64              `json:"pooled_floor_rps"`
	KeygateOverPooledFloor float64              `json:"keygate_over_pooled_floor"`
	Rounds                 map[string][]float64 `json:"rounds_rps"`
	Failed                 map[string]int       `json:"failed"`
}

// Lat is one target's latency figures.
type Lat struct {
	P50Ms       float64 `json:"p50_ms"`
	P90Ms       float64 `json:"p90_ms,omitempty"`
	P99Ms       float64 `json:"p99_ms"`
	AddedP50Ms  float64 `json:"added_p50_ms"`
	AddedP99Ms  float64 `json:"added_p99_ms"`
	AchievedRPS float64 `json:"achieved_rps,omitempty"`
	Failed      int     `json:"failed"`
}

// RateLatency is the latency at one fixed rate, medians over rounds; added
// is over direct.
type RateLatency struct {
	Rate                     int     `json:"rate"`
	Direct                   Lat     `json:"direct"`
	Floor                    Lat     `json:"floor"`
	Keygate                  Lat     `json:"keygate"`
	KeygateOverFloorAddedP99 float64 `json:"keygate_over_floor_added_p99"`
}

// StreamResult is the per-chunk delay (client read time minus upstream
// flush time), pooled over rounds; added is over direct.
type StreamResult struct {
	Samples int `json:"samples_per_target"`
	Direct  Lat `json:"direct"`
	Floor   Lat `json:"floor"`
	Keygate Lat `json:"keygate"`
	// FirstEvent is the first event's delay (headers included: keygate
	// holds them until it), with the upstream sending it at once.
	FirstEvent FirstEventResult `json:"first_event"`
}

// FirstEventResult is the time to first byte of a stream whose first
// event comes at once; added is over direct.
type FirstEventResult struct {
	Direct                Lat     `json:"direct"`
	Floor                 Lat     `json:"floor"`
	Keygate               Lat     `json:"keygate"`
	KeygateOverFloorP99Ms float64 `json:"keygate_over_floor_p99_ms"`
}

// RunResult is POST /run with models whose upstream takes a fixed delay.
type RunResult struct {
	WallP50Ms       float64 `json:"wall_p50_ms"`
	WallMaxMs       float64 `json:"wall_max_ms"`
	OverheadP50Ms   float64 `json:"overhead_p50_ms"`
	OverheadMaxMs   float64 `json:"overhead_max_ms"`
	DirectWallP50Ms float64 `json:"direct_concurrent_wall_p50_ms"`
	OverDirectP50Ms float64 `json:"over_direct_p50_ms"`
}

// MemoryResult is keygate's resident memory.
type MemoryResult struct {
	IdleRSSMiB     float64 `json:"idle_rss_mib"`
	StreamsRSSMiB  float64 `json:"streams_rss_mib"`
	StreamsPeakMiB float64 `json:"streams_peak_rss_mib"`
	PerStreamKiB   float64 `json:"per_stream_kib"`
	// FloorPerStreamKiB is the same figure for a fresh floor.
	FloorPerStreamKiB float64 `json:"floor_per_stream_kib"`
	// Per open stream, from keygate's Go runtime gauges (/metrics).
	GoroutinesPerStream float64 `json:"goroutines_per_stream"`
	StackKiBPerStream   float64 `json:"stack_kib_per_stream"`
	HeapKiBPerStream    float64 `json:"heap_inuse_kib_per_stream"`
	LoadPeakMiB         float64 `json:"load_phases_peak_rss_mib"`
	FloorLoadPeakMB     float64 `json:"floor_load_phases_peak_rss_mib"`
	// Curve is RSS per stream at several stream counts, fresh processes
	// each: -mem-counts, -open-streams and the scale phase's.
	Curve []CurvePoint `json:"per_stream_curve"`
}

// CPUResult is process CPU time (user+system) per request served during
// the throughput rounds.
type CPUResult struct {
	KeygateUs              float64 `json:"keygate_us_per_request"`
	FloorUs                float64 `json:"floor_us_per_request"`
	KeygateOverFloor       float64 `json:"keygate_over_floor"`
	PooledFloorUs          float64 `json:"pooled_floor_us_per_request"`
	KeygateOverPooledFloor float64 `json:"keygate_over_pooled_floor"`
	BenchDirectUs          float64 `json:"bench_process_us_per_direct_request"`
}

// Target is one goal of the issue and whether this run met it.
type Target struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	Want  string  `json:"want"`
	Met   bool    `json:"met"`
	// Why explains a target missed on purpose: another requirement wins.
	Why string `json:"why,omitempty"`
}

// exactRotationCost says why round-robin cannot be flat: issue #2 wants it
// exact under concurrency, which takes one shared atomic add per pick, and
// that cache line moves between cores on every pick when two of them pick
// back to back.
const exactRotationCost = "by design: exact round-robin takes one shared atomic per pick (BENCHMARKS.md, round-robin and the flat target)"

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// judge fills Targets from the figures.
func (r *Report) judge() {
	t := func(name, want string, v, limit float64) {
		met := v <= limit
		if want == ">=" {
			met = v >= limit
		}
		if math.IsNaN(v) {
			met = false
		}
		r.Targets = append(r.Targets, Target{Name: name, Value: round(v, 3), Limit: limit, Want: want, Met: met})
	}
	r.judgeEconomics(t)
	if x := r.Scale; x != nil {
		k := x.Targets["keygate"]
		n := strconv.Itoa(x.Streams)
		t("RSS per stream at "+n+" streams, KiB", "<=", k.PerStreamKiB, 48)
		t("RSS per stream at "+n+" streams, keygate/floor", "<=", x.KeygateOverFloorPerStream, 1.0)
		t("per-chunk delay p99 added by keygate at "+n+" streams, ms", "<=", k.AddedP99Ms, 1)
		steady := math.NaN() // not measured: no moment had them all open
		if k.SteadyChunks > 0 {
			steady = k.SteadyAddedP99Ms
		}
		t("per-chunk delay p99 added by keygate while all "+n+" streams are open, ms", "<=", steady, 1)
		t("streams cut through keygate at "+n+" streams", "<=", float64(k.Cut), 0)
		// Back to idle: at most a tenth of the burst's memory resident
		// 3 s after, and the goroutines of idle (a few of the runtime's
		// and the server's may come and go).
		t("share of the "+n+"-stream burst's memory keygate holds 3 s after", "<=", k.HeldAfter, 0.1)
		t("goroutines keygate has 3 s after the "+n+" streams, over idle", "<=", k.AfterGoroutines-k.IdleGoroutines, 5)
	}
	if x := r.Paired; x != nil && x.RateEach > 0 {
		// Both were sent the same rate: throughput is not theirs to win.
		t("passthrough CPU per request at "+strconv.Itoa(x.RateEach)+" req/s each, keygate/pooled floor, paired rounds (median)", "<=", x.Keygate.CPU.Median, 1.0)
	} else if x != nil {
		t("passthrough throughput, keygate/pooled floor, paired rounds (median)", ">=", x.Keygate.Throughput.Median, 1.0)
		t("passthrough CPU per request, keygate/pooled floor, paired rounds (median)", "<=", x.Keygate.CPU.Median, 1.0)
	}
	streamed := func() {
		t("per-chunk streaming delay p99 added by keygate, ms", "<=", r.Stream.Keygate.AddedP99Ms, 1)
		t("stream time to first event p99, keygate over the floor, ms", "<=", r.Stream.FirstEvent.KeygateOverFloorP99Ms, 0.2)
	}
	if len(r.Only) > 0 {
		if slices.Contains(r.Only, "stream") {
			streamed()
		}
		return
	}
	t("passthrough throughput, keygate/floor", ">=", r.Throughput.KeygateOverFloor, 0.9)
	for _, l := range r.Latency {
		if l.Rate == 1000 {
			t("added p99 at 1000 req/s, keygate/floor", "<=", l.KeygateOverFloorAddedP99, 1.5)
		}
	}
	streamed()
	t("/run overhead with 8 models (wall - 200 ms, p50), ms", "<=", r.Run.OverheadP50Ms, 5)
	t("RSS per open stream at 1000 streams, KiB", "<=", r.Memory.PerStreamKiB, 64)
	worst, allocs := 0.0, int64(0)
	for _, s := range r.Selection {
		worst = max(worst, s.NsPerOp1CPU, s.NsPerOp2CPU)
		allocs = max(allocs, s.AllocsPerOp)
	}
	t("key selection, worst ns/op at 1 or 2 CPUs", "<=", worst, 50)
	t("key selection allocs/op", "<=", float64(allocs), 0)
	for _, s := range r.Selection {
		t("key selection ns/op 2 CPUs / 1 CPU (flat), "+s.Strategy, "<=", s.TwoOverOne, 1.25)
		if last := &r.Targets[len(r.Targets)-1]; !last.Met && s.Strategy == keyring.NameRoundRobin {
			last.Why = exactRotationCost
		}
	}
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// judgeEconomics adds the targets of the budgets and economy figures
// measured.
func (r *Report) judgeEconomics(t func(name, want string, v, limit float64)) {
	if b := r.Budgets; b != nil {
		t("passthrough throughput, budgets on/off", ">=", b.RPSOnOverOff, 0.95)
		t("passthrough CPU per request, budgets on/off", "<=", b.CPUOnOverOff, 1.05)
		if ip := b.InProcess; ip != nil {
			t("in-process handler allocs per request, budgets on/off", "<=", ip.AllocsOnOverOff, 1.05)
		}
	}
	if e := r.Economy; e != nil && len(e.Runs) > 0 {
		t("free quota used before a free call was refused, budgets on", ">=", e.Runs[0].FreeShare, 0.95)
		t("credit used before a paid call was refused, budgets on", ">=", e.Runs[0].CreditShare, 0.95)
	}
}

// printEconomics writes the budgets and economy figures.
func (r *Report) printEconomics(w io.Writer) {
	if b := r.Budgets; b != nil {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
		p("passthrough, budgets\ton (60s polls)\toff (0)\ton/off\t")
		p("max throughput, req/s\t%.0f\t%.0f\t%.3f\t", b.OnRPS, b.OffRPS, b.RPSOnOverOff)
		p("CPU per request, µs\t%.1f\t%.1f\t%.3f\t", b.OnCPUUs, b.OffCPUUs, b.CPUOnOverOff)
		if ip := b.InProcess; ip != nil {
			p("in-process handler CPU per request, µs\t%.2f\t%.2f\t%.3f\t", ip.OnCPUUs, ip.OffCPUUs, ip.CPUOnOverOff)
			p("in-process handler allocs per request\t%.1f\t%.1f\t%.3f\t", ip.OnAllocs, ip.OffAllocs, ip.AllocsOnOverOff)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
	if e := r.Economy; e != nil {
		fmt.Fprintf(w, "key economics, a scripted day (%s UTC, seed %d): %d accounts, %d keys, %d clients; capacity %d free requests and $%.6f of credit; script %d calls (%d free)\n",
			e.Day, e.Seed, e.Accounts, e.Keys, e.Clients, e.FreeCapacity, e.CreditCapacityUSD, e.ScriptCalls, e.ScriptFreeCalls)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
		p("gateway\tfree used at 1st free refusal\tcredit used at 1st paid refusal\tcalls sent\tclient refusals\tupstream 402/429\tGET /key\t")
		for _, run := range e.Runs {
			p("%s\t%.1f %% (call %d)\t%.1f %% (call %d)\t%d\t%s\t%d\t%d\t", run.Name, 100*run.FreeShare, run.FirstFreeRefusal,
				100*run.CreditShare, run.FirstPaidRefusal, run.Calls, statusCounts(run.Refused), run.UpstreamRefusals, run.KeyReads)
		}
		_ = tw.Flush()
		fmt.Fprintln(w)
	}
}

// statusCounts prints a status count map as "402×3 503×1", by status.
func statusCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// rows writes the streamed figures as rows of a table whose columns are
// direct, floor, keygate and keygate against the floor.
func (st StreamResult) rows(p func(string, ...any)) {
	p("SSE chunk delay p50 / p99, ms\t%.3f / %.3f\t%.3f / %.3f\t%.3f / %.3f\t\t", st.Direct.P50Ms, st.Direct.P99Ms, st.Floor.P50Ms, st.Floor.P99Ms, st.Keygate.P50Ms, st.Keygate.P99Ms)
	p("SSE chunk delay added p50 / p99, ms\t-\t%.3f / %.3f\t%.3f / %.3f\t\t", st.Floor.AddedP50Ms, st.Floor.AddedP99Ms, st.Keygate.AddedP50Ms, st.Keygate.AddedP99Ms)
	fe := st.FirstEvent
	p("SSE first event p50 / p99, ms\t%.3f / %.3f\t%.3f / %.3f\t%.3f / %.3f\t%.3f (p99)\t", fe.Direct.P50Ms, fe.Direct.P99Ms, fe.Floor.P50Ms, fe.Floor.P99Ms, fe.Keygate.P50Ms, fe.Keygate.P99Ms, fe.KeygateOverFloorP99Ms)
}

// printTable writes the report for people.
func (r *Report) printTable(w io.Writer) {
	if len(r.Only) > 0 {
		fmt.Fprintf(w, "keygate benchmark, only %s: %d CPUs (%s), %s %s, %s; load average %.2f at start, %.2f at end\n\n",
			strings.Join(r.Only, ", "), r.Machine.NProc, r.Machine.CPU, r.Machine.Go, r.Machine.OS, r.Machine.Date, r.Machine.LoadStart, r.Machine.LoadEnd)
		r.printEconomics(w)
		if th, c := r.Throughput, r.CPU; th.KeygateRPS > 0 {
			fmt.Fprintf(w, "max throughput, req/s: direct %.0f, floor %.0f, floor+pool %.0f, keygate %.0f (keygate/floor %.3f, keygate/floor+pool %.3f)\n",
				th.DirectRPS, th.FloorRPS, th.PooledFloorRPS, th.KeygateRPS, th.KeygateOverFloor, th.KeygateOverPooledFloor)
			fmt.Fprintf(w, "CPU per request, µs: floor %.1f, floor+pool %.1f, keygate %.1f (keygate/floor %.3f, keygate/floor+pool %.3f)\n\n",
				c.FloorUs, c.PooledFloorUs, c.KeygateUs, c.KeygateOverFloor, c.KeygateOverPooledFloor)
		}
		if st := r.Stream; st.Samples > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
			p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
			p("chunk-delay phase, %d rounds\tdirect\tfloor\tkeygate\tkeygate-floor\t", r.Settings.Rounds)
			st.rows(p)
			_ = tw.Flush()
			fmt.Fprintln(w)
		}
		if r.Paired != nil {
			r.Paired.print(w)
		}
		if r.TLS != nil {
			r.TLS.print(w)
		}
		if r.Scale != nil {
			r.Scale.print(w)
		}
		r.printTargets(w)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	s := r.Settings
	fmt.Fprintf(w, "keygate benchmark: %d CPUs (%s), %s %s, %s; load average %.2f at start, %.2f at end\n",
		r.Machine.NProc, r.Machine.CPU, r.Machine.Go, r.Machine.OS, r.Machine.Date, r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(w, "load: vegeta in-process; %d interleaved rounds, medians; %d connections closed-loop for %.1fs; fixed rates for %.1fs\n\n",
		s.Rounds, s.Connections, s.ThroughputS, s.RateS)
	p("\tdirect\tfloor\tkeygate\tkeygate/floor\t")
	th := r.Throughput
	p("max throughput, req/s\t%.0f\t%.0f\t%.0f\t%.3f\t", th.DirectRPS, th.FloorRPS, th.KeygateRPS, th.KeygateOverFloor)
	for _, l := range r.Latency {
		p("%d req/s p50 / p99, ms\t%.3f / %.3f\t%.3f / %.3f\t%.3f / %.3f\t\t", l.Rate, l.Direct.P50Ms, l.Direct.P99Ms, l.Floor.P50Ms, l.Floor.P99Ms, l.Keygate.P50Ms, l.Keygate.P99Ms)
		p("%d req/s added p50 / p99, ms\t-\t%.3f / %.3f\t%.3f / %.3f\t%.3f (p99)\t", l.Rate, l.Floor.AddedP50Ms, l.Floor.AddedP99Ms, l.Keygate.AddedP50Ms, l.Keygate.AddedP99Ms, l.KeygateOverFloorAddedP99)
	}
	r.Stream.rows(p)
	c := r.CPU
	p("CPU per request, µs\t\t%.1f\t%.1f\t%.3f\t", c.FloorUs, c.KeygateUs, c.KeygateOverFloor)
	p("peak RSS during load phases, MiB\t\t%.1f\t%.1f\t\t", r.Memory.FloorLoadPeakMB, r.Memory.LoadPeakMiB)
	_ = tw.Flush()
	fmt.Fprintf(w, "stricter yardstick, the floor with pooled copy buffers: %.0f req/s (keygate/it %.3f), %.1f µs CPU per request (keygate/it %.3f)\n",
		th.PooledFloorRPS, th.KeygateOverPooledFloor, c.PooledFloorUs, c.KeygateOverPooledFloor)
	fmt.Fprintln(w)
	ru := r.Run
	fmt.Fprintf(w, "/run, %d models, upstream %.0f ms each, %d runs: wall p50 %.2f ms, max %.2f ms; overhead (wall - %.0f ms) p50 %.2f ms, max %.2f ms; same calls direct and concurrent p50 %.2f ms (keygate over that: %.2f ms)\n",
		s.RunModels, s.RunDelayMs, s.Runs, ru.WallP50Ms, ru.WallMaxMs, s.RunDelayMs, ru.OverheadP50Ms, ru.OverheadMaxMs, ru.DirectWallP50Ms, ru.OverDirectP50Ms)
	m := r.Memory
	fmt.Fprintf(w, "memory, %d open streams through a fresh keygate: idle RSS %.1f MiB, with streams %.1f MiB (peak %.1f MiB): %.1f KiB per stream"+
		" (%.1f goroutines, %.1f KiB of stacks, %.1f KiB of heap in use); the floor: %.1f KiB per stream\n",
		s.OpenStreams, m.IdleRSSMiB, m.StreamsRSSMiB, m.StreamsPeakMiB, m.PerStreamKiB, m.GoroutinesPerStream, m.StackKiBPerStream, m.HeapKiBPerStream,
		m.FloorPerStreamKiB)
	fmt.Fprintf(w, "bench process (load generator + upstream) CPU per direct request: %.1f µs\n\n", c.BenchDirectUs)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	p("key selection (4 keys, RunParallel)\tns/op 1 CPU\tns/op 2 CPUs\t2/1\tallocs/op\t")
	for _, x := range r.Selection {
		p("%s\t%.1f\t%.1f\t%.2f\t%d\t", x.Strategy, x.NsPerOp1CPU, x.NsPerOp2CPU, x.TwoOverOne, x.AllocsPerOp)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	r.printEconomics(w)
	if r.TLS != nil {
		r.TLS.print(w)
	}
	if r.Scale != nil {
		r.Scale.print(w)
	}
	r.printTargets(w)
}

// printTargets writes each target, met or missed, and how the run went.
func (r *Report) printTargets(w io.Writer) {
	for _, t := range r.Targets {
		mark := "MET   "
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "%s %s: %g (want %s %g)", mark, t.Name, t.Value, t.Want, t.Limit)
		if t.Why != "" {
			fmt.Fprintf(w, "; %s", t.Why)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nfinished in %.1fs; command: %s\n", r.ElapsedS, strings.TrimSpace(r.Command))
}
