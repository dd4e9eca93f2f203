package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/config"
)

// InProcessBudgets is keygate's /v1 handler called in the bench process,
// one request after another, in front of an upstream stub that answers with
// usage.cost and GET /key with a cap: CPU time and allocations per request
// with budgets on and off, free of the loopback hops and of other
// processes' scheduling. Allocations per request do not swing with the
// machine's load as CPU time does.
type InProcessBudgets struct {
	OnCPUUs         float64 `json:"budgets_on_cpu_us_per_request"`
	OffCPUUs        float64 `json:"budgets_off_cpu_us_per_request"`
	CPUOnOverOff    float64 `json:"cpu_on_over_off"`
	OnAllocs        float64 `json:"budgets_on_allocs_per_request"`
	OffAllocs       float64 `json:"budgets_off_allocs_per_request"`
	AllocsOnOverOff float64 `json:"allocs_on_over_off"`
	Requests        int     `json:"requests_each"`
	RoundsEach      int     `json:"rounds_each"`
	RoundMs         float64 `json:"round_ms"`
	// KeyReads are the GET /key polls of the keygate with budgets on.
	KeyReads int `json:"budgets_on_key_reads"`
}

// costReply is the stub's answer: a chat completion with its cost.
var costReply = []byte(`{"id":"gen-1","object":"chat.completion","created":1,"model":"openai/gpt-4o-mini",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"cost":0.0000123}}`)

// capReply is the stub's GET /key: a cap far from spent, free requests left.
var capReply = []byte(`{"data":{"label":"bench","limit":1000000,"limit_remaining":1000000,"limit_reset":"daily",` +
	`"usage":0,"usage_daily":0,"is_free_tier":false,"creator_user_id":"user_bench",` +
	`"free_model_daily_requests":{"used":0,"limit":1000,"remaining":1000}}}`)

// costUpstream answers every round trip without a network; it counts the
// GET /key reads.
type costUpstream struct{ reads atomic.Int64 }

func (c *costUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	body := costReply
	if strings.HasSuffix(req.URL.Path, "/key") {
		body = capReply
		c.reads.Add(1)
	}
	return &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: req}, nil
}

// inProcessGateway is keygate with budgets on or off over a costUpstream,
// its poller running (budgets on: until every key's first poll landed).
func inProcessGateway(ctx context.Context, on bool) (http.Handler, *costUpstream, func(), error) {
	env := []string{"OPENROUTER_BASE_URL=http://upstream.invalid/api/v1", "LOG_LEVEL=error", envBudgetsOff}
	if on {
		env[2] = envBudgetsOn
	}
	for i := range 4 {
		env = append(env, "OPENROUTER_API_KEY_"+strconv.Itoa(i+1)+"="+benchKey("in-process", i))
	}
	cfg, err := config.Load(env, nil, true)
	if err != nil {
		return nil, nil, nil, err
	}
	up := &costUpstream{}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler), app.Options{Transport: up})
	if err != nil {
		return nil, nil, nil, err
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Budgets.Run(pctx); close(done) }()
	end := func() { stop(); <-done }
	if on {
		err := waitUntil(ctx, func() bool {
			for _, k := range a.Pool.Keys() {
				if a.Budgets.View(k) == nil {
					return false
				}
			}
			return true
		})
		if err != nil {
			end()
			return nil, nil, nil, fmt.Errorf("in-process budgets: first polls: %w", err)
		}
	}
	return a.Handler, up, end, nil
}

// processCPU is the CPU time the bench process used so far, at
// microsecond resolution.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureInProcessBudgets alternates rounds of length round through the
// two handlers, rounds times each.
func measureInProcessBudgets(ctx context.Context, rounds int, roundDur time.Duration) (*InProcessBudgets, error) {
	hOn, upOn, endOn, err := inProcessGateway(ctx, true)
	if err != nil {
		return nil, err
	}
	defer endOn()
	hOff, _, endOff, err := inProcessGateway(ctx, false)
	if err != nil {
		return nil, err
	}
	defer endOff()
	var cpu, mallocs [2]uint64
	var served [2]int
	var mem runtime.MemStats
	for i := range 2 * rounds {
		which := (i + i/2) % 2 // on, off, off, on, on, off, ...
		h := hOn
		if which == 1 {
			h = hOff
		}
		runtime.GC()
		runtime.ReadMemStats(&mem)
		m0, c0 := mem.Mallocs, processCPU()
		n := 0
		for end := time.Now().Add(roundDur); time.Now().Before(end); n++ {
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(tinyChat))
			req.Host = "localhost" // an open gateway answers this machine's names only
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				return nil, fmt.Errorf("in-process budgets: status %d: %s", w.Code, w.Body)
			}
		}
		c1 := processCPU()
		runtime.ReadMemStats(&mem)
		cpu[which] += uint64(c1 - c0)
		mallocs[which] += mem.Mallocs - m0
		served[which] += n
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	per := func(v uint64, i int) float64 { return float64(v) / float64(max(served[i], 1)) }
	r := &InProcessBudgets{OnCPUUs: round3(per(cpu[0], 0) / 1e3), OffCPUUs: round3(per(cpu[1], 1) / 1e3),
		OnAllocs: round(per(mallocs[0], 0), 1), OffAllocs: round(per(mallocs[1], 1), 1),
		Requests: min(served[0], served[1]), RoundsEach: rounds, RoundMs: ms(roundDur)}
	r.CPUOnOverOff = round(r.OnCPUUs/r.OffCPUUs, 3)
	r.AllocsOnOverOff = round(r.OnAllocs/r.OffAllocs, 3)
	endOn()
	r.KeyReads = int(upOn.reads.Load())
	return r, nil
}

func round3(v float64) float64 { return round(v, 3) }
