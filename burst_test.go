package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBurstLetsGoOfUpstreamConnections: after a burst of calls larger than
// releaseAfterPeak is over, its clients' connections still open, keygate
// closes the upstream connections the burst left idle rather than keeping them (a read loop and
// buffers each) for the transport's 90 s idle timeout. Upstream holds every
// call until all are in, so the burst takes one connection per call.
func TestBurstLetsGoOfUpstreamConnections(t *testing.T) {
	const n = releaseAfterPeak + 44
	p := startProcess(t, "BUDGET_POLL_INTERVAL=0")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, err := client.Post(p.url+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"a/burst","messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				errs <- err
			} else if resp.StatusCode != http.StatusOK {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	p.waitHeld(t, n)
	if got := p.upConns.Open(); got < n {
		t.Fatalf("%d upstream connections for %d held calls", got, n)
	}
	// The release loop reads the count once a second: held this long,
	// the burst is seen.
	time.Sleep(1500 * time.Millisecond)
	p.up.open()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call of the burst failed: %v", err)
	}
	// The burst's connections now sit idle on both sides. The clients keep
	// theirs open: the upstream ones go once the requests are done.
	time.Sleep(100 * time.Millisecond)
	if got := p.upConns.Open(); got < n/2 {
		t.Fatalf("only %d upstream connections kept idle right after the burst: the test proves nothing", got)
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for p.upConns.Open() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstream connections still open 15 s after the burst\n%s", p.upConns.Open(), p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.running(t, "after the burst")
}
