package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"
)

// tinyChat is the request of the throughput and latency phases: a short,
// non-streamed chat completion.
var tinyChat = []byte(`{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say hi."}],"max_tokens":16}`)

// run measures everything; progress goes to log.
func run(ctx context.Context, o options, log io.Writer) (rep *Report, err error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	step := func(format string, a ...any) {
		fmt.Fprintf(log, "[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, a...))
	}
	rep = &Report{Machine: machine(), Settings: o.settings(4)}
	step("%s", fileLimitNote(raiseFileLimit()))
	if o.only != nil {
		return runOnly(ctx, o, rep, step, log, began)
	}

	step("key selection micro-benchmarks")
	if rep.Selection, err = measureSelection(o.benchtime); err != nil {
		return nil, err
	}

	step("building keygate and the floor")
	ws, err := newWorkspace(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, ws.close()) }()
	dir, kgBin, up := ws.dir, ws.kgBin, ws.up
	conns := max(o.conns, o.chunkStreams()) + 16
	procs, err := startLoadProcs(ctx, o, ws, conns)
	if err != nil {
		return nil, err
	}
	defer procs.stop()
	rep.pids = append(rep.pids, procs.pids()...)
	viaKeygate := procs.viaKeygate
	var kgOff *child
	if o.budgets {
		if kgOff, err = startKeygate(ctx, kgBin, dir, up.base, up.keys, "", envBudgetsOff); err != nil {
			return nil, err
		}
		defer kgOff.stop()
		rep.pids = append(rep.pids, kgOff.pid())
	}
	all := []*target{procs.direct, procs.viaFloor, viaKeygate}
	loop := append(all[:len(all):len(all)], procs.viaPooled)
	if kgOff != nil {
		loop = append(loop, keygateTarget(nameBudgetsOff, kgOff, conns))
	}

	step("warm-up")
	if err := warmUp(ctx, o, loop); err != nil {
		return nil, err
	}

	step("max throughput: %d rounds of %s, %d connections (%d targets)", o.rounds, o.tput, o.conns, len(loop))
	if err := throughput(ctx, o, loop, rep); err != nil {
		return nil, err
	}
	if rep.Budgets != nil {
		step("budgets on and off in process: %d rounds of %s each", o.inprocRounds, o.inprocRound)
		if rep.Budgets.InProcess, err = measureInProcessBudgets(ctx, o.inprocRounds, o.inprocRound); err != nil {
			return nil, err
		}
	}
	if procs.pprofAddr != "" {
		step("profiling keygate (and with -cpuprofile the pooled floor) for %s each", o.profileDur)
		if err := profile(ctx, o, procs); err != nil {
			return nil, err
		}
	}
	for _, rate := range o.rates {
		step("fixed rate %d req/s: %d rounds of %s", rate, o.rounds, o.rateDur)
		rep.Latency = append(rep.Latency, fixedRate(ctx, o, all, rate))
	}
	step("streaming: %d streams x %d chunks, %s apart, %d rounds", o.chunkStreams(), o.chunks, o.gap, o.rounds)
	if rep.Stream, err = streaming(ctx, o, all, up, log); err != nil {
		return nil, err
	}
	step("/run: %d models, upstream %s, %d runs", o.runModels, o.runDelay, o.runs)
	if rep.Run, err = runPhase(ctx, o, up, "http://"+procs.kg.addr+"/run"); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("redis-server"); err != nil && !o.noRedis {
		step("no redis-server on PATH: the Redis phase is left out")
	} else if !o.noRedis {
		if rep.Replicas, err = replicaPhase(ctx, o, kgBin, dir, up, step); err != nil {
			return nil, err
		}
	}
	if _, peak, err := memory(procs.kg.pid()); err == nil {
		rep.Memory.LoadPeakMiB = mib(peak)
	}
	if _, peak, err := memory(procs.floor.pid()); err == nil {
		rep.Memory.FloorLoadPeakMB = mib(peak)
	}
	procs.stop()
	kgOff.stop()

	if err := memoryStep(ctx, o, ws, rep, step); err != nil {
		return nil, err
	}
	if o.streams > scaleFrom {
		if err := scaleStep(ctx, o, o.streams, ws, rep, step); err != nil {
			return nil, err
		}
		rep.Memory.Curve = append(rep.Memory.Curve, CurvePoint{Streams: o.streams,
			FloorKiB: rep.Scale.Targets["floor"].PerStreamKiB, KeygateKiB: rep.Scale.Targets["keygate"].PerStreamKiB})
	}
	if o.tls {
		if err := tlsStep(ctx, o, ws, rep, step); err != nil {
			return nil, err
		}
	}
	if o.economy {
		if err := economyStep(ctx, o, rep, step); err != nil {
			return nil, err
		}
	}
	return finishReport(ctx, rep, step, began)
}

