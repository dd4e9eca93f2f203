package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/simulator"
)

// replica is one keygate process of a fleet under test.
type replica struct {
	url  string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// buildKeygate builds the keygate binary once into a temporary directory.
func buildKeygate(t *testing.T) string {
	t.Helper()
	// The replica tests need Redis; under CI they run whatever the flags.
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "keygate")
	build := exec.Command("go", "build", "-o", bin, "github.com/keygate/keygate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startReplica runs bin on a free loopback port with env (NAME=value), and
// waits until it answers /readyz. It is killed at cleanup.
func startReplica(t *testing.T, bin string, env ...string) *replica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	r := &replica{url: "http://127.0.0.1:" + port, out: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "-env-file", "/dev/null")
	r.cmd.Env = append([]string{"PORT=" + port, "LOG_LEVEL=debug", "CLIENT_REST_SHARE=1", "KEY_ROTATION=round-robin"}, env...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("replica %s log, its calls answered 200 left out:\n%s", r.url, unroutine(r.out.String()))
		}
	})
	waitFor(t, 10*time.Second, "replica to answer /readyz", func() bool {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return r
}

// fleetEnv is the environment of replicas over sim with keys (ids 1..n)
// sharing redisURL.
func fleetEnv(sim *simulator.Server, redisURL string, keys []string, extra ...string) []string {
	env := []string{"OPENROUTER_BASE_URL=" + sim.BaseURL(), "REDIS_URL=" + redisURL}
	for i, k := range keys {
		env = append(env, "OPENROUTER_API_KEY_"+strconv.Itoa(i+1)+"="+k)
	}
	return append(env, extra...)
}

// waitFor polls cond every 10ms until it holds, failing after limit.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// chat sends one chat completion for model to base and returns its status
// (0 for a transport error) and how long it took.
func chat(client *http.Client, base, model string) (int, time.Duration) {
	start := time.Now()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"max_tokens":8}`
	resp, err := client.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, time.Since(start)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// keyView is the part of GET /keys these tests read.
type keyView struct {
	ID      int    `json:"id"`
	Account string `json:"account"`
	State   string `json:"state"`
	Reason  *string
	Until   *time.Time `json:"cooldown_until"`
	// FreeUntil is when the key's account takes free-model calls again.
	FreeUntil *time.Time `json:"free_blocked_until"`
}

// keysOf reads base's GET /keys, by key id.
func keysOf(t testing.TB, base string) map[int]keyView {
	t.Helper()
	resp, err := http.Get(base + "/keys")
	if err != nil {
		t.Fatalf("GET /keys: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Keys []struct {
			keyView
			RestReason *string `json:"rest_reason"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("GET /keys: %v", err)
	}
	m := map[int]keyView{}
	for _, k := range out.Keys {
		v := k.keyView
		v.Reason = k.RestReason
		m[v.ID] = v
	}
	return m
}

// resting reports whether key id rests on base (its cooldown is ahead).
func resting(t testing.TB, base string, id int) bool {
	v := keysOf(t, base)[id]
	return v.Until != nil && v.Until.After(time.Now())
}

// freeBlocked reports whether key id's account takes no free-model call on
// base now.
func freeBlocked(t testing.TB, base string, id int) bool {
	v := keysOf(t, base)[id]
	return v.FreeUntil != nil && v.FreeUntil.After(time.Now())
}

// load runs workers goroutines per replica, each sending chat calls one
// after another until stop closes, and returns every call's status and
// duration.
type loadResult struct {
	mu        sync.Mutex
	durations []time.Duration
	statuses  map[int]int
}

func runLoad(fleet []*replica, workers int, model string, stop <-chan struct{}) *loadResult {
	res := &loadResult{statuses: map[int]int{}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	for _, r := range fleet {
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, d := chat(client, r.url, model)
					res.mu.Lock()
					res.statuses[code]++
					res.durations = append(res.durations, d)
					res.mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	client.CloseIdleConnections()
	return res
}

// loadFor runs runLoad for d.
func loadFor(fleet []*replica, workers int, model string, d time.Duration) *loadResult {
	stop := make(chan struct{})
	time.AfterFunc(d, func() { close(stop) })
	return runLoad(fleet, workers, model, stop)
}

// errors are the calls that did not end in 200.
func (l *loadResult) errors() int {
	n := 0
	for code, c := range l.statuses {
		if code != http.StatusOK {
			n += c
		}
	}
	return n
}

// p99 is the 99th percentile of the call durations.
func (l *loadResult) p99() time.Duration {
	d := slices.Clone(l.durations)
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*99/100)]
}

func (l *loadResult) String() string {
	return fmt.Sprintf("%d calls, statuses %v, p99 %s", len(l.durations), l.statuses, l.p99())
}

// unroutine drops the lines of calls answered 200 from a replica's debug
// log: thousands of them under load would push what went wrong (rests,
// trials, Redis) and the failure itself out of a CI log's tail.
func unroutine(log string) string {
	var b strings.Builder
	skipped := 0
	for _, l := range strings.SplitAfter(log, "\n") {
		if strings.Contains(l, ": 200 in ") || strings.Contains(l, "→ 200 in ") {
			skipped++
			continue
		}
		b.WriteString(l)
	}
	fmt.Fprintf(&b, "(%d lines of calls answered 200 left out)", skipped)
	return b.String()
}
