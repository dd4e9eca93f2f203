package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keygate/keygate/simulator"
)

// ReplicaResult is what sharing key state over Redis costs and how fast it
// is: the passthrough with REDIS_URL set against unset, in the same run,
// and how long after one replica learns a rest another honours it.
type ReplicaResult struct {
	PlainRPS float64 `json:"plain_rps"`
	RedisRPS float64 `json:"redis_rps"`
	// RPSRatio is RedisRPS/PlainRPS (goal >= 0.97).
	RPSRatio float64 `json:"rps_ratio"`
	// Rounds are the throughput rounds, to show their spread.
	Rounds map[string][]float64 `json:"rounds_rps"`
	// CPUUs is keygate's CPU time per request in the throughput rounds.
	CPUUs  map[string]float64 `json:"cpu_us_per_request"`
	Rate   int                `json:"rate"`
	Direct Lat                `json:"direct"`
	Plain  Lat                `json:"plain"`
	Redis  Lat                `json:"redis"`
	// AddedP99Ratio is Redis.AddedP99Ms/Plain.AddedP99Ms (goal <= 1.1).
	AddedP99Ratio float64 `json:"added_p99_ratio"`
	// Rest propagation: from sending the call that rests a key on one
	// replica to the other replica's /keys showing the rest.
	Rests          int     `json:"rests"`
	RestP50Ms      float64 `json:"rest_honoured_p50_ms"`
	RestP99Ms      float64 `json:"rest_honoured_p99_ms"`
	RestMaxMs      float64 `json:"rest_honoured_max_ms"`
	RedisVersion   string  `json:"redis_version"`
	RedisTransport string  `json:"redis_transport"`
	// Control is an A/A run (-redis-control): the "set" keygate ran
	// without REDIS_URL too.
	Control bool `json:"control,omitempty"`
	// SetRedisUp is keygate_redis_up of the "set" keygate after the
	// rounds: 1 while it shared through Redis; -1 when it has no such
	// gauge (REDIS_URL unset, the control).
	SetRedisUp float64 `json:"set_redis_up"`
}

// redisServer is a redis-server child on a unix socket, without persistence.
type redisServer struct {
	cmd  *exec.Cmd
	sock string
	done chan struct{}
}

func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("the Redis phase needs redis-server (apt-get install redis-server), or -no-redis: %w", err)
	}
	sock := filepath.Join(dir, "redis.sock")
	r := &redisServer{sock: sock, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700", "--save", "", "--appendonly", "no")
	r.cmd.Dir = dir
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return r, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, errors.New("redis-server did not open its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) url() string { return "unix://" + r.sock }

func (r *redisServer) stop() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// redisVersion is redis-server's "v=7.0.15".
func redisVersion() string {
	out, err := exec.Command("redis-server", "--version").Output()
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "v=") {
			return f
		}
	}
	return strings.TrimSpace(string(out))
}

