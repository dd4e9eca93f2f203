package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hangupKeys look like real keys: the placeholder check refuses templated ones.
var hangupKeys = []string{
	"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",
	"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",
	"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",
}

func keyLines(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("OPENROUTER_API_KEY_" + strconv.Itoa(i+1) + "=" + hangupKeys[i] + "\n")
	}
	return b.String()
}

// runKeygate builds and starts the binary in dir with args and env, and
// returns its URL and output.
func runKeygate(t *testing.T, dir string, args []string, env ...string) (string, *lockedBuffer, *exec.Cmd) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "keygate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	out := &lockedBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"OPENROUTER_BASE_URL=http://127.0.0.1:9", "BUDGET_POLL_INTERVAL=0", "PORT=" + port}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	url := "http://127.0.0.1:" + port
	waitUntil(t, "keygate up", func() bool {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, out)
	return url, out, cmd
}

func keyIDs(t *testing.T, url string) []int {
	t.Helper()
	resp, err := http.Get(url + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ks struct {
		Keys []struct {
			ID int `json:"id"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ks); err != nil {
		t.Fatal(err)
	}
	ids := []int{}
	for _, k := range ks.Keys {
		ids = append(ids, k.ID)
	}
	return ids
}

func waitUntil(t *testing.T, what string, cond func() bool, out *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 15s for %s; output:\n%s", what, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHangupRereadsDotenv: without KEYS_FILE, SIGHUP re-reads the pool
// from the .env the gateway started from.
func TestHangupRereadsDotenv(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "keys.env")
	if err := os.WriteFile(env, []byte(keyLines(2)), 0o600); err != nil {
		t.Fatal(err)
	}
	url, out, cmd := runKeygate(t, dir, []string{"-env-file", env})
	if got := keyIDs(t, url); len(got) != 2 {
		t.Fatalf("started with keys %v", got)
	}
	if err := os.WriteFile(env, []byte(keyLines(3)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the third key after SIGHUP", func() bool { return len(keyIDs(t, url)) == 3 }, out)
	waitUntil(t, "the reload line", func() bool {
		return strings.Contains(out.String(), "🔁 Key pool reloaded: 3 keys (+1 added, −0 removed, 2 kept)")
	}, out)
	if strings.Contains(out.String(), "settings") {
		t.Fatalf("a reload of keys alone warned of settings:\n%s", out)
	}
	// Settings beside the keys are not applied: the operator is told
	// which, by name (a token's value is never quoted), and keygate
	// serves on as it was.
	const token = "client-token-changed-by-hand"
	if err := os.WriteFile(env, []byte(keyLines(3)+"GATEWAY_API_KEYS="+token+"\nRATE_LIMIT_COOLDOWN=45s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the warning of unapplied settings", func() bool {
		return strings.Contains(out.String(), "GATEWAY_API_KEYS, RATE_LIMIT_COOLDOWN changed in "+env+": a reload applies the keys only; restart keygate for the rest")
	}, out)
	if strings.Contains(out.String(), token) {
		t.Fatalf("the warning quotes the token:\n%s", out)
	}
	if got := keyIDs(t, url); len(got) != 3 {
		t.Fatalf("after the second SIGHUP keys %v, still served without a token", got)
	}
}

// TestHangupKeysFile: with KEYS_FILE the pool comes from the file alone
// (key variables elsewhere are named and ignored); SIGHUP re-reads it, and
// a file that does not parse keeps the pool.
func TestHangupKeysFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pool.env")
	if err := os.WriteFile(path, []byte(keyLines(1)), 0o600); err != nil {
		t.Fatal(err)
	}
	url, out, cmd := runKeygate(t, dir, []string{"-env-file", "/dev/null"},
		"KEYS_FILE="+path, "OPENROUTER_API_KEY_7="+hangupKeys[2])
	if got := keyIDs(t, url); len(got) != 1 || got[0] != 1 {
		t.Fatalf("started with keys %v, want the file's [1]", got)
	}
	if !strings.Contains(out.String(), "ignoring OPENROUTER_API_KEY_7") {
		t.Errorf("no warning naming the ignored variable:\n%s", out)
	}
	if err := os.WriteFile(path, []byte("not a key line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the refusal", func() bool { return strings.Contains(out.String(), "reload refused, keeping 1 key:") }, out)
	if got := keyIDs(t, url); len(got) != 1 {
		t.Fatalf("a refused file changed the pool: %v", got)
	}
	if strings.Contains(out.String(), "not a key line") {
		t.Error("the refusal quotes the file")
	}
}
