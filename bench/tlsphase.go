package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/keygate/keygate/internal/testcert"
)

// testCert is a self-signed certificate for 127.0.0.1, made at start; the
// children trust it through SSL_CERT_FILE, which Go honours on Linux.
type testCert struct {
	file string
	cert tls.Certificate
	pool *x509.CertPool
}

// makeCert makes a fresh ECDSA certificate for 127.0.0.1, valid for a day,
// and writes it as PEM into dir.
func makeCert(dir string) (*testCert, error) {
	c, err := testcert.New("keygate bench upstream")
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "upstream-cert.pem")
	if err := os.WriteFile(file, c.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("test certificate: %w", err)
	}
	return &testCert{file: file, cert: c.TLS, pool: c.Pool}, nil
}

// env is the children's setting that makes them trust the certificate.
func (c *testCert) env() string { return "SSL_CERT_FILE=" + c.file }

// TLSResult is the phase with the upstream behind TLS and HTTP/2: each
// target has an upstream of its own, so that the connections it opened
// and the protocol its requests came in over are its alone.
type TLSResult struct {
	Rounds int `json:"rounds"`
	// RPS and CPUUs are the closed-loop maximum (median over rounds) and
	// CPU time per request, by target (direct is the bench process).
	RPS   map[string]float64 `json:"rps"`
	CPUUs map[string]float64 `json:"cpu_us_per_request"`
	// PerStreamKiB is RSS per open stream with OpenStreams streams held
	// open through a fresh process, floor and keygate.
	OpenStreams  int                `json:"open_streams"`
	PerStreamKiB map[string]float64 `json:"per_stream_kib"`
	// UpstreamConns are the connections each target's upstream accepted
	// over the whole phase (held streams, warm-up and rounds); Proto is
	// the protocol its requests came in over, as r.Proto names it.
	UpstreamConns map[string]int64  `json:"upstream_conns"`
	Proto         map[string]string `json:"upstream_proto"`
	Failed        map[string]int    `json:"failed"`
	// Keygate over the floor: throughput, CPU and memory per stream.
	KeygateOverFloorRPS       float64 `json:"keygate_over_floor_rps"`
	KeygateOverFloorCPU       float64 `json:"keygate_over_floor_cpu"`
	KeygateOverFloorPerStream float64 `json:"keygate_over_floor_per_stream"`

	pids []int
}

// tlsTargets are the TLS phase's targets, in order.
var tlsTargets = []string{"direct", "floor", "floor+pool", "keygate"}

