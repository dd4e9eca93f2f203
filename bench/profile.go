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
// endpoint takes a CPU profile, and with -cpuprofile one more on the
// pooled floor, saved beside it (NAME.floor.EXT), so that
// `go tool pprof -diff_base NAME.floor.EXT NAME.EXT` shows what keygate
// spends that the floor does not; then it saves keygate's allocation
// profile.
func profile(ctx context.Context, o options, l *loadProcs) error {
	if o.cpuProfile != "" {
		if err := cpuProfile(ctx, o, l.viaKeygate, l.pprofAddr, o.cpuProfile); err != nil {
			return fmt.Errorf("keygate's cpu profile: %w", err)
		}
		if err := cpuProfile(ctx, o, l.viaPooled, l.pooled.debug, besideProfile(o.cpuProfile, "floor")); err != nil {
			return fmt.Errorf("the pooled floor's cpu profile: %w", err)
		}
	}
	if o.memProfile != "" {
		b, err := fetch(ctx, "http://"+l.pprofAddr+"/debug/pprof/allocs")
		if err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
		return os.WriteFile(o.memProfile, b, 0o644)
	}
	return nil
}

// cpuProfile drives t in a closed loop for o.profileDur while the pprof
// endpoint at addr profiles it, and writes the profile to path.
func cpuProfile(ctx context.Context, o options, t *target, addr, path string) error {
	secs := max(int(o.profileDur.Seconds()), 1)
	type got struct {
		b   []byte
		err error
	}
	cpu := make(chan got, 1)
	go func() {
		b, err := fetch(ctx, "http://"+addr+"/debug/pprof/profile?seconds="+strconv.Itoa(secs))
		cpu <- got{b, err}
	}()
	attack(ctx, t, tinyChat, 0, time.Duration(secs)*time.Second+500*time.Millisecond, uint64(o.conns))
	g := <-cpu
	if g.err != nil {
		return g.err
	}
	return os.WriteFile(path, g.b, 0o644)
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
