package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// streamBody asks for a stream of chunks content chunks spaced gap apart.
func streamBody(chunks int, gap time.Duration) []byte {
	return []byte(`{"model":"sim/chunks=` + strconv.Itoa(chunks) + `,chunkdelay=` + gap.String() +
		`","stream":true,"messages":[{"role":"user","content":"Count to fifty, slowly."}]}`)
}

// chunkDelays opens n concurrent streams of chunks chunks, gap apart,
// through t, and returns for every chunk but the first of each stream its
// delay: the time the client read it minus the time the upstream flushed
// it. The first chunk rides with the response headers, so it measures time
// to first byte rather than relaying: it is left out of the delays and
// returned apart, in firsts (what keygate's stream hold adds shows there).
func chunkDelays(ctx context.Context, t *target, up *upstream, n, chunks int, gap time.Duration) (delays, firsts []time.Duration, err error) {
	samples, firsts, err := streamChunks(ctx, t, up, n, chunks, gap, 0, nil)
	return sortedDelays(samples, nil), firsts, err
}

// chunkSample is one relayed chunk: when the upstream flushed it, and how
// long after that the client read it.
type chunkSample struct {
	flushed time.Time
	delay   time.Duration
}

// sortedDelays returns the delays of the samples keep accepts (all when
// keep is nil), sorted.
func sortedDelays(samples []chunkSample, keep func(flushed time.Time) bool) []time.Duration {
	d := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		if keep == nil || keep(s.flushed) {
			d = append(d, s.delay)
		}
	}
	slices.Sort(d)
	return d
}

// streamChunks is chunkDelays returning each chunk's sample unsorted, and
// calling count, when not nil, with +1 as each stream is sent and -1 as it
// ends.
func streamChunks(ctx context.Context, t *target, up *upstream, n, chunks int, gap, spread time.Duration, count func(int64)) (samples []chunkSample, firsts []time.Duration, err error) {
	body := streamBody(chunks, gap)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Starts spread over one gap (or spread, if longer), so that
			// the streams' chunks do not all leave at the same instants
			// and queue behind each other in every process.
			select {
			case <-time.After(time.Duration(i) * max(gap, spread) / time.Duration(n)):
			case <-ctx.Done():
			}
			id := up.newStreamID()
			if count != nil {
				count(1)
			}
			arrivals, err := readStream(ctx, t, body, id, nil)
			if count != nil {
				count(-1)
			}
			var flushes []time.Time
			if err == nil {
				flushes = up.takeFlushes(id)
				if len(flushes) < chunks || len(arrivals) < chunks {
					err = fmt.Errorf("stream %s: %d flushes and %d events for %d chunks", id, len(flushes), len(arrivals), chunks)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			firsts = append(firsts, arrivals[0].Sub(flushes[0]))
			for k := 1; k < chunks; k++ {
				samples = append(samples, chunkSample{flushes[k], arrivals[k].Sub(flushes[k])})
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return samples, firsts, &streamErrors{failed: len(errs), of: n, first: errs[0]}
	}
	return samples, firsts, nil
}

// streamErrors says how many streams of a batch failed, and why the first.
type streamErrors struct {
	failed, of int
	first      error
}

func (e *streamErrors) Error() string {
	return fmt.Sprintf("%d of %d streams failed: %v", e.failed, e.of, e.first)
}

func (e *streamErrors) Unwrap() error { return e.first }

var dataPrefix = []byte("data: ")

// readStream posts body to t as stream id and returns the arrival time of
// each SSE data event. When opened is not nil it is called once the first
// event arrived, and the stream is then held open until ctx ends.
func readStream(ctx context.Context, t *target, body []byte, id string, opened func()) ([]time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	if id != "" {
		req.Header.Set(headerStream, id)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	br := bufio.NewReaderSize(resp.Body, 4096)
	var arrivals []time.Time
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, dataPrefix) {
			arrivals = append(arrivals, time.Now())
			if len(arrivals) == 1 && opened != nil {
				opened()
				<-ctx.Done()
				return arrivals, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return arrivals, nil
		}
		if err != nil {
			return arrivals, err
		}
	}
}

// holdStreams opens n streams through t that stay open (their upstream
// pauses for hold between chunks), calls measure once all n got their first
// event, and then closes them. It fails if they are not all open within
// openTimeout.
func holdStreams(ctx context.Context, t *target, n int, hold, openTimeout time.Duration, measure func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body := streamBody(3, hold)
	var (
		open   sync.WaitGroup
		done   sync.WaitGroup
		mu     sync.Mutex
		failed int
		first  error
	)
	allOpen := make(chan struct{})
	open.Add(n)
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			var once sync.Once
			mark := func() { once.Do(open.Done) }
			_, err := readStream(ctx, t, body, "", mark)
			if err != nil && ctx.Err() == nil {
				mu.Lock()
				failed++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
			mark()
		}()
	}
	go func() {
		open.Wait()
		close(allOpen)
	}()
	var err error
	select {
	case <-allOpen:
		mu.Lock()
		if failed > 0 {
			err = fmt.Errorf("%d of %d streams failed: %w", failed, n, first)
		}
		mu.Unlock()
		if err == nil {
			measure()
		}
	case <-time.After(openTimeout):
		err = fmt.Errorf("%d streams not all open after %s", n, openTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	done.Wait()
	return err
}
