package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/simulator"
)

// EconomyResult is the key-economics figure: over a scripted day of mixed
// free and paid calls on the simulator, the share of the pool's free quota
// and of its credit that clients were served before the first refusal of
// each kind, for keygate as it is and for the reactive ways.
type EconomyResult struct {
	Day      string `json:"day"`
	Accounts int    `json:"accounts"`
	Keys     int    `json:"keys"`
	Clients  int    `json:"clients"`
	Seed     uint64 `json:"seed"`
	// FreeCapacity is the free-model requests the accounts had left at
	// the day's start; CreditCapacityUSD the credit they could spend.
	FreeCapacity      int          `json:"free_capacity"`
	CreditCapacityUSD float64      `json:"credit_capacity_usd"`
	ScriptCalls       int          `json:"script_calls"`
	ScriptFreeCalls   int          `json:"script_free_calls"`
	Runs              []EconomyRun `json:"runs"`
}

// EconomyRun is one gateway's day.
type EconomyRun struct {
	Name string `json:"name"`
	// FreeShare is the share of the free capacity used when a free call
	// was first refused (at the script's end if none was); CreditShare
	// the same for the credit and paid calls.
	FreeShare   float64 `json:"free_share"`
	CreditShare float64 `json:"credit_share"`
	// FirstFreeRefusal and FirstPaidRefusal are the script's call numbers
	// (from 1) of those refusals, 0 for none.
	FirstFreeRefusal int `json:"first_free_refusal_call"`
	FirstPaidRefusal int `json:"first_paid_refusal_call"`
	// FreeRefusal and PaidRefusal are those refusals' status and error
	// message, shortened.
	FreeRefusal string `json:"first_free_refusal,omitempty"`
	PaidRefusal string `json:"first_paid_refusal,omitempty"`
	// Calls is how many calls were sent: the script stops once both
	// kinds were refused.
	Calls int `json:"calls_sent"`
	// Refused counts what clients saw instead of a 200, by status.
	Refused map[string]int `json:"client_refusals"`
	// UpstreamRefusals counts the 402s and 429s upstream answered to
	// keygate, retries included; KeyReads its GET /key calls.
	UpstreamRefusals int `json:"upstream_refusals"`
	KeyReads         int `json:"key_reads"`
}

// econVariant is one way to run the gateway over the day.
type econVariant struct {
	name string
	env  []string
	// statusOnly strips upstream's error answers to their status, as the
	// first round read them.
	statusOnly bool
}

// econVariants: keygate as it is; with budgets off (it learns only by
// failing, faults still classified); the same without the per-client bound
// on rests, which is what keeps the reactive gateway from resting keys
// whose caps a client's calls spent; and the first round's rules, emulated
// by an upstream whose errors carry nothing but their status. The first is
// the one the goal is for.
var econVariants = []econVariant{
	{name: "keygate (budgets on)", env: []string{envBudgetsOn}},
	{name: "reactive (budgets off)", env: []string{envBudgetsOff}},
	{name: "reactive, CLIENT_REST_SHARE=1", env: []string{envBudgetsOff, "CLIENT_REST_SHARE=1"}},
	{name: "first round (status only)", env: []string{envBudgetsOff}, statusOnly: true},
}

// economy runs plan's day through each variant.
func economy(ctx context.Context, plan dayPlan) (*EconomyResult, error) {
	costs, err := answerCosts()
	if err != nil {
		return nil, err
	}
	probe := simulator.New(simulator.Options{Accounts: plan.accounts, Now: func() time.Time { return plan.day }})
	c, err := plan.capacityOf(probe)
	_ = probe.Close()
	if err != nil {
		return nil, err
	}
	calls, err := plan.script(c, costs)
	if err != nil {
		return nil, err
	}
	res := &EconomyResult{Day: plan.day.Format(time.DateOnly), Accounts: len(plan.accounts), Keys: len(plan.secrets()),
		Clients: plan.clients, Seed: plan.seed, FreeCapacity: c.free, CreditCapacityUSD: round(c.credit, 6), ScriptCalls: len(calls)}
	for _, sc := range calls {
		if sc.free {
			res.ScriptFreeCalls++
		}
	}
	for _, v := range econVariants {
		r, err := runDay(ctx, plan, calls, v)
		if err != nil {
			return nil, fmt.Errorf("economy, %s: %w", v.name, err)
		}
		res.Runs = append(res.Runs, r)
	}
	return res, nil
}

// dayClock is the script's clock, shared by the simulator and keygate.
type dayClock struct{ ns atomic.Int64 }

