// Command bench is keygate's load benchmark: `go run ./bench`.
//
// It serves the simulated upstream in its own process, builds and starts
// two proxies in front of it as child processes — the floor (a bare
// httputil.ReverseProxy that only injects a key, ./bench/floor) and keygate
// itself — and drives upstream direct, floor and keygate over loopback with
// vegeta as a library, in interleaved rounds. It prints a table and JSON:
// maximum throughput, latency at fixed rates and what each proxy adds over
// direct, the delay keygate adds to each streamed chunk, /run's overhead,
// keygate's memory per open stream, CPU time per request, and the cost of a
// key selection. With budgets it compares keygate with budgets on and off
// (BUDGET_POLL_INTERVAL 60s and 0) in the same rounds, and it runs a
// scripted day of free and paid calls over the simulator, in process on a
// moved clock, for the share of the pool's free quota and credit served
// before the first refusal (-only economy,budgets runs just those). Every
// phase is bounded in time; the whole run takes about three minutes on two
// cores. A phase puts the upstream behind TLS and HTTP/2; -streams 10000
// adds the scale phase; -charts DIR writes SVG charts of the figures.
// BENCHMARKS.md explains the method and holds a run's results.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the bench's flags.
type options struct {
	rounds    int
	conns     int
	warmup    time.Duration
	tput      time.Duration
	rateDur   time.Duration
	rates     []int
	settle    time.Duration
	memSettle time.Duration // before reading idle RSS
	streams   int
	chunks    int
	gap       time.Duration
	// scaleGap spaces the chunks of the scale phase's streams.
	scaleGap time.Duration
	// scaleRamp, when longer than scaleGap, spreads the scale phase's
	// stream starts over it; scaleH2 caps the upstream's HTTP/2 streams
	// per connection there (0: all on one connection).
	scaleRamp   time.Duration
	scaleH2     int
	runs        int
	runModels   int
	runDelay    time.Duration
	openStreams int
	// memCounts are the other stream counts of the memory curve.
	memCounts  []int
	benchtime  time.Duration
	profileDur time.Duration
	timeout    time.Duration
	// noRedis leaves the Redis phase out; restSamples is how many rests
	// it times.
	noRedis     bool
	restSamples int
	// redisControl starts the Redis phase's "set" keygate without
	// REDIS_URL too: an A/A run whose ratios are the phase's own noise.
	redisControl bool
	jsonOut      string
	// charts, when set, is the directory the SVG charts go to.
	charts     string
	cpuProfile string
	memProfile string
	// pairedAgainst, when set, is a keygate binary the paired rounds'
	// control loads beside this tree's keygate.
	pairedAgainst string
	// pairedRate, when above 0, sends each process of a paired round this
	// many requests a second instead of loading it in a closed loop, so
	// that CPU per request is compared at the same load.
	pairedRate int
	// budgets adds a keygate with budgets off to the throughput rounds;
	// economy runs the scripted day of the key-economics figure.
	budgets bool
	economy bool
	// tls runs the phase with the upstream behind TLS and HTTP/2.
	tls bool
	// inprocRounds rounds of inprocRound each time keygate's handler in
	// process, budgets on and off.
	inprocRounds int
	inprocRound  time.Duration
	day          dayPlan
	// only, when set, runs just these of the phases named in onlyPhases.
	only map[string]bool
}

// onlyPhases are the phases -only can pick.
var onlyPhases = []string{"budgets", "economy", "memory", "paired", "redis", "scale", "stream", "throughput", "tls"}

func defaultOptions() options {
	return options{
		rounds: 3, conns: 32, warmup: time.Second, tput: 2 * time.Second, rateDur: 2 * time.Second,
		rates: []int{1000, 3000}, settle: 200 * time.Millisecond, memSettle: 500 * time.Millisecond,
		streams: 50, chunks: 50, gap: 20 * time.Millisecond, scaleGap: defaultScaleGap,
		runs: 10, runModels: 8, runDelay: 200 * time.Millisecond,
		openStreams: 1000, memCounts: []int{100}, benchtime: time.Second, profileDur: 5 * time.Second,
		timeout: 240 * time.Second,
		budgets: true, economy: true, tls: true, day: fullDay(), inprocRounds: 6, inprocRound: 400 * time.Millisecond,
	}
}