// startKeygateEnv is startKeygate with more settings.
func startKeygateEnv(ctx context.Context, bin, dir, upstream string, keys []string, env ...string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	vars := append([]string{"OPENROUTER_BASE_URL=" + upstream, "PORT=" + strconv.Itoa(port), "SHUTDOWN_TIMEOUT=2s"}, env...)
	for i, k := range keys {
		vars = append(vars, "OPENROUTER_API_KEY_"+strconv.Itoa(i+1)+"="+k)
	}
	c, stdout, err := startChild("keygate", bin, dir, nil, childEnv(vars...))
	if err != nil {
		return nil, err
	}
	go func() {
		_, _ = io.Copy(c.errs, stdout)
		stdout.Close()
	}()
	c.addr = "127.0.0.1:" + strconv.Itoa(port)
	if err := waitHealthy(ctx, c, "http://"+c.addr+"/healthz"); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// replicaPhase measures keygate with REDIS_URL against without, side by
// side, and the time a rest takes to reach another replica.
func replicaPhase(ctx context.Context, o options, kgBin, dir string, up *upstream, step func(string, ...any)) (*ReplicaResult, error) {
	rs, err := startRedis(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	res := &ReplicaResult{RedisVersion: redisVersion(), RedisTransport: "unix socket"}
	plain, err := startKeygateEnv(ctx, kgBin, dir, up.base, up.keys)
	if err != nil {
		return nil, err
	}
	defer plain.stop()
	sharedEnv := []string{"REDIS_URL=" + rs.url(), "REDIS_PREFIX=bench-tput:"}
	if o.redisControl {
		sharedEnv, res.Control = nil, true
	}
	shared, err := startKeygateEnv(ctx, kgBin, dir, up.base, up.keys, sharedEnv...)
	if err != nil {
		return nil, err
	}
	defer shared.stop()
	conns := o.conns + 16
	hdr := http.Header{"Content-Type": {"application/json"}}
	direct := &target{name: "direct", url: up.base + "/chat/completions", client: newClient(conns),
		header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + up.keys[0]}}}
	viaPlain := &target{name: "plain", url: "http://" + plain.addr + "/v1/chat/completions", pid: plain.pid(), client: newClient(conns), header: hdr, logs: plain.errs.String}
	viaRedis := &target{name: "redis", url: "http://" + shared.addr + "/v1/chat/completions", pid: shared.pid(), client: newClient(conns), header: hdr, logs: shared.errs.String}
	for _, t := range []*target{viaPlain, viaRedis} {
		if s := attack(ctx, t, tinyChat, 0, o.warmup, uint64(o.conns)); s.ok == 0 {
			return nil, fmt.Errorf("warm-up of keygate %s: no successful request (%d failed: %s)", t.name, s.failed, s.firstErr)
		}
	}
	step("REDIS_URL set vs unset: max throughput, %d rounds of %s", o.rounds, o.tput)
	rps := map[string][]float64{}
	cpu, served := map[string]time.Duration{}, map[string]int{}
	pair := []*target{viaPlain, viaRedis}
	for i := range o.rounds {
		for j := range pair {
			t := pair[(i+j)%2]
			o.pause(ctx)
			before, err := cpuTime(t.pid)
			if err != nil {
				return nil, err
			}
			s := attack(ctx, t, tinyChat, 0, o.tput, uint64(o.conns))
			after, err := cpuTime(t.pid)
			if err != nil {
				return nil, err
			}
			if s.failed > 0 {
				return nil, fmt.Errorf("keygate %s: %d failed requests (%s)", t.name, s.failed, s.firstErr)
			}
			rps[t.name] = append(rps[t.name], round(s.rps(), 0))
			cpu[t.name] += after - before
			served[t.name] += s.ok
		}
	}
	res.Rounds, res.CPUUs = rps, map[string]float64{}
	for name, d := range cpu {
		res.CPUUs[name] = round(float64(d.Microseconds())/float64(max(served[name], 1)), 1)
	}
	res.PlainRPS, res.RedisRPS = round(median(rps["plain"]), 0), round(median(rps["redis"]), 0)
	res.RPSRatio = round(res.RedisRPS/res.PlainRPS, 3)
	res.Rate = 1000
	step("REDIS_URL set vs unset: p99 at %d req/s, %d rounds of %s", res.Rate, o.rounds, o.rateDur)
	p50, p99 := map[string][]float64{}, map[string][]float64{}
	all := []*target{direct, viaPlain, viaRedis}
	for i := range o.rounds {
		for _, t := range interleave(all, i) {
			o.pause(ctx)
			s := attack(ctx, t, tinyChat, res.Rate, o.rateDur, 32)
			p50[t.name] = append(p50[t.name], ms(s.quantile(0.50)))
			p99[t.name] = append(p99[t.name], ms(s.quantile(0.99)))
		}
	}
	lat := func(name string) Lat {
		return Lat{P50Ms: round(median(p50[name]), 3), P99Ms: round(median(p99[name]), 3)}
	}
	res.Direct, res.Plain, res.Redis = lat("direct"), lat("plain"), lat("redis")
	added(&res.Plain, res.Direct)
	added(&res.Redis, res.Direct)
	res.AddedP99Ratio = round(res.Redis.AddedP99Ms/res.Plain.AddedP99Ms, 3)
	// The "set" keygate must have shared all along, or its figures are
	// those of a lone replica under another name.
	res.SetRedisUp = redisUp(ctx, "http://"+shared.addr+"/metrics")
	if !res.Control && res.SetRedisUp != 1 {
		return nil, fmt.Errorf("the keygate with REDIS_URL was not sharing through Redis after its rounds (keygate_redis_up %v)", res.SetRedisUp)
	}
	plain.stop()
	shared.stop()

	step("a rest learned on one replica, honoured by another: %d rests", o.restSamples)
	if err := restPropagation(ctx, o, kgBin, dir, rs, res); err != nil {
		return nil, err
	}
	return res, nil
}

