package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

// Names of the two keygates the budgets figure compares. The first is the
// keygate of every other phase.
const (
	nameBudgetsOn  = "keygate"
	nameBudgetsOff = "keygate, budgets off"
)

// Settings of the two keygates: budgets on is the default poll interval,
// spelled out; off never reads GET /key.
var (
	envBudgetsOn  = "BUDGET_POLL_INTERVAL=60s"
	envBudgetsOff = "BUDGET_POLL_INTERVAL=0"
)

// BudgetsResult is the passthrough's throughput and CPU per request with
// budgets on (GET /key polled, every answer's usage.cost taken off the
// key's cap) and off, from the same interleaved closed-loop rounds.
type BudgetsResult struct {
	OnRPS        float64 `json:"budgets_on_rps"`
	OffRPS       float64 `json:"budgets_off_rps"`
	RPSOnOverOff float64 `json:"rps_on_over_off"`
	OnCPUUs      float64 `json:"budgets_on_cpu_us_per_request"`
	OffCPUUs     float64 `json:"budgets_off_cpu_us_per_request"`
	CPUOnOverOff float64 `json:"cpu_on_over_off"`
	// Rounds are each round's req/s, by keygate.
	Rounds map[string][]float64 `json:"rounds_rps"`
	Failed map[string]int       `json:"failed"`
	// InProcess is the handler's own cost, measured without the network.
	InProcess *InProcessBudgets `json:"in_process,omitempty"`
}

// loopTotals are what closed-loop rounds measured, by target name.
type loopTotals struct {
	rounds map[string][]float64
	failed map[string]int
	cpu    map[string]time.Duration
	served map[string]int
}

// perReq is the CPU time per successful request of target name, in µs.
func (l loopTotals) perReq(name string) float64 {
	return round(float64(l.cpu[name].Microseconds())/float64(max(l.served[name], 1)), 2)
}

// budgets is the BudgetsResult of rounds that ran both keygates.
func (l loopTotals) budgets() *BudgetsResult {
	b := &BudgetsResult{OnRPS: median(l.rounds[nameBudgetsOn]), OffRPS: median(l.rounds[nameBudgetsOff]),
		OnCPUUs: l.perReq(nameBudgetsOn), OffCPUUs: l.perReq(nameBudgetsOff),
		Rounds: map[string][]float64{nameBudgetsOn: l.rounds[nameBudgetsOn], nameBudgetsOff: l.rounds[nameBudgetsOff]},
		Failed: map[string]int{nameBudgetsOn: l.failed[nameBudgetsOn], nameBudgetsOff: l.failed[nameBudgetsOff]}}
	b.RPSOnOverOff = round(b.OnRPS/b.OffRPS, 3)
	b.CPUOnOverOff = round(b.OnCPUUs/b.OffCPUUs, 3)
	return b
}

// closedLoop runs o.rounds closed-loop rounds over the targets in the
// order order gives for each round, and adds up the CPU time of each
// target's process (the bench's own for direct).
func closedLoop(ctx context.Context, o options, order func(round int) []*target) (loopTotals, error) {
	l := loopTotals{rounds: map[string][]float64{}, failed: map[string]int{}, cpu: map[string]time.Duration{}, served: map[string]int{}}
	for i := range o.rounds {
		for _, t := range order(i) {
			o.pause(ctx)
			pid := t.pid
			if pid == 0 {
				pid = os.Getpid()
			}
			before, err := cpuTime(pid)
			if err != nil {
				return l, err
			}
			s := attack(ctx, t, tinyChat, 0, o.tput, uint64(o.conns))
			after, err := cpuTime(pid)
			if err != nil {
				return l, err
			}
			if ctx.Err() != nil {
				return l, ctx.Err()
			}
			l.rounds[t.name] = append(l.rounds[t.name], round(s.rps(), 0))
			l.failed[t.name] += s.failed
			l.cpu[t.name] += after - before
			l.served[t.name] += s.ok
		}
	}
	return l, nil
}

// alternate orders two targets so that each goes first every other round.
func alternate(a, b *target) func(int) []*target {
	return func(i int) []*target {
		if i%2 == 1 {
			return []*target{b, a}
		}
		return []*target{a, b}
	}
}

// keygateTarget is keygate c's chat completions as a load target.
func keygateTarget(name string, c *child, conns int) *target {
	return &target{name: name, url: "http://" + c.addr + "/v1/chat/completions", pid: c.pid(), client: newClient(conns),
		header: http.Header{"Content-Type": {"application/json"}}, logs: c.errs.String}
}

// budgetsOnly is -only budgets: two fresh keygates over up, budgets on and
// off, warmed up and then driven in alternating closed-loop rounds.
func budgetsOnly(ctx context.Context, o options, kgBin, dir string, up *upstream, rep *Report) error {
	on, err := startKeygate(ctx, kgBin, dir, up.base, up.keys, "", envBudgetsOn)
	if err != nil {
		return err
	}
	defer on.stop()
	off, err := startKeygate(ctx, kgBin, dir, up.base, up.keys, "", envBudgetsOff)
	if err != nil {
		return err
	}
	defer off.stop()
	rep.pids = append(rep.pids, on.pid(), off.pid())
	tOn, tOff := keygateTarget(nameBudgetsOn, on, o.conns+16), keygateTarget(nameBudgetsOff, off, o.conns+16)
	for _, t := range []*target{tOn, tOff} {
		if s := attack(ctx, t, tinyChat, 0, o.warmup, uint64(o.conns)); s.ok == 0 {
			return fmt.Errorf("warm-up of %s: no successful request (%d failed: %s)", t.name, s.failed, s.firstErr)
		}
	}
	l, err := closedLoop(ctx, o, alternate(tOn, tOff))
	if err != nil {
		return err
	}
	rep.Budgets = l.budgets()
	rep.Budgets.InProcess, err = measureInProcessBudgets(ctx, o.inprocRounds, o.inprocRound)
	return err
}