// tlsPhase runs the floor, the pooled floor and keygate, fresh, each in
// front of its own TLS upstream: first o.openStreams streams held open
// through the floor and keygate for memory, then closed-loop rounds of
// all four targets for throughput and CPU.
func tlsPhase(ctx context.Context, o options, kgBin, floorBin, dir string) (res *TLSResult, err error) {
	cert, err := makeCert(dir)
	if err != nil {
		return nil, err
	}
	ups := map[string]*upstream{}
	defer func() {
		for _, u := range ups {
			err = errors.Join(err, u.close())
		}
	}()
	for _, name := range tlsTargets {
		if ups[name], err = startUpstreamTLS(4, cert, 0); err != nil {
			return nil, err
		}
	}
	var procs []*child
	defer func() {
		for _, c := range procs {
			c.stop()
		}
	}()
	floor, err := startFloor(ctx, floorBin, dir, ups["floor"].base, ups["floor"].keys[0], false, cert.env())
	if err != nil {
		return nil, err
	}
	procs = append(procs, floor)
	pooled, err := startFloor(ctx, floorBin, dir, ups["floor+pool"].base, ups["floor+pool"].keys[0], true, cert.env())
	if err != nil {
		return nil, err
	}
	procs = append(procs, pooled)
	kg, err := startKeygate(ctx, kgBin, dir, ups["keygate"].base, ups["keygate"].keys, "", envBudgetsOn, cert.env())
	if err != nil {
		return nil, err
	}
	procs = append(procs, kg)

	res = &TLSResult{Rounds: o.tlsRounds(), OpenStreams: o.openStreams, PerStreamKiB: map[string]float64{},
		pids: []int{floor.pid(), pooled.pid(), kg.pid()}}
	for _, p := range []*child{floor, kg} {
		r, err := holdMemory(ctx, o, p, ups[p.name], "", nil)
		if err != nil {
			return nil, fmt.Errorf("TLS upstream, streams through %s: %w", p.name, err)
		}
		res.PerStreamKiB[p.name] = r.perStreamKiB(o.openStreams)
	}

	conns := o.conns + 16
	direct := &target{name: "direct", url: ups["direct"].base + "/chat/completions", client: newTLSClient(conns, cert.pool),
		header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + ups["direct"].keys[0]}}}
	all := []*target{direct}
	for _, c := range procs {
		all = append(all, keygateTarget(c.name, c, conns))
	}
	for _, t := range all {
		if s := attack(ctx, t, tinyChat, 0, o.warmup/2, uint64(o.conns)); s.ok == 0 {
			return nil, fmt.Errorf("TLS warm-up of %s: no successful request (%d failed: %s)", t.name, s.failed, s.firstErr)
		}
	}
	lo := o
	lo.rounds = o.tlsRounds()
	l, err := closedLoop(ctx, lo, func(i int) []*target { return interleave(all, i) })
	if err != nil {
		return nil, err
	}
	res.RPS, res.CPUUs, res.Failed = map[string]float64{}, map[string]float64{}, l.failed
	res.UpstreamConns, res.Proto = map[string]int64{}, map[string]string{}
	for _, name := range tlsTargets {
		res.RPS[name], res.CPUUs[name] = median(l.rounds[name]), l.perReq(name)
		u := ups[name]
		res.UpstreamConns[name] = u.conns.Load()
		res.Proto[name] = protoOf(u.h2.Load(), u.h1.Load())
	}
	res.KeygateOverFloorRPS = round(res.RPS["keygate"]/res.RPS["floor"], 3)
	res.KeygateOverFloorCPU = round(res.CPUUs["keygate"]/res.CPUUs["floor"], 3)
	res.KeygateOverFloorPerStream = round(res.PerStreamKiB["keygate"]/res.PerStreamKiB["floor"], 3)
	return res, nil
}

// protoOf names the protocols requests came in over: "HTTP/2.0", or both
// with their counts when some came over HTTP/1.1.
func protoOf(h2, h1 int64) string {
	var parts []string
	if h2 > 0 {
		parts = append(parts, "HTTP/2.0")
	}
	if h1 > 0 {
		parts = append(parts, "HTTP/1.1")
	}
	if len(parts) == 2 {
		return fmt.Sprintf("HTTP/2.0 ×%d, HTTP/1.1 ×%d", h2, h1)
	}
	return strings.Join(parts, "")
}

// newTLSClient is newClient trusting pool, with HTTP/2.
func newTLSClient(maxIdle int, pool *x509.CertPool) *http.Client {
	c := newClient(maxIdle)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	tr.ForceAttemptHTTP2 = true
	return c
}

// print writes the TLS phase's figures.
func (x *TLSResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("TLS + HTTP/2 upstream\t%s\t", strings.Join(tlsTargets, "\t"))
	row := func(label string, f func(name string) string) {
		cells := make([]string, len(tlsTargets))
		for i, name := range tlsTargets {
			cells[i] = f(name)
		}
		p("%s\t%s\t", label, strings.Join(cells, "\t"))
	}
	row("max throughput, req/s", func(n string) string { return fmt.Sprintf("%.0f", x.RPS[n]) })
	row("CPU per request, µs", func(n string) string { return fmt.Sprintf("%.1f", x.CPUUs[n]) })
	row(fmt.Sprintf("RSS per stream at %d streams, KiB", x.OpenStreams), func(n string) string {
		if v, ok := x.PerStreamKiB[n]; ok {
			return fmt.Sprintf("%.1f", v)
		}
		return "-"
	})
	row("upstream connections", func(n string) string { return fmt.Sprintf("%d", x.UpstreamConns[n]) })
	row("upstream protocol", func(n string) string { return x.Proto[n] })
	_ = tw.Flush()
	fmt.Fprintf(w, "keygate/floor over TLS: throughput %.3f, CPU per request %.3f, RSS per stream %.3f\n\n",
		x.KeygateOverFloorRPS, x.KeygateOverFloorCPU, x.KeygateOverFloorPerStream)
}