// The phases the full run and -only share, each with its log line.

// memoryStep is the open-streams memory phase.
func memoryStep(ctx context.Context, o options, ws *workspace, rep *Report, step func(string, ...any)) error {
	step("memory: %d open streams through a fresh floor, then a fresh keygate", o.openStreams)
	return memoryPhase(ctx, o, ws.kgBin, ws.floorBin, ws.dir, ws.up, rep)
}

// scaleStep is the scale phase at n streams.
func scaleStep(ctx context.Context, o options, n int, ws *workspace, rep *Report, step func(string, ...any)) (err error) {
	step("%d concurrent streams x %d chunks, %s apart: direct, a fresh floor, a fresh keygate", n, o.chunks, o.scaleGap)
	if rep.Scale, err = scalePhase(ctx, o, n, o.scaleGap, ws.kgBin, ws.floorBin, ws.dir, rep); err != nil {
		return fmt.Errorf("scale phase: %w", err)
	}
	return nil
}

// tlsStep is the TLS + HTTP/2 upstream phase.
func tlsStep(ctx context.Context, o options, ws *workspace, rep *Report, step func(string, ...any)) (err error) {
	step("TLS + HTTP/2 upstream: %d open streams through a fresh floor and keygate, then %d rounds of %s (4 targets)", o.openStreams, o.tlsRounds(), o.tput)
	if rep.TLS, err = tlsPhase(ctx, o, ws.kgBin, ws.floorBin, ws.dir); err != nil {
		return fmt.Errorf("TLS phase: %w", err)
	}
	rep.pids = append(rep.pids, rep.TLS.pids...)
	return nil
}

// economyStep is the key-economics day.
func economyStep(ctx context.Context, o options, rep *Report, step func(string, ...any)) (err error) {
	step("key economics: a scripted day through keygate, budgets on and off, and the first round's rules")
	rep.Economy, err = economy(ctx, o.day)
	return err
}

// finishReport stamps the run's end on rep and judges it.
func finishReport(ctx context.Context, rep *Report, step func(string, ...any), began time.Time) (*Report, error) {
	rep.ElapsedS = round(time.Since(began).Seconds(), 1)
	rep.Machine.LoadEnd = loadAverage()
	rep.judge()
	rep.judgeReplicas()
	step("done")
	return rep, ctx.Err()
}

func mib(b int64) float64 { return round(float64(b)/(1<<20), 1) }

// interleave returns the targets' order for round i: direct first, then
// the others, rotated by one each round so that none always runs first.
func interleave(all []*target, i int) []*target {
	rest := all[1:]
	out := []*target{all[0]}
	for j := range rest {
		out = append(out, rest[(i+j)%len(rest)])
	}
	return out
}

func (o options) pause(ctx context.Context) {
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
	}
}

// throughput runs the closed-loop rounds and the CPU accounting; with a
// keygate whose budgets are off among the targets, the budgets figure too.
func throughput(ctx context.Context, o options, all []*target, rep *Report) error {
	l, err := closedLoop(ctx, o, func(i int) []*target { return interleave(all, i) })
	if err != nil {
		return err
	}
	rounds := l.rounds
	th := &rep.Throughput
	th.Rounds, th.Failed = rounds, l.failed
	th.DirectRPS, th.FloorRPS, th.KeygateRPS = median(rounds["direct"]), median(rounds["floor"]), median(rounds["keygate"])
	th.KeygateOverFloor = round(th.KeygateRPS/th.FloorRPS, 3)
	th.PooledFloorRPS = median(rounds["floor+pool"])
	th.KeygateOverPooledFloor = round(th.KeygateRPS/th.PooledFloorRPS, 3)
	rep.CPU = CPUResult{KeygateUs: l.perReq("keygate"), FloorUs: l.perReq("floor"), PooledFloorUs: l.perReq("floor+pool"), BenchDirectUs: l.perReq("direct")}
	rep.CPU.KeygateOverFloor = round(rep.CPU.KeygateUs/rep.CPU.FloorUs, 3)
	rep.CPU.KeygateOverPooledFloor = round(rep.CPU.KeygateUs/rep.CPU.PooledFloorUs, 3)
	if _, ok := rounds[nameBudgetsOff]; ok {
		rep.Budgets = l.budgets()
	}
	return nil
}

