package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// loadProcs are the proxies of the throughput rounds, started fresh over
// the workspace's upstream: the floor, the pooled floor and keygate with
// budgets on (its pprof listener on a port of its own when a profile is
// asked for), and the targets that drive them and the upstream directly.
type loadProcs struct {
	floor, pooled, kg                       *child
	pprofAddr                               string
	direct, viaFloor, viaKeygate, viaPooled *target
}

// startLoadProcs starts them, their clients sized for conns connections;
// on an error nothing of them is left running.
func startLoadProcs(ctx context.Context, o options, ws *workspace, conns int) (_ *loadProcs, err error) {
	l := &loadProcs{}
	defer func() {
		if err != nil {
			l.stop()
		}
	}()
	up := ws.up
	if l.floor, err = startFloor(ctx, ws.floorBin, ws.dir, up.base, up.keys[0], false); err != nil {
		return nil, err
	}
	if l.pooled, err = startFloor(ctx, ws.floorBin, ws.dir, up.base, up.keys[0], true); err != nil {
		return nil, err
	}
	if o.cpuProfile != "" || o.memProfile != "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		l.pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
	}
	if l.kg, err = startKeygate(ctx, ws.kgBin, ws.dir, up.base, up.keys, l.pprofAddr, envBudgetsOn); err != nil {
		return nil, err
	}
	l.direct = &target{name: "direct", url: up.base + "/chat/completions", client: newClient(conns),
		header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + up.keys[0]}}}
	l.viaFloor = keygateTarget("floor", l.floor, conns)
	l.viaKeygate = keygateTarget("keygate", l.kg, conns)
	l.viaPooled = keygateTarget("floor+pool", l.pooled, conns)
	return l, nil
}

// pids are the proxies' processes, for the report's CPU lines.
func (l *loadProcs) pids() []int { return []int{l.floor.pid(), l.pooled.pid(), l.kg.pid()} }

// stop stops the proxies started.
func (l *loadProcs) stop() {
	for _, c := range []*child{l.kg, l.pooled, l.floor} {
		if c != nil {
			c.stop()
		}
	}
}

// warmUp drives each target for o.warmup, and fails if one answers nothing.
func warmUp(ctx context.Context, o options, targets []*target) error {
	for _, t := range targets {
		if s := attack(ctx, t, tinyChat, 0, o.warmup, uint64(o.conns)); s.ok == 0 {
			return fmt.Errorf("warm-up of %s: no successful request (%d failed: %s)", t.name, s.failed, s.firstErr)
		}
	}
	return nil
}

// streamOnly is -only stream: the chunk-delay phase of the full run
// (per-chunk delay and first event, direct, the floor and keygate), to
// repeat #12's streamed figures without the other phases.
func streamOnly(ctx context.Context, o options, ws *workspace, rep *Report, log io.Writer) (err error) {
	l, err := startLoadProcs(ctx, o, ws, o.chunkStreams()+16)
	if err != nil {
		return err
	}
	defer l.stop()
	rep.pids = append(rep.pids, l.pids()...)
	all := []*target{l.direct, l.viaFloor, l.viaKeygate}
	if err := warmUp(ctx, o, all); err != nil {
		return err
	}
	rep.Stream, err = streaming(ctx, o, all, ws.up, log)
	return err
}

// throughputOnly is -only throughput: the closed-loop rounds of direct,
// the floor, the pooled floor and keygate with the CPU accounting, and
// keygate's profiles when -cpuprofile or -memprofile ask; the loop to
// iterate on goal 1 of the performance round without the other phases.
func throughputOnly(ctx context.Context, o options, ws *workspace, rep *Report) error {
	l, err := startLoadProcs(ctx, o, ws, o.conns+16)
	if err != nil {
		return err
	}
	defer l.stop()
	rep.pids = append(rep.pids, l.pids()...)
	all := []*target{l.direct, l.viaFloor, l.viaKeygate, l.viaPooled}
	if err := warmUp(ctx, o, all); err != nil {
		return err
	}
	if err := throughput(ctx, o, all, rep); err != nil {
		return err
	}
	if l.pprofAddr != "" {
		return profile(ctx, o, l)
	}
	return nil
}