// restPropagation runs two replicas over one Redis and a simulator whose
// "bad" keys answer every call with 429 (Retry-After 1s): a call through
// replica A that lands on one rests it there, and the time until replica
// B's /keys shows that rest is measured, o.restSamples times.
func restPropagation(ctx context.Context, o options, kgBin, dir string, rs *redisServer, res *ReplicaResult) error {
	const good, bad = 2, 10
	keys := make([]string, good+bad)
	profiles := map[string]simulator.Profile{}
	for i := range keys {
		keys[i] = benchKey("rest", i+1)
		p := simulator.Profile{}
		if i >= good {
			p = simulator.Profile{RateLimitEvery: 1, RateLimitBurst: 1, RetryAfter: time.Second}
		}
		profiles[keys[i]] = p
	}
	sim, err := simulator.Start(simulator.Options{Keys: profiles, Seed: 1})
	if err != nil {
		return err
	}
	defer sim.Close()
	// MAX_COOLDOWN=1s: the failed trials do not double the rests.
	env := []string{"REDIS_URL=" + rs.url(), "REDIS_PREFIX=bench-rest:", "BUDGET_POLL_INTERVAL=0", "KEY_ROTATION=round-robin", "CLIENT_REST_SHARE=1", "MAX_COOLDOWN=1s"}
	a, err := startKeygateEnv(ctx, kgBin, dir, sim.BaseURL(), keys, env...)
	if err != nil {
		return err
	}
	defer a.stop()
	b, err := startKeygateEnv(ctx, kgBin, dir, sim.BaseURL(), keys, env...)
	if err != nil {
		return err
	}
	defer b.stop()
	client := newClient(4)
	seen := map[int]time.Time{} // key id: the rest B showed last
	var lat []time.Duration
	deadline := time.Now().Add(60 * time.Second)
	for len(lat) < o.restSamples && time.Now().Before(deadline) && ctx.Err() == nil {
		before := sim.Stats()
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a.addr+"/v1/chat/completions", strings.NewReader(string(tinyChat)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("call through replica A: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		after := sim.Stats()
		var rested []int
		for i := good; i < len(keys); i++ {
			if after.Keys[keys[i]].Requests > before.Keys[keys[i]].Requests {
				rested = append(rested, i+1)
			}
		}
		if len(rested) == 0 {
			time.Sleep(20 * time.Millisecond) // every bad key rests: wait for one to come back
			continue
		}
		for len(rested) > 0 {
			if time.Since(t0) > 5*time.Second {
				return fmt.Errorf("replica B never showed the rest of keys %v", rested)
			}
			view, err := restsOf(ctx, client, "http://"+b.addr+"/keys")
			if err != nil {
				return err
			}
			now := time.Now()
			rested = slices.DeleteFunc(rested, func(id int) bool {
				u, ok := view[id]
				if !ok || !u.After(seen[id]) || !u.After(now) {
					return false
				}
				seen[id] = u
				lat = append(lat, now.Sub(t0))
				return true
			})
		}
	}
	if len(lat) == 0 {
		return errors.New("no rest measured")
	}
	slices.Sort(lat)
	res.Rests = len(lat)
	res.RestP50Ms, res.RestP99Ms, res.RestMaxMs = ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1])
	return nil
}

