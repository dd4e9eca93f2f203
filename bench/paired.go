package main

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// PairedResult is goal 1 measured side by side in time: keygate and the
// pooled floor loaded at once, half the connections each, so that in every
// round both meet the same machine (steal, the bench's own load, other
// work), which one after the other they do not. The control pairs the
// pooled floor with a second one of its kind in the same rounds: its
// ratios would be 1 on a perfect machine, and their spread is the method's.
// With -paired-against, the control is instead keygate against another
// build of it, for an A/B of a change. With -paired-rate both processes of
// a pair are sent the same fixed rate: in a closed loop the one that takes
// the larger share of the cores also batches more of its work per wakeup,
// so its CPU per request is that of a different load.
type PairedResult struct {
	Rounds          int `json:"rounds"`
	ConnectionsEach int `json:"connections_each"`
	// RateEach is each process's requests a second; 0 for a closed loop.
	RateEach int         `json:"rate_each,omitempty"`
	Keygate  PairedRatio `json:"keygate_over_pooled_floor"`
	// ControlName says what Control is first over second.
	ControlName string      `json:"control_name"`
	Control     PairedRatio `json:"control"`
}

// PairedRatio is one pair's ratios, first over second, over the rounds.
type PairedRatio struct {
	CPU        Spread `json:"cpu_per_request"`
	Throughput Spread `json:"throughput"`
	// FirstUs and SecondUs are the two processes' CPU per request over all
	// rounds, FirstRPS and SecondRPS their median throughputs.
	FirstUs   float64 `json:"first_us_per_request"`
	SecondUs  float64 `json:"second_us_per_request"`
	FirstRPS  float64 `json:"first_rps"`
	SecondRPS float64 `json:"second_rps"`
	// The same CPU split into the process's own (user) and the kernel's
	// (system), and the context switches of its threads, per request over
	// all rounds: what a change saves shows in one or the other.
	FirstUserUs    float64 `json:"first_user_us_per_request"`
	FirstSysUs     float64 `json:"first_system_us_per_request"`
	SecondUserUs   float64 `json:"second_user_us_per_request"`
	SecondSysUs    float64 `json:"second_system_us_per_request"`
	FirstSwitches  float64 `json:"first_context_switches_per_request"`
	SecondSwitches float64 `json:"second_context_switches_per_request"`
	Failed         int     `json:"failed"`
}

// Spread is a ratio's median over the rounds, with its least and greatest.
type Spread struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Rounds []float64 `json:"rounds"`
}

func spreadOf(xs []float64) Spread {
	s := Spread{Median: round(median(xs), 3), Rounds: xs}
	for i, x := range xs {
		if i == 0 || x < s.Min {
			s.Min = x
		}
		if i == 0 || x > s.Max {
			s.Max = x
		}
	}
	return s
}

// pair is two targets loaded at once, and what their rounds measured.
type pair struct {
	first, second *target
	cpu, rps      []float64
	// cpuUs and served are totals over the rounds, for the per-request
	// figures; rpsEach is each target's throughput per round.
	cpuUs   [2]float64
	served  [2]int
	rpsEach [2][]float64
	failed  int
	// userUs, sysUs and switches are totals over the rounds too.
	userUs, sysUs, switches [2]float64
}

