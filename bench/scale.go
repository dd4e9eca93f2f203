package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Streams above scaleFrom make -streams the scale phase's count: the
// chunk-delay phase then keeps its default of defaultStreams.
const (
	scaleFrom      = 1000
	defaultStreams = 50
	// defaultScaleGap spaces a scale stream's chunks (-scale-gap): 50
	// chunks last 10 s, long enough for all the streams to be open at once
	// on two cores.
	defaultScaleGap = 200 * time.Millisecond
	// scaleAfter is how long after the last stream closed the idle
	// figures are read again.
	scaleAfter = 3 * time.Second
	// fileLimit is the open-file limit the bench asks for: a stream holds
	// a client and an upstream connection open in each process.
	fileLimit = 65536
)

// raiseFileLimit lifts RLIMIT_NOFILE to fileLimit (soft and hard, which
// takes root to raise the hard limit) if it is lower; the children inherit
// it. It returns the soft limit in force.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= fileLimit {
		return lim.Cur, nil
	}
	want := syscall.Rlimit{Cur: fileLimit, Max: max(lim.Max, fileLimit)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Without root, the hard limit is as high as it goes.
		want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err2 := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err2 != nil {
			return lim.Cur, fmt.Errorf("setrlimit: %w", errors.Join(err, err2))
		}
	}
	return want.Cur, nil
}

// ScaleResult is -streams N with N above scaleFrom: N concurrent streams
// through each target in turn, a fresh floor and a fresh keygate.
type ScaleResult struct {
	Streams int     `json:"streams"`
	Chunks  int     `json:"chunks"`
	GapMs   float64 `json:"chunk_gap_ms"`
	// RampMs is how long the stream starts were spread over (one gap
	// unless -scale-ramp); H2Streams the upstream's HTTP/2 streams per
	// connection.
	RampMs    float64 `json:"ramp_ms"`
	H2Streams int     `json:"upstream_h2_streams_per_conn,omitempty"`
	// FileLimit is the soft RLIMIT_NOFILE the run had. Plain HTTP/1.1
	// to the upstream takes two descriptors per stream in each process
	// (the bench serves the upstream too); below that the upstream is
	// TLS + HTTP/2, which multiplexes the streams over a few connections.
	FileLimit uint64                  `json:"file_limit"`
	Upstream  string                  `json:"upstream"`
	Targets   map[string]*ScaleTarget `json:"targets"`
	// KeygateOverFloorPerStream is RSS per stream, keygate over the floor.
	KeygateOverFloorPerStream float64 `json:"keygate_over_floor_per_stream"`
}

// ScaleTarget is what N streams through one target did to it.
type ScaleTarget struct {
	// PeakInFlight is the most streams in flight at once, seen by the
	// client; Cut the streams that errored or ended before their last
	// chunk.
	PeakInFlight int64 `json:"peak_in_flight"`
	Cut          int   `json:"streams_cut"`
	// FirstCut is why the first cut stream failed.
	FirstCut   string  `json:"first_cut,omitempty"`
	ChunkP50Ms float64 `json:"chunk_delay_p50_ms"`
	ChunkP99Ms float64 `json:"chunk_delay_p99_ms"`
	AddedP99Ms float64 `json:"added_chunk_delay_p99_ms"`
	// Steady* are the chunks flushed while all the streams were open at
	// once: after the last one was sent and before the first one ended. The
	// whole-run figures above also hold the opening, when thousands of
	// requests and their first chunks queue on the same cores; these are
	// what relaying costs once they are all open. SteadyChunks is 0 when
	// the first stream ended before the last one was sent.
	SteadyChunks     int     `json:"steady_chunks"`
	SteadyP50Ms      float64 `json:"steady_chunk_delay_p50_ms"`
	SteadyP99Ms      float64 `json:"steady_chunk_delay_p99_ms"`
	SteadyAddedP99Ms float64 `json:"steady_added_chunk_delay_p99_ms"`
	// RSS idle before, its peak during, and scaleAfter after the streams
	// (proxies only).
	IdleRSSMiB   float64 `json:"idle_rss_mib,omitempty"`
	PeakRSSMiB   float64 `json:"peak_rss_mib,omitempty"`
	AfterRSSMiB  float64 `json:"after_rss_mib,omitempty"`
	PerStreamKiB float64 `json:"per_stream_kib,omitempty"`
	// HeldAfter is the share of the burst's memory (peak over idle) still
	// resident scaleAfter after the streams: 0 is back to idle.
	HeldAfter float64 `json:"held_after,omitempty"`
	// UpstreamConns is how many connections the upstream accepted from
	// the target, from its start on.
	UpstreamConns int64 `json:"upstream_conns"`
	// Goroutines idle, at the peak and after, from keygate's /metrics.
	IdleGoroutines  float64 `json:"idle_goroutines,omitempty"`
	PeakGoroutines  float64 `json:"peak_goroutines,omitempty"`
	AfterGoroutines float64 `json:"after_goroutines,omitempty"`
}

