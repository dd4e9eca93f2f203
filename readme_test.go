package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeBlocks returns the README's bash blocks that talk to the gateway.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```bash\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "http://localhost:4000") {
			blocks = append(blocks, m[1])
		}
	}
	return blocks
}

// TestReadmeExamples runs the README's curl examples, read from README.md
// itself, against `keygate -demo`, as a new user would.
func TestReadmeExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (CI installs it)", tool)
		}
	}
	blocks := readmeBlocks(t)
	if len(blocks) < 7 {
		t.Fatalf("README has %d runnable examples, want at least 7 (passthrough plain and streamed, /keys, four bash /run examples)", len(blocks))
	}
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-demo", "-env-file", os.DevNull)
	cmd.Dir = dir
	cmd.Env = []string{"PORT=" + port, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keygate -demo never came up")
		}
	}

	for i, block := range blocks {
		name := strconv.Itoa(i) + "_" + firstURL(block)
		t.Run(name, func(t *testing.T) {
			script := strings.ReplaceAll(block, "http://localhost:4000", base)
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			defer ccancel()
			out, err := exec.CommandContext(cctx, "bash", "-o", "pipefail", "-c", script).Output()
			if err != nil {
				t.Fatalf("example failed: %v\n%s\noutput:\n%s", err, block, out)
			}
			checkExample(t, block, out)
		})
	}
	if t.Failed() {
		t.Logf("gateway console:\n%s", logs.String())
	}
}

func firstURL(block string) string {
	m := regexp.MustCompile(`localhost:4000(/[a-z0-9/]*)`).FindStringSubmatch(block)
	if m == nil {
		return "unknown"
	}
	return strings.ReplaceAll(strings.Trim(m[1], "/"), "/", "_")
}

// checkExample asserts what the README says each example prints.
func checkExample(t *testing.T, block string, out []byte) {
	t.Helper()
	text := strings.TrimSpace(string(out))
	switch {
	case strings.Contains(block, `"stream": true`):
		if !strings.Contains(text, "data: ") || !strings.HasSuffix(text, "data: [DONE]") {
			t.Fatalf("streamed example printed no SSE events:\n%s", text)
		}
	case strings.Contains(block, "/v1/chat/completions"):
		var cc struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if json.Unmarshal(out, &cc) != nil || len(cc.Choices) != 1 || !strings.Contains(cc.Choices[0].Message.Content, "openai/gpt-4o-mini") {
			t.Fatalf("chat completion example printed:\n%s", text)
		}
	case strings.Contains(block, "/keys"):
		var keys struct {
			Strategy string
			Keys     []struct {
				ID     int    `json:"id"`
				Masked string `json:"masked"`
				State  string `json:"state"`
			}
		}
		if json.Unmarshal(out, &keys) != nil || keys.Strategy != "random" || len(keys.Keys) != 4 {
			t.Fatalf("/keys example printed:\n%s", text)
		}
	case strings.Contains(block, "for prompt in"):
		lines := strings.Split(text, "\n")
		if len(lines) != 3 {
			t.Fatalf("batch example printed %d lines, want 3:\n%s", len(lines), text)
		}
		for _, l := range lines {
			if !regexp.MustCompile(`^What is \w+\? -> 2/2 ok in \d+\.\d\ds$`).MatchString(l) {
				t.Fatalf("batch line %q", l)
			}
		}
	case strings.Contains(block, "jq -r"):
		lines := strings.Split(text, "\n")
		if len(lines) != 2 || !regexp.MustCompile(`^openai/gpt-4o-mini \[success, key \d, \d+\.\d\ds\]: Hello from openai/gpt-4o-mini`).MatchString(lines[0]) ||
			!regexp.MustCompile(`^x/broken \[error, key \d, \d+\.\d\ds\]: upstream 404: model not found$`).MatchString(lines[1]) {
			t.Fatalf("jq example printed:\n%s", text)
		}
	case strings.Contains(block, "/run"):
		var run struct {
			TotalModels int    `json:"total_models"`
			Successful  int    `json:"successful"`
			Failed      int    `json:"failed"`
			KeyRotation string `json:"key_rotation"`
			Responses   []struct {
				Model, Status, Output string
			} `json:"responses"`
		}
		if err := json.Unmarshal(out, &run); err != nil {
			t.Fatalf("/run example printed no JSON (%v):\n%s", err, text)
		}
		want := "random"
		if strings.Contains(block, `"random_key": false`) {
			want = "round-robin"
		}
		if run.TotalModels < 2 || run.Successful != run.TotalModels || run.Failed != 0 || len(run.Responses) != run.TotalModels || run.KeyRotation != want {
			t.Fatalf("/run example printed:\n%s", text)
		}
		for _, r := range run.Responses {
			if !strings.Contains(block, `"`+r.Model+`"`) || !strings.Contains(r.Output, r.Model) {
				t.Fatalf("/run answer %+v does not match the example", r)
			}
		}
	default:
		t.Fatalf("no check for this example:\n%s", block)
	}
}
