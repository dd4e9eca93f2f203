package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// memoryBound is the peak resident size keygate stays under, at the
// default settings, through the attacks of TestPeakMemoryUnderAttack; the
// README's security section quotes it.
const memoryBound = 256 << 20

// TestPeakMemoryUnderAttack runs the keygate binary against a hostile
// upstream and measures its peak resident size (VmHWM) after each attack
// that once made it hold hundreds of megabytes: a 1 MiB prompt to 32
// models, two /runs whose models answer 31 MiB each, and 100 answers that
// are small gzip bombs (8 MiB once decoded).
func TestPeakMemoryUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read a process's peak memory")
	}
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = zw.Write(make([]byte, 8<<20))
	_ = zw.Close()
	big := bytes.Repeat([]byte("x"), 1<<20)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.HasSuffix(r.URL.Path, "/bomb"):
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(bomb.Bytes())
		case bytes.Contains(body, []byte(`"model":"huge/`)):
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"`)
			for range 31 {
				if _, err := w.Write(big); err != nil {
					return
				}
			}
			_, _ = io.WriteString(w, `"}}]}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
		}
	}))
	defer up.Close()

	dir := t.TempDir()
	bin := filepath.Join(dir, "keygate")
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
	cmd := exec.Command(bin, "-env-file", "/dev/null")
	cmd.Env = []string{"OPENROUTER_BASE_URL=" + up.URL + "/api/v1", "OPENROUTER_API_KEY_1=" + shutdownKey, "PORT=" + port, "LOG_LEVEL=warn"}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keygate never answered /healthz\n%s", out)
		}
	}
	client := &http.Client{Timeout: 60 * time.Second}
	post := func(path string, body []byte) int {
		resp, err := client.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	runBody := func(prompt string, models []string) []byte {
		b, _ := json.Marshal(map[string]any{"prompt": prompt, "models": models})
		return b
	}
	many := func(prefix string, n int) []string {
		ms := make([]string, n)
		for i := range ms {
			ms[i] = prefix + strconv.Itoa(i)
		}
		return ms
	}
	parallel := func(n int, f func()) {
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		wg.Wait()
	}
	for _, attack := range []struct {
		name string
		run  func()
	}{
		{"1 MiB prompt to 32 models", func() {
			if code := post("/run", runBody(strings.Repeat("a", 1<<20), many("m/", 32))); code != 200 {
				t.Errorf("big prompt: status %d", code)
			}
		}},
		{"1 MiB prompt that escapes to 3 MiB, to 32 models", func() {
			// 96 MiB of bodies: over what one /run may send.
			if code := post("/run", runBody(strings.Repeat("a\"<", 1<<20/3), many("m/", 32))); code != http.StatusRequestEntityTooLarge {
				t.Errorf("escaping prompt: status %d, want 413", code)
			}
		}},
		{"/run bodies of MAX_BODY_BYTES made of small entries, refused", func() {
			// Each a 400 before any call; decoded whole, each took
			// 30 to 40 times its 10 MiB.
			for _, b := range manyEntries(10 << 20) {
				if code := post("/run", b); code != http.StatusBadRequest {
					t.Errorf("a body of many entries: status %d, want 400", code)
				}
			}
		}},
		{"two /runs of 31 MiB answers", func() {
			parallel(2, func() { post("/run", runBody("hi", many("huge/", 8))) })
		}},
		{"100 gzip bombs", func() {
			parallel(100, func() { post("/v1/bomb", []byte(`{"model":"m"}`)) })
		}},
	} {
		attack.run()
		hwm := peakRSS(t, cmd.Process.Pid)
		t.Logf("after %s: peak RSS %d MiB", attack.name, hwm>>20)
		if hwm > memoryBound {
			t.Errorf("after %s: peak RSS %d MiB, over the %d MiB bound", attack.name, hwm>>20, memoryBound>>20)
		}
	}
}

// peakRSS reads a process's VmHWM, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// manyEntries are /run bodies of about size bytes, each refused for
// having too many small entries: models, messages, params' fields, or
// unknown top-level fields (with params too many as well).
func manyEntries(size int) [][]byte {
	fill := func(head, entry, tail string) []byte {
		var b bytes.Buffer
		b.WriteString(head)
		for i := 0; b.Len() < size-len(entry)-len(tail); i++ {
			fmt.Fprintf(&b, entry, i)
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	return [][]byte{
		fill(`{"prompt":"x","models":[`, `"m%d",`, `"m"]}`),
		fill(`{"models":["m"],"messages":[`, `{"role":"u%d"},`, `{"role":"user"}]}`),
		fill(`{"prompt":"x","models":["m"],"params":{`, `"k%d":1,`, `"z":1}}`),
		fill(`{"prompt":"x","models":["m"],`, `"k%d":1,`, `"params":[]}`),
	}
}