// scalePhase runs n streams of o.chunks chunks, gap apart, direct,
// through a fresh floor and through a fresh keygate, one after the other.
func scalePhase(ctx context.Context, o options, n int, gap time.Duration, kgBin, floorBin, dir string, rep *Report) (res *ScaleResult, err error) {
	res = &ScaleResult{Streams: n, Chunks: o.chunks, GapMs: ms(gap), RampMs: ms(max(gap, o.scaleRamp)), Targets: map[string]*ScaleTarget{}, Upstream: "HTTP/1.1"}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		res.FileLimit = lim.Cur
	}
	var cert *testCert
	var env []string
	if scaleOverTLS(res.FileLimit, n) {
		if cert, err = makeCert(dir); err != nil {
			return nil, err
		}
		env, res.Upstream = []string{cert.env()}, "TLS + HTTP/2"
	}
	// By default one HTTP/2 connection carries every stream. Capped
	// (-scale-h2-streams; Go's default is 250 a connection), each request
	// of the floor that finds them all full dials a TLS connection of its
	// own (net/http's transport does not wait for another's dial), while
	// keygate's dialer opens what its streams need.
	h2 := 0
	if cert != nil {
		h2 = n + 64
		if o.scaleH2 > 0 {
			h2 = o.scaleH2
		}
		res.H2Streams = h2
	}
	up, err := startUpstreamTLS(4, cert, h2)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, up.close()) }()
	client := func(direct bool) *http.Client {
		c := newClient(n + 16)
		if direct && cert != nil {
			c = newTLSClient(n+16, cert.pool)
		}
		c.Timeout = 0 // bounded by ctx: a stream lasts chunks × gap
		return c
	}
	direct := &target{name: "direct", url: up.base + "/chat/completions", client: client(true),
		header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + up.keys[0]}}}
	d, err := scaleRun(ctx, o, direct, nil, n, gap, up, up.conns.Load())
	if err != nil {
		return nil, err
	}
	res.Targets["direct"] = d
	for _, name := range []string{"floor", "keygate"} {
		var p *child
		// A proxy's upstream connections are counted from its start:
		// its first may be dialed before the streams (keygate's budget
		// poll, the floor's readiness call).
		conns := up.conns.Load()
		if name == "floor" {
			p, err = startFloor(ctx, floorBin, dir, up.base, up.keys[0], false, env...)
		} else {
			// MAX_IN_FLIGHT (default 4096) is what a user holding n
			// streams open raises: past it keygate answers 503, by design.
			kgEnv := append([]string{envBudgetsOn, fmt.Sprintf("MAX_IN_FLIGHT=%d", n+64)}, env...)
			p, err = startKeygate(ctx, kgBin, dir, up.base, up.keys, "", kgEnv...)
		}
		if err != nil {
			return nil, err
		}
		rep.pids = append(rep.pids, p.pid())
		t := &target{name: name, url: "http://" + p.addr + "/v1/chat/completions", pid: p.pid(), client: client(false),
			header: http.Header{"Content-Type": {"application/json"}}, logs: p.errs.String}
		st, err := scaleRun(ctx, o, t, p, n, gap, up, conns)
		p.stop()
		if err != nil {
			return nil, fmt.Errorf("%d streams through %s: %w", n, name, err)
		}
		st.AddedP99Ms = round(st.ChunkP99Ms-d.ChunkP99Ms, 3)
		st.SteadyAddedP99Ms = round(st.SteadyP99Ms-d.SteadyP99Ms, 3)
		res.Targets[name] = st
	}
	res.KeygateOverFloorPerStream = round(res.Targets["keygate"].PerStreamKiB/res.Targets["floor"].PerStreamKiB, 3)
	return res, nil
}

