package main

import (
	"context"
	"net"
	"net/http"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// target is one way to reach the upstream: direct, through the floor, or
// through keygate.
type target struct {
	name   string
	url    string // the chat completions URL
	header http.Header
	pid    int // the proxy's process, 0 for direct
	// client is shared by every attack on this target, so its keep-alive
	// connections outlive one round.
	client *http.Client
	// logs returns the tail of the proxy's stderr; nil for direct.
	logs func() string
}

// newClient is the load generator's HTTP client: keep-alive, no
// compression, room for every connection a phase opens.
func newClient(maxIdle int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        maxIdle,
			MaxIdleConnsPerHost: maxIdle,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// sample is what one attack saw.
type sample struct {
	ok, failed int
	wall       time.Duration
	latencies  []time.Duration // of successful requests, sorted
	firstErr   string
}

// rps is successful requests per second of wall time.
func (s sample) rps() float64 {
	if s.wall <= 0 {
		return 0
	}
	return float64(s.ok) / s.wall.Seconds()
}

// quantile returns the q-quantile (0..1) of the successful latencies, by
// the nearest-rank method; 0 without samples.
func (s sample) quantile(q float64) time.Duration {
	return quantile(s.latencies, q)
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// attack drives t with vegeta for dur: closed-loop with exactly workers
// concurrent requests when rate is 0, else open-loop at rate requests per
// second with up to maxWorkers in flight. It stops early when ctx ends.
func attack(ctx context.Context, t *target, body []byte, rate int, dur time.Duration, workers uint64) sample {
	maxWorkers := workers
	if rate > 0 {
		maxWorkers = 1024
	}
	atk := vegeta.NewAttacker(
		vegeta.Client(t.client),
		vegeta.Workers(workers),
		vegeta.MaxWorkers(maxWorkers),
		vegeta.Redirects(vegeta.NoFollow),
	)
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: t.url, Body: body, Header: t.header})
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	var s sample
	s.latencies = make([]time.Duration, 0, 1<<14)
	start := time.Now()
	for res := range atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, dur, t.name) {
		if res.Code == http.StatusOK && res.Error == "" {
			s.ok++
			s.latencies = append(s.latencies, res.Latency)
			continue
		}
		s.failed++
		if s.firstErr == "" {
			s.firstErr = res.Error
		}
	}
	s.wall = time.Since(start)
	slices.Sort(s.latencies)
	return s
}

// median returns the median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	return (s[(n-1)/2] + s[n/2]) / 2
}

// sortedCopy returns d sorted, leaving d as it was.
func sortedCopy(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}