// round loads both targets at once for o.tput, with conns workers each in
// a closed loop or at o.pairedRate each, and records the ratios of their
// CPU per request and throughput.
func (p *pair) round(ctx context.Context, o options, conns int) error {
	ts := [2]*target{p.first, p.second}
	var before [2]procUsage
	for i, t := range ts {
		u, err := usageOf(t.pid)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		before[i] = u
	}
	var got [2]sample
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { got[i] = attack(ctx, t, tinyChat, o.pairedRate, o.tput, uint64(conns)) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var us [2]float64
	for i, t := range ts {
		u, err := usageOf(t.pid)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		u = u.since(before[i])
		spent := u.userUs + u.sysUs
		s := got[i]
		p.failed += s.failed
		if s.ok == 0 {
			return fmt.Errorf("paired round of %s: no successful request (%d failed: %s)", t.name, s.failed, s.firstErr)
		}
		us[i] = spent / float64(s.ok)
		p.cpuUs[i] += spent
		p.userUs[i] += u.userUs
		p.sysUs[i] += u.sysUs
		p.switches[i] += u.switches
		p.served[i] += s.ok
		p.rpsEach[i] = append(p.rpsEach[i], s.rps())
	}
	for i, t := range ts {
		if us[i] <= 0 {
			// A round shorter than the clock's tick: no ratio to take.
			return fmt.Errorf("paired round: no CPU time counted for %s", t.name)
		}
	}
	p.cpu = append(p.cpu, round(us[0]/us[1], 3))
	p.rps = append(p.rps, round(got[0].rps()/got[1].rps(), 3))
	return nil
}

func (p *pair) result() PairedRatio {
	per := func(total float64, i int) float64 { return round(total/float64(p.served[i]), 1) }
	return PairedRatio{
		CPU: spreadOf(p.cpu), Throughput: spreadOf(p.rps),
		FirstUs: per(p.cpuUs[0], 0), SecondUs: per(p.cpuUs[1], 1),
		FirstRPS: round(median(p.rpsEach[0]), 0), SecondRPS: round(median(p.rpsEach[1]), 0),
		FirstUserUs: per(p.userUs[0], 0), FirstSysUs: per(p.sysUs[0], 0),
		SecondUserUs: per(p.userUs[1], 1), SecondSysUs: per(p.sysUs[1], 1),
		FirstSwitches: per(p.switches[0], 0), SecondSwitches: per(p.switches[1], 1),
		Failed: p.failed,
	}
}

// procUsage is what a process has used so far: CPU in µs, user and
// system, and its threads' context switches.
type procUsage struct{ userUs, sysUs, switches float64 }

func usageOf(pid int) (procUsage, error) {
	user, sys, err := cpuTimes(pid)
	if err != nil {
		return procUsage{}, err
	}
	n, err := contextSwitches(pid)
	if err != nil {
		return procUsage{}, err
	}
	return procUsage{float64(user.Microseconds()), float64(sys.Microseconds()), float64(n)}, nil
}

// since is u less what was used by before.
func (u procUsage) since(before procUsage) procUsage {
	return procUsage{u.userUs - before.userUs, u.sysUs - before.sysUs, u.switches - before.switches}
}

// pairedOnly is -only paired: keygate (every feature on, as in the
// throughput rounds), the pooled floor and a second pooled floor (or
// keygate built from o.pairedAgainst) over the workspace's upstream; each
// round loads keygate beside the pooled floor, then the control pair,
// half of -conns each.
func pairedOnly(ctx context.Context, o options, ws *workspace, rep *Report) (err error) {
	conns := max(o.conns/2, 1)
	var procs []*child
	defer func() {
		for _, c := range procs {
			c.stop()
		}
	}()
	start := func(c *child, err error) (*child, error) {
		if err == nil {
			procs = append(procs, c)
			rep.pids = append(rep.pids, c.pid())
		}
		return c, err
	}
	up := ws.up
	kg, err := start(startKeygate(ctx, ws.kgBin, ws.dir, up.base, up.keys, "", envBudgetsOn))
	if err != nil {
		return err
	}
	pooled, err := start(startFloor(ctx, ws.floorBin, ws.dir, up.base, up.keys[0], true))
	if err != nil {
		return err
	}
	viaKeygate := keygateTarget("keygate", kg, conns+16)
	viaPooled := keygateTarget("floor+pool", pooled, conns+16)
	k := &pair{first: viaKeygate, second: viaPooled}
	// third is the control's own process, beside one of the two above.
	var c *pair
	var third *target
	var controlName string
	if o.pairedAgainst != "" {
		base, err := start(startKeygate(ctx, o.pairedAgainst, ws.dir, up.base, up.keys, "", envBudgetsOn))
		if err != nil {
			return fmt.Errorf("keygate of -paired-against: %w", err)
		}
		third = keygateTarget("keygate "+o.pairedAgainst, base, conns+16)
		c = &pair{first: viaKeygate, second: third}
		controlName = "keygate/keygate of " + o.pairedAgainst
	} else {
		control, err := start(startFloor(ctx, ws.floorBin, ws.dir, up.base, up.keys[0], true))
		if err != nil {
			return err
		}
		third = keygateTarget("floor+pool 2", control, conns+16)
		c = &pair{first: third, second: viaPooled}
		controlName = "floor+pool/floor+pool"
	}
	if err := warmUp(ctx, o, []*target{viaKeygate, viaPooled, third}); err != nil {
		return err
	}
	for range o.rounds {
		for _, p := range []*pair{k, c} {
			o.pause(ctx)
			if err := p.round(ctx, o, conns); err != nil {
				return err
			}
		}
	}
	if k.failed+c.failed > 0 {
		// A failed call costs CPU but is not counted as served: the
		// figures would be off.
		return fmt.Errorf("paired rounds: %d calls through keygate's pair and %d through the control failed", k.failed, c.failed)
	}
	rep.Paired = &PairedResult{Rounds: o.rounds, ConnectionsEach: conns, RateEach: o.pairedRate, Keygate: k.result(), ControlName: controlName, Control: c.result()}
	return nil
}

// print writes the paired figures.
func (x *PairedResult) print(w io.Writer) {
	k, c := x.Keygate, x.Control
	fmt.Fprintf(w, "paired rounds (loaded at once, %s), %d rounds, median (least–greatest):\n", pairedLoad(x.ConnectionsEach, x.RateEach), x.Rounds)
	fmt.Fprintf(w, "  keygate/floor+pool:      CPU per request %.3f (%.3f–%.3f), throughput %.3f (%.3f–%.3f); keygate %.1f µs, %.0f req/s; floor+pool %.1f µs, %.0f req/s\n",
		k.CPU.Median, k.CPU.Min, k.CPU.Max, k.Throughput.Median, k.Throughput.Min, k.Throughput.Max, k.FirstUs, k.FirstRPS, k.SecondUs, k.SecondRPS)
	k.printSplit(w)
	fmt.Fprintf(w, "  control, %s: CPU per request %.3f (%.3f–%.3f), throughput %.3f (%.3f–%.3f); %.1f µs, %.0f req/s against %.1f µs, %.0f req/s\n",
		x.ControlName, c.CPU.Median, c.CPU.Min, c.CPU.Max, c.Throughput.Median, c.Throughput.Min, c.Throughput.Max, c.FirstUs, c.FirstRPS, c.SecondUs, c.SecondRPS)
	c.printSplit(w)
	fmt.Fprintln(w)
}

// printSplit writes a pair's CPU per request as user and system time, and
// its context switches per request, first against second.
func (r PairedRatio) printSplit(w io.Writer) {
	fmt.Fprintf(w, "    per request, user + system CPU %.1f + %.1f µs against %.1f + %.1f; context switches %.1f against %.1f\n",
		r.FirstUserUs, r.FirstSysUs, r.SecondUserUs, r.SecondSysUs, r.FirstSwitches, r.SecondSwitches)
}

// pairedLoad says how each process of a pair is loaded: conns workers in a
// closed loop, or rate requests a second when rate is above 0.
func pairedLoad(conns, rate int) string {
	if rate > 0 {
		return fmt.Sprintf("%d req/s each", rate)
	}
	return fmt.Sprintf("%d connections each", conns)
}