func (c *dayClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *dayClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func newDayClock(t time.Time) *dayClock { c := &dayClock{}; c.set(t); return c }

// runDay sends calls one after another through a fresh keygate, in
// process, over a fresh simulator, both on the script's clock, until both
// kinds of call were refused.
func runDay(ctx context.Context, plan dayPlan, calls []scriptCall, v econVariant) (EconomyRun, error) {
	out := EconomyRun{Name: v.name, Refused: map[string]int{}}
	clk := newDayClock(plan.day)
	sim := simulator.New(simulator.Options{Accounts: plan.accounts, Now: clk.Now, Seed: plan.seed})
	tap := &upstreamTap{sim: sim, statusOnly: v.statusOnly}
	up := httptest.NewServer(tap)
	defer func() { up.Close(); _ = sim.Close() }()
	start, err := plan.capacityOf(sim)
	if err != nil {
		return out, err
	}

	tokens := make([]string, plan.clients)
	for i := range tokens {
		tokens[i] = "econ-client-" + strconv.Itoa(i+1)
	}
	env := append([]string{"OPENROUTER_BASE_URL=" + up.URL + simulator.PathPrefix, "LOG_LEVEL=error",
		"GATEWAY_API_KEYS=" + strings.Join(tokens, ",")}, v.env...)
	cfg, err := config.Load(env, nil, false)
	if err != nil {
		return out, fmt.Errorf("config: %w", err)
	}
	cfg.Keys = nil
	for i, k := range plan.secrets() {
		cfg.Keys = append(cfg.Keys, keyring.Entry{ID: i + 1, Secret: secret.New(k)})
	}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler), app.Options{Now: clk.Now, Rand: lockedRand(plan.seed)})
	if err != nil {
		return out, err
	}
	gw := httptest.NewServer(a.Handler)
	defer gw.Close()
	pctx, stopPolls := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() { a.Budgets.Run(pctx); close(polled) }()
	defer func() { stopPolls(); <-polled }()
	if cfg.BudgetPollInterval > 0 {
		if err := waitUntil(ctx, func() bool {
			for _, k := range a.Pool.Keys() {
				if a.Budgets.View(k) == nil {
					return false
				}
			}
			return true
		}); err != nil {
			return out, fmt.Errorf("waiting for the first budget polls: %w", err)
		}
	}

	client := newClient(4)
	defer client.CloseIdleConnections()
	share := func(f bool) (float64, error) {
		u, err := plan.used(sim, start)
		if f {
			return round(float64(u.free)/float64(max(start.free, 1)), 4), err
		}
		return round(u.credit/start.credit, 4), err
	}
	for i, sc := range calls {
		if out.FirstFreeRefusal > 0 && out.FirstPaidRefusal > 0 {
			break
		}
		clk.set(plan.day.Add(sc.at))
		status, msg, err := econCall(ctx, client, gw.URL, tokens[sc.client], sc.model)
		if err != nil {
			return out, err
		}
		// A poll a fault started runs on: let it land before the next
		// call, so that the day does not depend on goroutine timing.
		if err := waitUntil(ctx, func() bool { return tap.keyInFlight.Load() == 0 }); err != nil {
			return out, err
		}
		out.Calls = i + 1
		if status == http.StatusOK {
			continue
		}
		out.Refused[strconv.Itoa(status)]++
		first := &out.FirstPaidRefusal
		if sc.free {
			first = &out.FirstFreeRefusal
		}
		if *first == 0 {
			*first = i + 1
			s, err := share(sc.free)
			if err != nil {
				return out, err
			}
			if sc.free {
				out.FreeShare, out.FreeRefusal = s, msg
			} else {
				out.CreditShare, out.PaidRefusal = s, msg
			}
		}
	}
	if out.FirstFreeRefusal == 0 {
		if out.FreeShare, err = share(true); err != nil {
			return out, err
		}
	}
	if out.FirstPaidRefusal == 0 {
		if out.CreditShare, err = share(false); err != nil {
			return out, err
		}
	}
	out.UpstreamRefusals, out.KeyReads = int(tap.refusals.Load()), int(tap.keyReads.Load())
	return out, nil
}

// econCall sends one scripted call as client token tok and returns the
// status the client saw and, for a refusal, its status and error message.
func econCall(ctx context.Context, client *http.Client, base, tok, model string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(chatBody(model)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("economy call: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, "", fmt.Errorf("economy call: reading the answer: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "", nil
	}
	return resp.StatusCode, refusalText(resp.StatusCode, body), nil
}

// refusalText is a refusal's status and error message, at most 200 bytes.
func refusalText(status int, body []byte) string {
	var doc struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &doc) == nil && doc.Error.Message != "" {
		msg = doc.Error.Message
	}
	out := strconv.Itoa(status) + " " + msg
	if len(out) > 200 {
		out = out[:197] + "..."
	}
	return strings.ToValidUTF8(out, "")
}

// waitUntil polls cond every 100 µs for up to 10 seconds.
func waitUntil(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("condition not met in 10s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Microsecond):
		}
	}
	return nil
}

// lockedRand is a seeded random source for keygate's key choice, safe for
// concurrent use.
func lockedRand(seed uint64) keyring.IntN {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, 1))
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return r.IntN(n)
	}
}
