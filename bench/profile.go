package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// profile runs an extra closed-loop round on keygate while its pprof
// endpoint takes a CPU profile, then saves the allocation profile.
func profile(ctx context.Context, o options, t *target, addr string) error {
	secs := max(int(o.profileDur.Seconds()), 1)
	type got struct {
		b   []byte
		err error
	}
	cpu := make(chan got, 1)
	if o.cpuProfile != "" {
		go func() {
			b, err := fetch(ctx, "http://"+addr+"/debug/pprof/profile?seconds="+strconv.Itoa(secs))
			cpu <- got{b, err}
		}()
	} else {
		cpu <- got{}
	}
	attack(ctx, t, tinyChat, 0, time.Duration(secs)*time.Second+500*time.Millisecond, uint64(o.conns))
	g := <-cpu
	if g.err != nil {
		return fmt.Errorf("cpu profile: %w", g.err)
	}
	if o.cpuProfile != "" {
		if err := os.WriteFile(o.cpuProfile, g.b, 0o644); err != nil {
			return err
		}
	}
	if o.memProfile != "" {
		b, err := fetch(ctx, "http://"+addr+"/debug/pprof/allocs")
		if err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
		return os.WriteFile(o.memProfile, b, 0o644)
	}
	return nil
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}
