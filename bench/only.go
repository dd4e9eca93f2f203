package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// runOnly runs the phases of -only.
func runOnly(ctx context.Context, o options, rep *Report, step func(string, ...any), began time.Time) (_ *Report, err error) {
	rep.Only = slices.Sorted(maps.Keys(o.only))
	if o.only["budgets"] || o.only["tls"] || o.only["scale"] || o.only["memory"] || o.only["throughput"] {
		step("building keygate and the floor")
		ws, err := newWorkspace(ctx)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, ws.close()) }()
		dir, kgBin, floorBin, up := ws.dir, ws.kgBin, ws.floorBin, ws.up
		if o.only["throughput"] {
			step("max throughput: %d rounds of %s, %d connections (direct, floor, keygate, floor+pool)", o.rounds, o.tput, o.conns)
			if err := throughputOnly(ctx, o, ws, rep); err != nil {
				return nil, err
			}
		}
		if o.only["budgets"] {
			step("budgets on and off: %d alternating rounds of %s, %d connections", o.rounds, o.tput, o.conns)
			if err := budgetsOnly(ctx, o, kgBin, dir, up, rep); err != nil {
				return nil, err
			}
		}
		if o.only["memory"] {
			step("memory: %d streams open through the floor, then keygate", o.openStreams)
			if err := memoryPhase(ctx, o, kgBin, floorBin, dir, up, rep); err != nil {
				return nil, err
			}
		}
		if o.only["scale"] {
			n := o.streams // any count: -only scale -streams 100 is a short check
			step("%d concurrent streams x %d chunks, %s apart: direct, a fresh floor, a fresh keygate", n, o.chunks, o.scaleGap)
			if rep.Scale, err = scalePhase(ctx, o, n, o.scaleGap, kgBin, floorBin, dir, rep); err != nil {
				return nil, fmt.Errorf("scale phase: %w", err)
			}
		}
		if o.only["tls"] {
			step("TLS + HTTP/2 upstream: %d open streams through a fresh floor and keygate, then %d rounds of %s (4 targets)", o.openStreams, o.tlsRounds(), o.tput)
			if rep.TLS, err = tlsPhase(ctx, o, kgBin, floorBin, dir); err != nil {
				return nil, fmt.Errorf("TLS phase: %w", err)
			}
			rep.pids = append(rep.pids, rep.TLS.pids...)
		}
	}
	if o.only["redis"] {
		if rep.Replicas, err = redisOnly(ctx, o, step); err != nil {
			return nil, err
		}
	}
	if o.only["economy"] {
		step("key economics: a scripted day through keygate, budgets on and off, and the first round's rules")
		if rep.Economy, err = economy(ctx, o.day); err != nil {
			return nil, err
		}
	}
	rep.ElapsedS = round(time.Since(began).Seconds(), 1)
	rep.Machine.LoadEnd = loadAverage()
	rep.judge()
	rep.judgeReplicas()
	step("done")
	return rep, ctx.Err()
}
