package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// memoryPhase holds openStreams streams open through a fresh floor and a
// fresh keygate, one after the other, and reads their resident memory. A
// fresh process keeps heap grown by the load phases from hiding the
// streams' cost. With -memprofile, keygate's heap in use while the streams
// are open is saved beside the allocation profile (besideProfile).
func memoryPhase(ctx context.Context, o options, kgBin, floorBin, dir string, up *upstream, rep *Report) error {
	floor, err := startFloor(ctx, floorBin, dir, up.base, up.keys[0], false)
	if err != nil {
		return err
	}
	rep.pids = append(rep.pids, floor.pid())
	fm, err := holdMemory(ctx, o, floor, up, "", nil)
	floor.stop()
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}

	pprofAddr := ""
	if o.memProfile != "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
	}
	kg, err := startKeygate(ctx, kgBin, dir, up.base, up.keys, pprofAddr)
	if err != nil {
		return err
	}
	defer kg.stop()
	rep.pids = append(rep.pids, kg.pid())
	metricsURL := "http://" + kg.addr + "/metrics"
	var idleGo, busyGo map[string]float64
	during := func(idle bool) {
		if idle {
			idleGo = goStats(ctx, metricsURL)
			return
		}
		busyGo = goStats(ctx, metricsURL)
		if pprofAddr != "" {
			if b, err := fetch(ctx, "http://"+pprofAddr+"/debug/pprof/heap?gc=1"); err == nil {
				_ = os.WriteFile(besideProfile(o.memProfile, "streams"), b, 0o644)
			}
		}
	}
	km, err := holdMemory(ctx, o, kg, up, "keygate", during)
	if err != nil {
		return fmt.Errorf("keygate: %w", err)
	}
	m := &rep.Memory
	m.IdleRSSMiB, m.StreamsRSSMiB, m.StreamsPeakMiB = mib(km.idle), mib(km.rss), mib(km.peak)
	m.PerStreamKiB = km.perStreamKiB(o.openStreams)
	m.FloorPerStreamKiB = fm.perStreamKiB(o.openStreams)
	per := func(name string) float64 {
		return round((busyGo[name]-idleGo[name])/float64(o.openStreams), 2)
	}
	m.GoroutinesPerStream = per("go_goroutines")
	m.StackKiBPerStream = round(per("go_memstats_stack_inuse_bytes")/1024, 1)
	m.HeapKiBPerStream = round(per("go_memstats_heap_inuse_bytes")/1024, 1)
	m.Curve = append(m.Curve, CurvePoint{Streams: o.openStreams, FloorKiB: m.FloorPerStreamKiB, KeygateKiB: m.PerStreamKiB})
	for _, n := range o.memCounts {
		pt, err := curvePoint(ctx, o, n, kgBin, floorBin, dir, up, rep)
		if err != nil {
			return err
		}
		m.Curve = append(m.Curve, pt)
	}
	slices.SortFunc(m.Curve, func(a, b CurvePoint) int { return a.Streams - b.Streams })
	return nil
}

// CurvePoint is RSS per open stream with Streams streams held open through
// a fresh floor and a fresh keygate.
type CurvePoint struct {
	Streams    int     `json:"streams"`
	FloorKiB   float64 `json:"floor_per_stream_kib"`
	KeygateKiB float64 `json:"keygate_per_stream_kib"`
}

// curvePoint holds n streams open through a fresh floor, then a fresh
// keygate.
func curvePoint(ctx context.Context, o options, n int, kgBin, floorBin, dir string, up *upstream, rep *Report) (CurvePoint, error) {
	o.openStreams = n
	pt := CurvePoint{Streams: n}
	for _, name := range []string{"floor", "keygate"} {
		var p *child
		var err error
		if name == "floor" {
			p, err = startFloor(ctx, floorBin, dir, up.base, up.keys[0], false)
		} else {
			p, err = startKeygate(ctx, kgBin, dir, up.base, up.keys, "")
		}
		if err != nil {
			return pt, err
		}
		rep.pids = append(rep.pids, p.pid())
		r, err := holdMemory(ctx, o, p, up, "", nil)
		p.stop()
		if err != nil {
			return pt, fmt.Errorf("%d streams through %s: %w", n, name, err)
		}
		if name == "floor" {
			pt.FloorKiB = r.perStreamKiB(n)
		} else {
			pt.KeygateKiB = r.perStreamKiB(n)
		}
	}
	return pt, nil
}

// rssReading is a process's resident memory idle and with the streams open.
type rssReading struct{ idle, rss, peak int64 }

func (r rssReading) perStreamKiB(n int) float64 {
	return round(float64(r.rss-r.idle)/1024/float64(n), 1)
}

// holdMemory warms the proxy p, reads its idle RSS, opens o.openStreams
// streams through it and reads its RSS at steady state. during, if not
// nil, is called once idle and once with the streams open.
func holdMemory(ctx context.Context, o options, p *child, up *upstream, name string, during func(idle bool)) (rssReading, error) {
	var r rssReading
	t := &target{name: p.name, url: "http://" + p.addr + "/v1/chat/completions", pid: p.pid(),
		client: newClient(o.openStreams + 16), header: http.Header{"Content-Type": {"application/json"}}}
	attack(ctx, t, tinyChat, 0, o.warmup/2, uint64(o.conns))
	if _, _, err := chunkDelays(ctx, t, up, 8, 3, time.Millisecond); err != nil {
		return r, fmt.Errorf("warming streams: %w", err)
	}
	t.client.CloseIdleConnections()
	time.Sleep(o.memSettle)
	if err := settle(ctx, p); err != nil {
		return r, err
	}
	idle, _, err := memory(p.pid())
	if err != nil {
		return r, err
	}
	r.idle = idle
	if during != nil {
		during(true)
	}
	measure := func() {
		// Steady state: the largest of a few samples once every stream
		// got its first chunk.
		for range 5 {
			time.Sleep(o.memSettle / 5)
			if rss, peak, err := memory(p.pid()); err == nil {
				r.rss, r.peak = max(r.rss, rss), max(r.peak, peak)
			}
		}
		if during != nil {
			during(false)
		}
	}
	err = holdStreams(ctx, t, o.openStreams, time.Minute, 30*time.Second, measure)
	return r, err
}

// goStats reads the Go runtime gauges of keygate's /metrics; nil when it
// cannot.
func goStats(ctx context.Context, url string) map[string]float64 {
	return metricValues(ctx, url, "go_")
}

// metricValues reads the samples of a /metrics page whose names start
// with prefix, by name (labels included); nil when it cannot.
func metricValues(ctx context.Context, url, prefix string) map[string]float64 {
	b, err := fetch(ctx, url)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// besideProfile names a profile saved beside another, tag before the
// extension: ("mem.prof", "streams") gives mem.streams.prof, the in-use
// heap taken with the streams open, and ("cpu.prof", "floor") the pooled
// floor's CPU profile.
func besideProfile(path, tag string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "." + tag + ext
}