// quickOptions is -quick: every phase shortened to a smoke run of a few
// seconds, for the bench's own tests. Its figures are not meaningful.
func quickOptions() options {
	o := defaultOptions()
	o.restSamples = 5
	o.rounds, o.warmup, o.tput, o.rateDur = 1, 100*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	o.settle, o.memSettle = 20*time.Millisecond, 50*time.Millisecond
	o.streams, o.chunks, o.gap = 4, 5, 10*time.Millisecond
	o.runs, o.openStreams, o.benchtime, o.profileDur = 2, 50, 10*time.Millisecond, time.Second
	o.memCounts = []int{10}
	o.timeout = 60 * time.Second
	o.day = tinyDay()
	o.inprocRounds, o.inprocRound = 1, 50*time.Millisecond
	return o
}

func main() {
	os.Exit(mainCode(os.Args[1:], os.Stdout, os.Stderr))
}

func mainCode(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stderr, "bench: running (about %s; -h for the phases)...\n", estimate(o).Round(time.Second))
	rep, err := run(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	rep.Command = "go run ./bench " + strings.Join(args, " ")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep ">=" readable
	enc.SetIndent("", "  ")
	err = enc.Encode(rep)
	js := bytes.TrimSpace(buf.Bytes())
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	rep.printTable(stdout)
	if rep.Replicas != nil {
		rep.Replicas.print(stdout)
	}
	fmt.Fprintf(stdout, "\n%s\n", js)
	if o.jsonOut != "" {
		if err := os.WriteFile(o.jsonOut, append(js, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	}
	if o.charts != "" {
		files, err := writeCharts(o.charts, rep)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "bench: charts %s\n", strings.Join(files, ", "))
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "a smoke run of a few seconds (for tests; figures not meaningful)")
	d := defaultOptions()
	o := d
	fs.IntVar(&o.rounds, "rounds", d.rounds, "interleaved rounds per phase (medians are reported)")
	fs.IntVar(&o.conns, "conns", d.conns, "connections (workers) of the closed-loop throughput phase")
	fs.DurationVar(&o.warmup, "warmup", d.warmup, "closed-loop warm-up per target")
	fs.DurationVar(&o.tput, "tput", d.tput, "duration of a throughput round (2s, down from 2.5s, keeps the default run with the TLS phase near three minutes)")
	fs.DurationVar(&o.rateDur, "rate-dur", d.rateDur, "duration of a fixed-rate round (2s, down from 2.5s, as -tput)")
	rates := fs.String("rates", "1000,3000", "fixed rates, requests per second")
	fs.IntVar(&o.streams, "streams", d.streams, "concurrent streams of the chunk-delay phase; above 1000 (e.g. 10000) it runs the scale phase instead at that many, direct, through a fresh floor and a fresh keygate (memory, goroutines, cut streams), and the chunk-delay phase keeps 50")
	fs.IntVar(&o.chunks, "chunks", d.chunks, "chunks per stream")
	fs.DurationVar(&o.gap, "gap", d.gap, "upstream gap between chunks")
	fs.DurationVar(&o.scaleGap, "scale-gap", d.scaleGap, "upstream gap between the chunks of the scale phase's streams (-streams above 1000): at 10000 streams, 200ms is 50,000 chunks a second, which saturates two cores; 1s is 10,000")
	fs.DurationVar(&o.scaleRamp, "scale-ramp", 0, "spread the scale phase's stream starts over this long (default: one -scale-gap)")
	fs.IntVar(&o.scaleH2, "scale-h2-streams", 0, "cap the upstream's HTTP/2 streams per connection in the scale phase, so that the proxies open many connections (0: all on one; Go's servers default to 250)")
	fs.IntVar(&o.runs, "runs", d.runs, "POST /run calls")
	fs.IntVar(&o.openStreams, "open-streams", d.openStreams, "streams held open for the memory phase")
	memCounts := fs.String("mem-counts", "100", "other stream counts, comma-separated, at which memory per stream is read for the curve (a fresh floor and keygate each)")
	fs.DurationVar(&o.benchtime, "benchtime", d.benchtime, "time per key-selection benchmark")
	fs.DurationVar(&o.profileDur, "profile-dur", d.profileDur, "length of the extra keygate round profiled for -cpuprofile")
	fs.DurationVar(&o.timeout, "timeout", d.timeout, "bound on the whole run")
	noRedis := fs.Bool("no-redis", false, "leave out the Redis phase (REDIS_URL set vs unset, a rest's way to another replica; it needs redis-server)")
	fs.BoolVar(&o.redisControl, "redis-control", false, "an A/A run of the Redis phase: its \"set\" keygate starts without REDIS_URL too, so that its ratios show how far two identical keygates differ in this phase")
	rests := fs.Int("rests", 60, "rests timed from one replica to another in the Redis phase (60, down from 100, for the three minutes)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the JSON report to this file")
	fs.StringVar(&o.charts, "charts", "", "write SVG charts of this run's figures into this directory (e.g. docs/bench): "+
		strings.Join([]string{chartThroughput, chartCPU, chartLatency, chartMemory}, ", "))
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of keygate (an extra closed-loop round) to this file, and one of the pooled floor beside it (NAME.floor.EXT) to diff against (go tool pprof -diff_base NAME.floor.EXT NAME.EXT)")
	fs.BoolVar(&o.budgets, "budgets", d.budgets, "also run keygate with budgets off (BUDGET_POLL_INTERVAL=0) in the throughput rounds")
	fs.BoolVar(&o.economy, "economy", d.economy, "run the key-economics day (in process, a few seconds)")
	fs.BoolVar(&o.tls, "tls", d.tls, "run the phase with the upstream behind TLS and HTTP/2 (throughput, CPU, memory per stream, upstream connections)")
	fs.StringVar(&o.pairedAgainst, "paired-against", "", "with -only paired, make the control pair this tree's keygate beside the keygate binary at this path (an A/B of a change: go build -o /tmp/kg-before . on the commit before it)")
	fs.IntVar(&o.pairedRate, "paired-rate", 0, "with -only paired, send each process this many requests a second (open loop) instead of loading it in a closed loop, so that CPU per request is compared at one load (0: closed loop)")
	only := fs.String("only", "", "run only these phases, comma-separated: "+strings.Join(onlyPhases, ", "))
	fs.StringVar(&o.memProfile, "memprofile", "", "write keygate's allocation profile after the load phases to this file, and its in-use heap with the streams open beside it (NAME.streams.EXT); with the scale phase, also keygate's heap and goroutines 3 s after its streams (NAME.after-scale.EXT, NAME.after-scale-goroutines.EXT)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *quick {
		q := quickOptions()
		q.jsonOut, q.cpuProfile, q.memProfile, q.charts = o.jsonOut, o.cpuProfile, o.memProfile, o.charts
		q.budgets, q.economy, q.tls = o.budgets, o.economy, o.tls
		q.scaleRamp, q.scaleH2, q.pairedAgainst, q.pairedRate = o.scaleRamp, o.scaleH2, o.pairedAgainst, o.pairedRate
		if o.streams > scaleFrom {
			q.streams = o.streams
		}
		o = q
	} else {
		var err error
		if o.memCounts, err = positiveInts(*memCounts); err != nil {
			fmt.Fprintf(stderr, "bench: bad -mem-counts %q\n", *memCounts)
			return o, err
		}
		o.rates = nil
		for r := range strings.SplitSeq(*rates, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(r))
			if err != nil || n <= 0 {
				fmt.Fprintf(stderr, "bench: bad -rates %q\n", *rates)
				return o, errors.New("bad -rates")
			}
			o.rates = append(o.rates, n)
		}
	}
	o.noRedis = *noRedis
	if !*quick {
		o.restSamples = *rests
	}
	if *only != "" {
		o.only = map[string]bool{}
		for name := range strings.SplitSeq(*only, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(onlyPhases, name) {
				fmt.Fprintf(stderr, "bench: -only %q: want some of %s\n", name, strings.Join(onlyPhases, ", "))
				return o, errors.New("bad -only")
			}
			o.only[name] = true
		}
	}
	// Only the paired rounds read these: elsewhere they would change
	// nothing, and a run meant as an A/B would measure something else.
	if (o.pairedAgainst != "" || o.pairedRate != 0) && !o.only["paired"] {
		fmt.Fprintln(stderr, "bench: -paired-against and -paired-rate apply to the paired rounds: add -only paired")
		return o, errors.New("-paired-against or -paired-rate without -only paired")
	}
	if o.redisControl && (o.noRedis || (o.only != nil && !o.only["redis"])) {
		fmt.Fprintln(stderr, "bench: -redis-control applies to the Redis phase: drop -no-redis, or add redis to -only")
		return o, errors.New("-redis-control without the Redis phase")
	}
	if o.pairedRate < 0 {
		fmt.Fprintln(stderr, "bench: -paired-rate must not be negative (0: closed loop)")
		return o, flag.ErrHelp
	}
	if o.rounds < 1 || o.conns < 1 || o.streams < 1 || o.chunks < 2 || o.runs < 1 || o.openStreams < 1 || o.scaleH2 < 0 || o.scaleRamp < 0 {
		fmt.Fprintln(stderr, "bench: -rounds, -conns, -streams, -runs, -open-streams must be positive, -chunks at least 2, -scale-ramp and -scale-h2-streams not negative")
		return o, flag.ErrHelp
	}
	return o, nil
}

