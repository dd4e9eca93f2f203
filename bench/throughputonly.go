package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// throughputOnly is -only throughput: the closed-loop rounds of direct,
// the floor, the pooled floor and keygate (budgets on) over up, with the
// CPU accounting, and keygate's profiles when -cpuprofile or -memprofile
// ask; the loop to iterate on goal 1 of the performance round without the
// other phases.
func throughputOnly(ctx context.Context, o options, kgBin, floorBin, dir string, up *upstream, rep *Report) error {
	floor, err := startFloor(ctx, floorBin, dir, up.base, up.keys[0], false)
	if err != nil {
		return err
	}
	defer floor.stop()
	pooled, err := startFloor(ctx, floorBin, dir, up.base, up.keys[0], true)
	if err != nil {
		return err
	}
	defer pooled.stop()
	pprofAddr := ""
	if o.cpuProfile != "" || o.memProfile != "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
	}
	kg, err := startKeygate(ctx, kgBin, dir, up.base, up.keys, pprofAddr, envBudgetsOn)
	if err != nil {
		return err
	}
	defer kg.stop()
	rep.pids = append(rep.pids, floor.pid(), pooled.pid(), kg.pid())
	conns := o.conns + 16
	direct := &target{name: "direct", url: up.base + "/chat/completions", client: newClient(conns),
		header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + up.keys[0]}}}
	viaKeygate := keygateTarget("keygate", kg, conns)
	all := []*target{direct, keygateTarget("floor", floor, conns), viaKeygate, keygateTarget("floor+pool", pooled, conns)}
	for _, t := range all {
		if s := attack(ctx, t, tinyChat, 0, o.warmup, uint64(o.conns)); s.ok == 0 {
			return fmt.Errorf("warm-up of %s: no successful request (%d failed: %s)", t.name, s.failed, s.firstErr)
		}
	}
	if err := throughput(ctx, o, all, rep); err != nil {
		return err
	}
	if pprofAddr != "" {
		return profile(ctx, o, viaKeygate, pprofAddr)
	}
	return nil
}
