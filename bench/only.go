package main

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"time"
)

// runOnly runs the phases of -only.
func runOnly(ctx context.Context, o options, rep *Report, step func(string, ...any), log io.Writer, began time.Time) (_ *Report, err error) {
	rep.Only = slices.Sorted(maps.Keys(o.only))
	if o.only["budgets"] || o.only["tls"] || o.only["scale"] || o.only["memory"] || o.only["throughput"] || o.only["paired"] || o.only["stream"] {
		step("building keygate and the floor")
		ws, err := newWorkspace(ctx)
		if err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, ws.close()) }()
		dir, kgBin, up := ws.dir, ws.kgBin, ws.up
		if o.only["throughput"] {
			step("max throughput: %d rounds of %s, %d connections (direct, floor, keygate, floor+pool)", o.rounds, o.tput, o.conns)
			if err := throughputOnly(ctx, o, ws, rep); err != nil {
				return nil, err
			}
		}
		if o.only["paired"] {
			control := "the pooled floor beside a second one"
			if o.pairedAgainst != "" {
				control = "keygate beside the keygate of " + o.pairedAgainst
			}
			step("paired rounds: %d of %s, keygate beside the pooled floor, then %s, %s", o.rounds, o.tput, control, pairedLoad(max(o.conns/2, 1), o.pairedRate))
			if err := pairedOnly(ctx, o, ws, rep); err != nil {
				return nil, err
			}
		}
		if o.only["stream"] {
			step("streaming: %d streams x %d chunks, %s apart, %d rounds (direct, floor, keygate)", o.chunkStreams(), o.chunks, o.gap, o.rounds)
			if err := streamOnly(ctx, o, ws, rep, log); err != nil {
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
			if err := memoryStep(ctx, o, ws, rep, step); err != nil {
				return nil, err
			}
		}
		if o.only["scale"] {
			// Any count: -only scale -streams 100 is a short check.
			if err := scaleStep(ctx, o, o.streams, ws, rep, step); err != nil {
				return nil, err
			}
		}
		if o.only["tls"] {
			if err := tlsStep(ctx, o, ws, rep, step); err != nil {
				return nil, err
			}
		}
	}
	if o.only["redis"] {
		if rep.Replicas, err = redisOnly(ctx, o, step); err != nil {
			return nil, err
		}
	}
	if o.only["economy"] {
		if err := economyStep(ctx, o, rep, step); err != nil {
			return nil, err
		}
	}
	return finishReport(ctx, rep, step, began)
}