// positiveInts parses a comma-separated list of positive integers; empty
// gives none.
func positiveInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// tlsRounds are the TLS phase's closed-loop rounds: one fewer than the
// others', to keep the default run under three minutes.
func (o options) tlsRounds() int { return max(1, o.rounds-1) }

// chunkStreams is the chunk-delay phase's concurrency: -streams, unless
// that asks for the scale phase.
func (o options) chunkStreams() int {
	if o.streams > scaleFrom {
		return defaultStreams
	}
	return o.streams
}

// estimate is roughly how long the measuring takes, build excluded.
func estimate(o options) time.Duration {
	per := func(d time.Duration) time.Duration { return d + o.settle }
	econ := time.Duration(0)
	if o.economy || o.only["economy"] {
		econ = 5 * time.Second
	}
	if o.only != nil {
		t := econ
		if o.only["budgets"] {
			t += 2*per(o.warmup) + time.Duration(2*o.rounds)*per(o.tput) + time.Duration(2*o.inprocRounds)*o.inprocRound
		}
		if o.only["tls"] {
			t += 2*per(o.warmup) + time.Duration(4*o.tlsRounds())*per(o.tput) + 5*time.Second
		}
		if o.only["paired"] {
			t += 3*per(o.warmup) + time.Duration(2*o.rounds)*per(o.tput)
		}
		if o.only["stream"] {
			t += 3*per(o.warmup) + time.Duration(3*o.rounds*o.chunks)*o.gap
		}
		if o.only["scale"] {
			t += 3*(time.Duration(o.chunks)*o.scaleGap+o.scaleRamp) + 2*scaleAfter + 20*time.Second
		}
		return t
	}
	t := 3*per(o.warmup) + time.Duration(3*o.rounds)*per(o.tput) + econ
	if o.budgets {
		t += per(o.warmup) + time.Duration(o.rounds)*per(o.tput) + time.Duration(2*o.inprocRounds)*o.inprocRound
	}
	t += time.Duration(3*o.rounds*len(o.rates)) * per(o.rateDur)
	t += time.Duration(3*o.rounds*o.chunks) * o.gap
	t += time.Duration(2*o.runs) * o.runDelay
	if o.streams > scaleFrom {
		t += 3*(time.Duration(o.chunks)*o.scaleGap+o.scaleRamp) + 2*scaleAfter + 20*time.Second
	}
	if o.tls {
		t += 2*per(o.warmup) + time.Duration(4*o.tlsRounds())*per(o.tput) + 5*time.Second
	}
	t += 6*o.benchtime + 5*time.Second
	if !o.noRedis {
		t += time.Duration(5*o.rounds)*per(o.tput) + time.Duration(o.restSamples)*100*time.Millisecond
	}
	return t
}

func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Date: time.Now().UTC().Format(time.RFC3339), LoadStart: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func (o options) settings(keys int) Settings {
	return Settings{
		Rounds: o.rounds, Connections: o.conns, ThroughputS: o.tput.Seconds(), RateS: o.rateDur.Seconds(),
		Streams: o.streams, Chunks: o.chunks, ChunkGapMs: ms(o.gap), Runs: o.runs, RunModels: o.runModels,
		RunDelayMs: ms(o.runDelay), OpenStreams: o.openStreams, UpstreamKeys: keys, KeygateRotate: "random",
	}
}

// loadAverage is the 1-minute load average: other work on the machine
// skews every figure, and this shows whether there was any.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return -1
	}
	return v
}