// fixedRate measures latency at rate: per target the median over rounds
// of each percentile, and what floor and keygate add over direct.
func fixedRate(ctx context.Context, o options, all []*target, rate int) RateLatency {
	p50, p90, p99, got := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	failed := map[string]int{}
	for i := range o.rounds {
		for _, t := range interleave(all, i) {
			o.pause(ctx)
			s := attack(ctx, t, tinyChat, rate, o.rateDur, 32)
			p50[t.name] = append(p50[t.name], ms(s.quantile(0.50)))
			p90[t.name] = append(p90[t.name], ms(s.quantile(0.90)))
			p99[t.name] = append(p99[t.name], ms(s.quantile(0.99)))
			got[t.name] = append(got[t.name], s.rps())
			failed[t.name] += s.failed
		}
	}
	lat := func(name string) Lat {
		return Lat{P50Ms: round(median(p50[name]), 3), P90Ms: round(median(p90[name]), 3), P99Ms: round(median(p99[name]), 3),
			AchievedRPS: round(median(got[name]), 0), Failed: failed[name]}
	}
	rl := RateLatency{Rate: rate, Direct: lat("direct"), Floor: lat("floor"), Keygate: lat("keygate")}
	added(&rl.Floor, rl.Direct)
	added(&rl.Keygate, rl.Direct)
	rl.KeygateOverFloorAddedP99 = round(rl.Keygate.AddedP99Ms/rl.Floor.AddedP99Ms, 3)
	return rl
}

func added(l *Lat, direct Lat) {
	l.AddedP50Ms = round(l.P50Ms-direct.P50Ms, 3)
	l.AddedP99Ms = round(l.P99Ms-direct.P99Ms, 3)
}

// streaming measures per-chunk delays, pooled over rounds.
func streaming(ctx context.Context, o options, all []*target, up *upstream, log io.Writer) (StreamResult, error) {
	pooled, firsts := map[string][]time.Duration{}, map[string][]time.Duration{}
	failed := map[string]int{}
	for i := range o.rounds {
		for _, t := range interleave(all, i) {
			o.pause(ctx)
			d, f, err := chunkDelays(ctx, t, up, o.chunkStreams(), o.chunks, o.gap)
			var se *streamErrors
			switch {
			case errors.As(err, &se) && se.failed*10 <= se.of:
				// A stray failure is counted, not fatal.
				failed[t.name] += se.failed
				if t.logs != nil {
					fmt.Fprintf(log, "  %s: %v; %s log: %s\n", t.name, err, t.name, t.logs())
				}
			case err != nil:
				return StreamResult{}, fmt.Errorf("streaming through %s: %w", t.name, err)
			}
			pooled[t.name] = append(pooled[t.name], d...)
			firsts[t.name] = append(firsts[t.name], f...)
		}
	}
	latOf := func(pooled map[string][]time.Duration, name string) Lat {
		d := sortedCopy(pooled[name])
		return Lat{P50Ms: round(ms(quantile(d, 0.5)), 3), P99Ms: round(ms(quantile(d, 0.99)), 3), Failed: failed[name]}
	}
	lat := func(name string) Lat { return latOf(pooled, name) }
	r := StreamResult{Samples: len(pooled["keygate"]), Direct: lat("direct"), Floor: lat("floor"), Keygate: lat("keygate")}
	added(&r.Floor, r.Direct)
	added(&r.Keygate, r.Direct)
	fe := &r.FirstEvent
	fe.Direct, fe.Floor, fe.Keygate = latOf(firsts, "direct"), latOf(firsts, "floor"), latOf(firsts, "keygate")
	added(&fe.Floor, fe.Direct)
	added(&fe.Keygate, fe.Direct)
	fe.KeygateOverFloorP99Ms = round(fe.Keygate.P99Ms-fe.Floor.P99Ms, 3)
	return r, nil
}
