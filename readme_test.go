package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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
	ctx, base, logs := startDemo(t)
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

// startDemo builds keygate and runs `keygate -demo` on a free loopback
// port until the test ends; it returns the test's context, the gateway's
// URL and its console.
func startDemo(t *testing.T) (context.Context, string, *lockedBuffer) {
	t.Helper()
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
	logs := &lockedBuffer{}
	cmd := exec.CommandContext(ctx, bin, "-demo", "-env-file", os.DevNull)
	cmd.Dir = dir
	cmd.Env = []string{"PORT=" + port, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		cancel()
	})
	base := "http://127.0.0.1:" + port
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keygate -demo never came up:\n%s", logs)
		}
	}
	return ctx, base, logs
}

// TestReadmePowerShell: the README's PowerShell example sends exactly the
// JSON of one of its bash /run examples, and that body, as ConvertTo-Json
// writes it (PowerShell 7 and Windows PowerShell 5.1), gets a full answer
// from /run.
func TestReadmePowerShell(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ps := regexp.MustCompile("(?s)```powershell\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(ps) != 1 {
		t.Fatalf("README has %d PowerShell examples, want 1", len(ps))
	}
	script := ps[0][1]
	at := strings.Index(script, "@{")
	// The charset: Windows PowerShell sends a body as ISO-8859-1 without
	// it, which /run refuses as not UTF-8.
	if at < 0 || !strings.Contains(script, "-Uri http://localhost:4000/run -Method Post -ContentType 'application/json; charset=utf-8' -Body $body") {
		t.Fatalf("PowerShell example is not a hashtable sent to /run:\n%s", script)
	}
	table, rest, err := psLiteral(script[at:])
	if err != nil || !strings.HasPrefix(strings.TrimSpace(rest), "| ConvertTo-Json\n") {
		t.Fatalf("PowerShell example: %v; after the hashtable %q", err, rest)
	}
	sent := psJSON(table, false)

	// The bodies of the bash /run examples, by their JSON value.
	var same string
	var want any
	if err := json.Unmarshal([]byte(sent), &want); err != nil {
		t.Fatal(err)
	}
	for _, block := range readmeBlocks(t) {
		m := regexp.MustCompile(`(?s)localhost:4000/run .*?-d '(.*?)'`).FindStringSubmatch(block)
		if m == nil {
			continue
		}
		var got any
		if json.Unmarshal([]byte(m[1]), &got) == nil && reflect.DeepEqual(got, want) {
			same = m[1]
		}
	}
	if same == "" {
		t.Fatalf("the PowerShell example sends\n%s\nwhich no bash /run example sends", sent)
	}

	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, base, logs := startDemo(t)
	models := len(want.(map[string]any)["models"].([]any))
	for _, legacy := range []bool{false, true} {
		body := psJSON(table, legacy)
		resp, err := http.Post(base+"/run", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			TotalModels int    `json:"total_models"`
			Successful  int    `json:"successful"`
			KeyRotation string `json:"key_rotation"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || out.TotalModels != models || out.Successful != models || out.KeyRotation != "random" {
			t.Fatalf("legacy %v: /run answered %d %+v (%v) to\n%s\nconsole:\n%s", legacy, resp.StatusCode, out, err, body, logs)
		}
	}
}

// TestReadmeGoVersion: the README asks for the Go that go.mod names.
func TestReadmeGoVersion(t *testing.T) {
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Go " + string(m[1]) + " or newer"; !strings.Contains(string(readme), want) {
		t.Fatalf("README does not say %q", want)
	}
	for _, v := range regexp.MustCompile(`\bGo \(?(1\.\d+(?:\.\d+)?)`).FindAllStringSubmatch(string(readme), -1) {
		if v[1] != string(m[1]) {
			t.Errorf("README names Go %s; go.mod says %s", v[1], m[1])
		}
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
		checkKeysFields(t, out)
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

// checkKeysFields: every field of the /keys answer out is named in the
// README's description of it, the paragraph before the example, so that a
// field added to /keys is documented where users look.
func checkKeysFields(t *testing.T, out []byte) {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	at := strings.Index(string(readme), "```bash\ncurl -s http://localhost:4000/keys\n")
	if at < 0 {
		t.Fatal("README has no /keys example")
	}
	para := string(readme[:at])
	para = para[strings.LastIndex(strings.TrimRight(para, "\n"), "\n\n")+1:]
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(para, -1) {
		named[m[1]] = true
	}
	var answer struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(out, &answer) != nil || json.Unmarshal(out, &top) != nil {
		t.Fatalf("/keys printed no JSON:\n%s", out)
	}
	fields := map[string]bool{}
	for f := range top {
		fields[f] = f != "keys"
	}
	for _, k := range answer.Keys {
		for f := range k {
			fields[f] = true
		}
	}
	for f, check := range fields {
		if check && !named[f] {
			t.Errorf("/keys answers a field %q that the README's description of /keys does not name:\n%s", f, para)
		}
	}
}
