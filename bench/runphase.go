package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// runModels names n models whose upstream answers after delay; they differ
// only in a directive that plain completions ignore.
func runModels(n int, delay time.Duration) []string {
	models := make([]string, n)
	for i := range models {
		models[i] = "sim/delay=" + delay.String() + ",chunks=" + strconv.Itoa(i+1)
	}
	return models
}

// runWalls posts count /run requests of models, one after another, to
// keygate at url and returns their wall times, sorted.
func runWalls(ctx context.Context, client *http.Client, url string, models []string, count int) ([]time.Duration, error) {
	body, err := json.Marshal(map[string]any{"prompt": "Say hi.", "models": models})
	if err != nil {
		return nil, err
	}
	walls := make([]time.Duration, 0, count)
	for range count {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		var out struct {
			Successful int `json:"successful"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		wall := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || out.Successful != len(models) {
			return nil, fmt.Errorf("/run: status %d, %d of %d models successful, %v", resp.StatusCode, out.Successful, len(models), err)
		}
		walls = append(walls, wall)
	}
	slices.Sort(walls)
	return walls, nil
}

// directWalls is the reference for /run: count times, the models called
// straight at the upstream, all at once, each with its own key; the wall
// time is until the last answer was read.
func directWalls(ctx context.Context, client *http.Client, up *upstream, models []string, count int) ([]time.Duration, error) {
	walls := make([]time.Duration, 0, count)
	for range count {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, len(models))
		for i, m := range models {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = directCall(ctx, client, up, m, up.keys[i%len(up.keys)])
			}()
		}
		wg.Wait()
		wall := time.Since(start)
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		walls = append(walls, wall)
	}
	slices.Sort(walls)
	return walls, nil
}

func directCall(ctx context.Context, client *http.Client, up *upstream, model, key string) error {
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"Say hi."}],"stream":false}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.base+"/chat/completions", bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("direct call: status %d", resp.StatusCode)
	}
	return nil
}

// runPhase times POST /run with runModels slow models, one call after
// another, and the same calls made straight at the upstream at once.
func runPhase(ctx context.Context, o options, up *upstream, url string) (RunResult, error) {
	client := newClient(2 * o.runModels)
	models := runModels(o.runModels, o.runDelay)
	walls, err := runWalls(ctx, client, url, models, o.runs)
	if err != nil {
		return RunResult{}, err
	}
	direct, err := directWalls(ctx, client, up, models, o.runs)
	if err != nil {
		return RunResult{}, err
	}
	p50, top, dp50 := quantile(walls, 0.5), walls[len(walls)-1], quantile(direct, 0.5)
	return RunResult{
		WallP50Ms: round(ms(p50), 2), WallMaxMs: round(ms(top), 2),
		OverheadP50Ms: round(ms(p50-o.runDelay), 2), OverheadMaxMs: round(ms(top-o.runDelay), 2),
		DirectWallP50Ms: round(ms(dp50), 2), OverDirectP50Ms: round(ms(p50-dp50), 2),
	}, nil
}
