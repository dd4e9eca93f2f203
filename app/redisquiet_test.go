package app

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// redisCli runs redis-cli on rs's socket.
func redisCli(t *testing.T, rs *redistest.Server, args ...string) string {
	t.Helper()
	out, err := exec.Command("redis-cli", append([]string{"-s", rs.Socket(), "--no-raw"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v: %s", args, err, out)
	}
	return string(out)
}

// redisDump is every key of rs with its value, as text.
func redisDump(t *testing.T, rs *redistest.Server) string {
	t.Helper()
	var b strings.Builder
	for _, k := range strings.Fields(strings.ReplaceAll(redisCli(t, rs, "--raw", "KEYS", "*"), "\"", "")) {
		typ := strings.TrimSpace(redisCli(t, rs, "--raw", "TYPE", k))
		b.WriteString(k + " (" + typ + "): ")
		switch typ {
		case "string":
			b.WriteString(redisCli(t, rs, "GET", k))
		case "hash":
			b.WriteString(redisCli(t, rs, "HGETALL", k))
		case "set":
			b.WriteString(redisCli(t, rs, "SMEMBERS", k))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// monitor records every command Redis receives until the returned stop.
func redisMonitor(t *testing.T, rs *redistest.Server) (stop func() []string) {
	t.Helper()
	cmd := exec.Command("redis-cli", "-s", rs.Socket(), "MONITOR")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
		close(done)
	}()
	time.Sleep(100 * time.Millisecond)
	return func() []string {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		mu.Lock()
		defer mu.Unlock()
		return lines
	}
}

// TestNoRedisRoundTripPerRequest: successful calls make no Redis round trip
// (CONTRACT, Sharing): over a window with 400 successful calls Redis sees
// about what it sees idle (a re-read and a flush a second).
func TestNoRedisRoundTripPerRequest(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t)
	a, _ := newLiveApp(t, up.URL, []int{1, 2, 3}, Options{}, "REDIS_URL="+rs.URL())
	serveLoopback(t, a)
	waitFor(t, "redis up", a.Store.Up)
	time.Sleep(300 * time.Millisecond)
	count := func(do func()) []string {
		stop := redisMonitor(t, rs)
		t0 := time.Now()
		do()
		if d := time.Since(t0); d < 2*time.Second {
			time.Sleep(2*time.Second - d)
		}
		var cmds []string
		for _, l := range stop() {
			if !strings.Contains(l, "OK") || strings.Contains(l, "]") {
				cmds = append(cmds, l)
			}
		}
		return cmds
	}
	idle := count(func() {})
	busy := count(func() {
		for range 400 {
			if c := chat(t, a.Handler); c != http.StatusOK {
				t.Fatalf("chat %d", c)
			}
		}
	})
	t.Logf("idle: %d commands, busy (400 calls): %d commands", len(idle), len(busy))
	if len(busy) > len(idle)+6 {
		t.Errorf("400 successful calls made %d Redis commands against %d idle:\n%s", len(busy), len(idle), strings.Join(busy, "\n"))
	}
}

// TestNoSecretInRedis: after rests, disables, budget polls and a
// renumbering reload on two replicas, no key (whole) and no account id is
// anywhere in Redis, keys or values.
func TestNoSecretInRedis(t *testing.T) {
	rs := redistest.Start(t)
	up := newUpstream(t)
	up.revoke(2)
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.env")
	write := func(lines string) {
		if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("OPENROUTER_API_KEY_1=" + liveKeys[1] + "\nOPENROUTER_API_KEY_2=" + liveKeys[2] + "\nOPENROUTER_API_KEY_3=" + liveKeys[3] + "\n")
	a, _ := newLiveApp(t, up.URL, nil, Options{}, "REDIS_URL="+rs.URL(), "KEYS_FILE="+path, "BUDGET_POLL_INTERVAL=1s", "KEY_ROTATION=round-robin")
	b, _ := newLiveApp(t, up.URL, nil, Options{}, "REDIS_URL="+rs.URL(), "KEYS_FILE="+path, "BUDGET_POLL_INTERVAL=1s", "KEY_ROTATION=round-robin")
	serveLoopback(t, a)
	serveLoopback(t, b)
	waitFor(t, "redis up", func() bool { return a.Store.Up() && b.Store.Up() })
	for range 6 {
		chat(t, a.Handler)
		chat(t, b.Handler)
	}
	if err := a.Live.Disable(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	write("OPENROUTER_API_KEY_4=" + liveKeys[3] + "\nOPENROUTER_API_KEY_5=" + liveKeys[2] + "\nOPENROUTER_API_KEY_6=" + liveKeys[1] + "\n")
	if res, _ := a.Live.Reload(context.Background()); res.Refused != "" {
		t.Fatal(res.Refused)
	}
	for range 6 {
		chat(t, a.Handler)
	}
	time.Sleep(2500 * time.Millisecond)
	dump := redisDump(t, rs)
	t.Logf("redis:\n%s", dump)
	for id, k := range liveKeys {
		if strings.Contains(dump, k) || strings.Contains(dump, strings.TrimPrefix(k, "sk-or-v1-")) {
			t.Errorf("key %d in Redis", id)
		}
	}
	if strings.Contains(dump, "user_a") {
		t.Errorf("account id in Redis")
	}
}
