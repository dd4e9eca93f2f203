package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/simulator"
)

// TestEconomyTinyDay runs the key-economics phase on the tiny day: every
// gateway must be refused at last (the script asks for more than the pool
// has), no share can pass what the pool had, and keygate with budgets on
// must reach the goal on it. The figures depend on the script and the
// simulator's books, never on timing.
func TestEconomyTinyDay(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := economy(ctx, tinyDay())
	if err != nil {
		t.Fatal(err)
	}
	if res.FreeCapacity != 16 || res.CreditCapacityUSD != 0.006 {
		t.Errorf("capacity %d free, $%v; want 16 (10 on A, 6 on B) and $0.006 (A's $0.004 balance, B's $0.002)", res.FreeCapacity, res.CreditCapacityUSD)
	}
	if len(res.Runs) != len(econVariants) {
		t.Fatalf("%d runs, want %d", len(res.Runs), len(econVariants))
	}
	for _, r := range res.Runs {
		if r.FirstFreeRefusal == 0 || r.FirstPaidRefusal == 0 {
			t.Errorf("%s: first refusals at calls %d (free) and %d (paid); the script asks for more than the pool has", r.Name, r.FirstFreeRefusal, r.FirstPaidRefusal)
		}
		for kind, s := range map[string]float64{"free": r.FreeShare, "credit": r.CreditShare} {
			if s <= 0 || s > 1 {
				t.Errorf("%s: %s share %v, want in (0, 1]", r.Name, kind, s)
			}
		}
		if r.UpstreamRefusals == 0 {
			t.Errorf("%s: upstream refused nothing", r.Name)
		}
	}
	// The goal (0.95) is judged on the full day; this tiny one, with a
	// periodic poll that runs on real time beside the moved clock, may
	// land a few calls either side of it, so it checks for a clear miss.
	on := res.Runs[0]
	if on.FreeShare < 0.9 || on.CreditShare < 0.9 {
		t.Errorf("budgets on: %v of the free quota, %v of the credit used before a refusal; want >= 0.9", on.FreeShare, on.CreditShare)
	}
	if on.KeyReads == 0 {
		t.Error("budgets on read no GET /key")
	}
	for _, r := range res.Runs[1:] {
		if r.KeyReads != 0 {
			t.Errorf("%s: %d GET /key reads with budgets off", r.Name, r.KeyReads)
		}
	}
	rep := &Report{Economy: res, Only: []string{"economy"}}
	rep.judge()
	if len(rep.Targets) != 2 || rep.Targets[0].Met != (on.FreeShare >= 0.95) || rep.Targets[1].Met != (on.CreditShare >= 0.95) {
		t.Errorf("targets %+v judged against shares %v, %v", rep.Targets, on.FreeShare, on.CreditShare)
	}
	var table strings.Builder
	rep.printTable(&table)
	for _, want := range []string{"key economics", "budgets on", "first round (status only)", "MET"} { // MET or MISSED
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestScriptShape: the same plan gives the same script; calls stay in the
// day, in order; a burst shares a minute and holds at most freePerMinute
// free calls; and the script asks for more than the pool's capacity.
func TestScriptShape(t *testing.T) {
	for name, plan := range map[string]dayPlan{"full": fullDay(), "tiny": tinyDay()} {
		t.Run(name, func(t *testing.T) {
			costs, err := answerCosts()
			if err != nil {
				t.Fatal(err)
			}
			c := capacity{free: 100, credit: 0.01}
			a, err := plan.script(c, costs)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := plan.script(c, costs)
			if !slices.Equal(a, b) {
				t.Fatal("the same plan gave two scripts")
			}
			free, paid := 0, 0.0
			perMinute := map[time.Duration]int{}
			for i, sc := range a {
				if sc.at < 0 || sc.at >= 24*time.Hour || (i > 0 && sc.at <= a[i-1].at) {
					t.Fatalf("call %d at %v after %v", i, sc.at, a[max(i-1, 0)].at)
				}
				if sc.free {
					free++
					perMinute[sc.at.Truncate(time.Minute)]++
				} else {
					paid += costs[sc.model]
				}
			}
			for m, n := range perMinute {
				if n > freePerMinute {
					t.Errorf("%d free calls in minute %v", n, m)
				}
			}
			if float64(free) < plan.demand*float64(c.free) || paid < plan.demand*c.credit {
				t.Errorf("script asks for %d free calls and $%v, want at least %v times %d and $%v", free, paid, plan.demand, c.free, c.credit)
			}
		})
	}
}

// TestStatusOnly: behind the first round's emulation, the simulator's
// refusals reach keygate's classifier as their status alone, which it
// reads with the first round's rules: the key's fault.
func TestStatusOnly(t *testing.T) {
	const key = "sk-or-v1-statusonly0123456789abcdef0123456789abcdef"
	sim := simulator.New(simulator.Options{Keys: map[string]simulator.Profile{key: {}}})
	defer sim.Close()
	tests := []struct {
		name  string
		model string
		want  int
	}{
		{"rate limited", "sim/status=429", http.StatusTooManyRequests},
		{"credits", "sim/status=402", http.StatusPaymentRequired},
		{"served", "openai/gpt-4o-mini", http.StatusOK},
	}
	for _, tt := range tests {
		for _, strip := range []bool{false, true} {
			tap := &upstreamTap{sim: sim, statusOnly: strip}
			req := httptest.NewRequest(http.MethodPost, simulator.PathPrefix+"/chat/completions", strings.NewReader(chatBody(tt.model)))
			req.Header.Set("Authorization", "Bearer "+key)
			rec := httptest.NewRecorder()
			tap.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("%s: status %d, want %d", tt.name, rec.Code, tt.want)
			}
			v := fault.Classify(rec.Code, rec.Header(), rec.Body.Bytes(), time.Now())
			if tt.want == http.StatusOK {
				if v.Learns() || tap.refusals.Load() != 0 {
					t.Errorf("%s: verdict %+v, %d refusals counted", tt.name, v, tap.refusals.Load())
				}
				continue
			}
			if tap.refusals.Load() != 1 {
				t.Errorf("%s: %d refusals counted, want 1", tt.name, tap.refusals.Load())
			}
			if !strip {
				if !v.Parsed {
					t.Errorf("%s: the simulator's own error did not parse: %s", tt.name, rec.Body.String())
				}
				continue
			}
			if v.Parsed || v.Scope != fault.Key || !v.Until.IsZero() || rec.Header().Get("Retry-After") != "" {
				t.Errorf("%s, status only: verdict %+v, Retry-After %q; want the key's fault with no hint", tt.name, v, rec.Header().Get("Retry-After"))
			}
		}
	}
}