// restsOf reads a replica's /keys: each resting key's cooldown_until.
func restsOf(ctx context.Context, client *http.Client, url string) (map[int]time.Time, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /keys: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Keys []struct {
			ID    int        `json:"id"`
			Until *time.Time `json:"cooldown_until"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("GET /keys: %w", err)
	}
	m := map[int]time.Time{}
	for _, k := range out.Keys {
		if k.Until != nil {
			m[k.ID] = *k.Until
		}
	}
	return m, nil
}

// judgeReplicas adds the Redis phase's targets.
func (r *Report) judgeReplicas() {
	x := r.Replicas
	if x == nil {
		return
	}
	pair := "REDIS_URL set/unset"
	if x.Control {
		pair = "REDIS_URL unset/unset (A/A control, -redis-control)"
	}
	r.Targets = append(r.Targets,
		Target{Name: "passthrough throughput, " + pair, Value: x.RPSRatio, Limit: 0.97, Want: ">=", Met: x.RPSRatio >= 0.97},
		Target{Name: "added p99 at 1000 req/s, " + pair, Value: x.AddedP99Ratio, Limit: 1.1, Want: "<=", Met: x.AddedP99Ratio <= 1.1},
		Target{Name: "a rest honoured by another replica, p99 ms", Value: x.RestP99Ms, Limit: 100, Want: "<=", Met: x.RestP99Ms <= 100})
}

// redisUp reads keygate_redis_up from a keygate's /metrics: -1 when it
// has none (REDIS_URL unset) or cannot be read.
func redisUp(ctx context.Context, url string) float64 {
	if v, ok := metricValues(ctx, url, "keygate_redis_up")["keygate_redis_up"]; ok {
		return v
	}
	return -1
}

// print prints the Redis phase's table.
func (x *ReplicaResult) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if x.Control {
		fmt.Fprintf(tw, "\nREDIS_URL A/A control: both keygates without it (-redis-control)\tunset\tunset again\tagain/unset\n")
	} else {
		fmt.Fprintf(tw, "\nREDIS_URL (%s, %s; keygate_redis_up %g after the rounds)\tunset\tset\tset/unset\n", x.RedisVersion, x.RedisTransport, x.SetRedisUp)
	}
	fmt.Fprintf(tw, "max throughput, req/s (rounds %v / %v)\t%.0f\t%.0f\t%.3f\n", x.Rounds["plain"], x.Rounds["redis"], x.PlainRPS, x.RedisRPS, x.RPSRatio)
	fmt.Fprintf(tw, "CPU per request, µs\t%.1f\t%.1f\t%.3f\n", x.CPUUs["plain"], x.CPUUs["redis"], x.CPUUs["redis"]/x.CPUUs["plain"])
	fmt.Fprintf(tw, "p99 at %d req/s, ms (direct %.3f)\t%.3f\t%.3f\t\n", x.Rate, x.Direct.P99Ms, x.Plain.P99Ms, x.Redis.P99Ms)
	fmt.Fprintf(tw, "added p99, ms\t%.3f\t%.3f\t%.3f\n", x.Plain.AddedP99Ms, x.Redis.AddedP99Ms, x.AddedP99Ratio)
	fmt.Fprintf(tw, "a rest honoured by another replica after (%d rests)\tp50 %.2f ms\tp99 %.2f ms\tmax %.2f ms\n", x.Rests, x.RestP50Ms, x.RestP99Ms, x.RestMaxMs)
	tw.Flush()
}

// redisOnly runs the Redis phase alone, for -only redis.
func redisOnly(ctx context.Context, o options, step func(string, ...any)) (_ *ReplicaResult, err error) {
	step("building keygate")
	ws, err := newWorkspace(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, ws.close()) }()
	return replicaPhase(ctx, o, ws.kgBin, ws.dir, ws.up, step)
}