// scaleRun runs n streams through t, proxied by p (nil for direct), reading
// p's memory and goroutines before, during and after; since is the count
// of upstream connections before t's first.
func scaleRun(ctx context.Context, o options, t *target, p *child, n int, gap time.Duration, up *upstream, since int64) (*ScaleTarget, error) {
	st := &ScaleTarget{}
	metrics := ""
	if p != nil && p.name == "keygate" {
		metrics = "http://" + p.addr + "/metrics"
	}
	var idle int64
	if p == nil {
		if _, _, err := chunkDelays(ctx, t, up, 1, 2, time.Millisecond); err != nil {
			return nil, fmt.Errorf("warming the direct client: %w", err)
		}
	} else {
		if _, _, err := chunkDelays(ctx, t, up, 8, 3, time.Millisecond); err != nil {
			return nil, fmt.Errorf("warming streams: %w", err)
		}
		time.Sleep(o.memSettle)
		if err := settle(ctx, p); err != nil {
			return nil, err
		}
		var err error
		if idle, _, err = memory(p.pid()); err != nil {
			return nil, err
		}
		st.IdleGoroutines = goStats(ctx, metrics)["go_goroutines"]
	}
	// The streams last o.chunks × gap; opening them may take as long again.
	rctx, cancel := context.WithTimeout(ctx, 3*time.Duration(o.chunks)*gap+o.scaleRamp+time.Minute)
	defer cancel()
	var inFlight, peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peakRSS int64
	if p != nil {
		wg.Add(1)
		go func() { // sample memory at each new peak of streams in flight
			defer wg.Done()
			seen := int64(0)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				if rss, _, err := memory(p.pid()); err == nil && rss > peakRSS {
					peakRSS = rss
				}
				if now := inFlight.Load(); now > seen && now*10 >= int64(n)*9 {
					seen = now
					if g := goStats(ctx, metrics)["go_goroutines"]; g > st.PeakGoroutines {
						st.PeakGoroutines = g
					}
				}
			}
		}()
	}
	// allOpen is when the last stream was sent, firstEnd when the first
	// one ended (Unix nanoseconds, 0 until then).
	var allOpen, firstEnd atomic.Int64
	count := func(d int64) {
		v := inFlight.Add(d)
		if d < 0 {
			firstEnd.CompareAndSwap(0, time.Now().UnixNano())
			return
		}
		for old := peak.Load(); v > old && !peak.CompareAndSwap(old, v); old = peak.Load() {
		}
		if v == int64(n) {
			allOpen.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	samples, _, err := streamChunks(rctx, t, up, n, o.chunks, gap, o.scaleRamp, count)
	st.UpstreamConns = up.conns.Load() - since
	close(done)
	wg.Wait()
	var se *streamErrors
	if errors.As(err, &se) {
		st.Cut, st.FirstCut = se.failed, se.first.Error()
	} else if err != nil {
		return nil, err
	}
	st.PeakInFlight = peak.Load()
	delays := sortedDelays(samples, nil)
	st.ChunkP50Ms, st.ChunkP99Ms = round(ms(quantile(delays, 0.5)), 3), round(ms(quantile(delays, 0.99)), 3)
	if from, to := allOpen.Load(), firstEnd.Load(); from != 0 && to > from {
		steady := sortedDelays(samples, func(at time.Time) bool { ns := at.UnixNano(); return ns > from && ns < to })
		st.SteadyChunks = len(steady)
		st.SteadyP50Ms, st.SteadyP99Ms = round(ms(quantile(steady, 0.5)), 3), round(ms(quantile(steady, 0.99)), 3)
	}
	if p == nil {
		return st, nil
	}
	t.client.CloseIdleConnections()
	select {
	case <-time.After(scaleAfter):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after, _, err := memory(p.pid())
	if err != nil {
		return nil, err
	}
	st.AfterGoroutines = goStats(ctx, metrics)["go_goroutines"]
	if o.memProfile != "" && metrics != "" {
		if err := afterProfiles(ctx, p.debug, o.memProfile); err != nil {
			return nil, err
		}
	}
	st.IdleRSSMiB, st.PeakRSSMiB, st.AfterRSSMiB = mib(idle), mib(peakRSS), mib(after)
	st.PerStreamKiB = round(float64(peakRSS-idle)/1024/float64(max(st.PeakInFlight, 1)), 1)
	if peakRSS > idle {
		st.HeldAfter = round(float64(max(after-idle, 0))/float64(peakRSS-idle), 3)
	}
	return st, nil
}

// afterProfiles saves keygate's in-use heap and its goroutines, read
// scaleAfter after the scale phase's streams, beside memProfile
// (NAME.after-scale.EXT, NAME.after-scale-goroutines.EXT): what it still
// holds of the burst.
func afterProfiles(ctx context.Context, debug, memProfile string) error {
	for _, p := range []struct{ what, tag string }{{"heap", "after-scale"}, {"goroutine", "after-scale-goroutines"}} {
		b, err := fetch(ctx, "http://"+debug+"/debug/pprof/"+p.what)
		if err != nil {
			return fmt.Errorf("keygate's %s profile after the streams: %w", p.what, err)
		}
		if err := os.WriteFile(besideProfile(memProfile, p.tag), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// scaleOverTLS says whether n streams need the TLS + HTTP/2 upstream: plain
// HTTP/1.1 holds two descriptors per stream in a proxy (client and
// upstream connection) and in the bench (client and upstream server), plus
// room for the rest.
func scaleOverTLS(limit uint64, n int) bool { return limit < uint64(2*n+1024) }

// print writes the scale phase's figures.
func (x *ScaleResult) print(w io.Writer) {
	fmt.Fprintf(w, "%d concurrent streams x %d chunks, %.0f ms apart, started over %.0f ms, upstream %s", x.Streams, x.Chunks, x.GapMs, x.RampMs, x.Upstream)
	if x.H2Streams > 0 {
		fmt.Fprintf(w, " at most %d streams a connection", x.H2Streams)
	}
	fmt.Fprintf(w, " (file limit %d):\n", x.FileLimit)
	for _, name := range []string{"direct", "floor", "keygate"} {
		s := x.Targets[name]
		if s == nil {
			continue
		}
		fmt.Fprintf(w, "  %-8s peak in flight %d over %d upstream connections, cut %d, chunk delay p50 / p99 %.3f / %.3f ms (added p99 %.3f)", name, s.PeakInFlight, s.UpstreamConns, s.Cut, s.ChunkP50Ms, s.ChunkP99Ms, s.AddedP99Ms)
		if s.SteadyChunks > 0 {
			fmt.Fprintf(w, ", all open %.3f / %.3f ms over %d chunks (added p99 %.3f)", s.SteadyP50Ms, s.SteadyP99Ms, s.SteadyChunks, s.SteadyAddedP99Ms)
		}
		if name != "direct" {
			fmt.Fprintf(w, "; RSS idle %.1f, peak %.1f, after %.1f MiB (%.0f%% of the burst held): %.1f KiB per stream",
				s.IdleRSSMiB, s.PeakRSSMiB, s.AfterRSSMiB, 100*s.HeldAfter, s.PerStreamKiB)
		}
		if name == "keygate" {
			fmt.Fprintf(w, "; goroutines idle %.0f, peak %.0f, after %.0f", s.IdleGoroutines, s.PeakGoroutines, s.AfterGoroutines)
		}
		fmt.Fprintln(w)
		if s.FirstCut != "" {
			fmt.Fprintf(w, "           first cut: %.300s\n", s.FirstCut)
		}
	}
	fmt.Fprintf(w, "  RSS per stream, keygate/floor: %.3f\n\n", x.KeygateOverFloorPerStream)
}

// fileLimitNote says what raiseFileLimit did, for the log.
func fileLimitNote(cur uint64, err error) string {
	if err != nil {
		return "open-file limit " + strconv.FormatUint(cur, 10) + " (" + err.Error() + ")"
	}
	return "open-file limit " + strconv.FormatUint(cur, 10)
}
