package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestStartupErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		want    string
	}{
		{"no keys", nil, nil, "OPENROUTER_API_KEY_1"},
		{"bad rotation", nil, []string{"OPENROUTER_API_KEY_1=" + shutdownKey, "KEY_ROTATION=often"}, "KEY_ROTATION"},
		{"bad port", nil, []string{"OPENROUTER_API_KEY_1=" + shutdownKey, "PORT=abc"}, "PORT"},
		{"bad base", nil, []string{"OPENROUTER_API_KEY_1=" + shutdownKey, "OPENROUTER_BASE_URL=%zz"}, "OPENROUTER_BASE_URL"},
		{"bad flag", []string{"-nope"}, nil, "-nope"},
		{"bad redis url", nil, []string{"OPENROUTER_API_KEY_1=" + shutdownKey, "REDIS_URL=http://localhost:6379"}, "REDIS_URL"},
		{"named env file missing", []string{"-env-file", "/nonexistent/keygate.env"}, []string{"OPENROUTER_API_KEY_1=" + shutdownKey}, "/nonexistent/keygate.env"},
		{"placeholder key", nil, []string{"OPENROUTER_API_KEY_1=" + shutdownKey, "OPENROUTER_API_KEY_2=sk-or-v1-xxxxxxxxxxxxxxxx"}, "OPENROUTER_API_KEY_2 holds a placeholder"},
		{"example's keys", []string{"-env-file", ".env.example"}, nil, "OPENROUTER_API_KEY_1, OPENROUTER_API_KEY_2 and OPENROUTER_API_KEY_3 hold placeholders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			empty := filepath.Join(t.TempDir(), "empty.env")
			if err := os.WriteFile(empty, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			code := run(append([]string{"-env-file", empty}, tc.args...), tc.environ, &out, &errb)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if tc.name != "bad flag" && len(lines) != 1 {
				t.Fatalf("want one line, got %q", errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("stderr %q does not name %s", errb.String(), tc.want)
			}
		})
	}
}

func TestHelpListsSettings(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{"-demo", "OPENROUTER_API_KEY_", "OPENROUTER_BASE_URL", "KEY_ROTATION", "random", "GATEWAY_API_KEYS",
		"RATE_LIMIT_COOLDOWN", "30s", "AUTH_FAILURE_COOLDOWN", "10m", "UPSTREAM_TIMEOUT", "120s", "MAX_BODY_BYTES", "LOG_FORMAT", "PORT", "4000"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("-h lacks %q", s)
		}
	}
}

// TestHelpStreams: help asked for is the answer, on stdout with exit 0
// (keygate -h | grep PORT); after a usage error it goes to stderr with
// exit 2, behind the error.
func TestHelpStreams(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		helpOnly string // "stdout" or "stderr"
	}{
		{[]string{"-h"}, 0, "stdout"},
		{[]string{"-help"}, 0, "stdout"},
		{[]string{"--help"}, 0, "stdout"},
		{[]string{"-nope"}, 2, "stderr"},
		{[]string{"-demo=maybe"}, 2, "stderr"},
		{[]string{"-env-file"}, 2, "stderr"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runAs("./keygate", tc.args, nil, &out, &errb)
			help, other := out.String(), errb.String()
			if tc.helpOnly == "stderr" {
				help, other = other, help
			}
			if code != tc.code || !strings.Contains(help, "usage: ./keygate [-demo]") || !strings.Contains(help, "PORT") || other != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and the help on %s alone", code, out.String(), errb.String(), tc.code, tc.helpOnly)
			}
			if tc.code == 2 && !strings.HasPrefix(errb.String(), "flag ") && !strings.HasPrefix(errb.String(), "invalid ") {
				t.Errorf("stderr %q does not start with the error", errb.String())
			}
		})
	}
}

func TestCommandName(t *testing.T) {
	for argv0, want := range map[string]string{
		"":                  "keygate",
		"keygate":           "keygate",
		"./keygate":         "./keygate",
		"/usr/local/bin/kg": "/usr/local/bin/kg",
		"/root/.cache/go-build/82/82ece6e9a84a7aef37317d622ede956f207e92b00133d591ecb7c5e1b6f97b08-d/keygate": "go run .",
		"/tmp/go-build2046361553/b001/exe/keygate":                                                            "go run .",
		"/home/me/82/82ece6e9-d/keygate":                                                                      "/home/me/82/82ece6e9-d/keygate",
		"/srv/exe/keygate":                                                                                    "/srv/exe/keygate",
	} {
		if got := commandName(argv0); got != want {
			t.Errorf("commandName(%q) = %q, want %q", argv0, got, want)
		}
	}
}

// TestKeyErrorHints: the errors of a pool that is empty or holds
// placeholders name the demo by the command as it was run, and the file to
// edit when the placeholders came from it.
func TestKeyErrorHints(t *testing.T) {
	for _, tc := range []struct {
		name, cmd string
		args      []string
		environ   []string
		want      string
	}{
		{"no keys under go run", "go run .", []string{"-env-file", os.DevNull}, nil, "; or try `go run . -demo`"},
		{"no keys, binary", "./keygate", []string{"-env-file", os.DevNull}, nil, "; or try `./keygate -demo`"},
		{"placeholders from the file", "keygate", []string{"-env-file", ".env.example"}, nil, "; edit .env.example, or try `keygate -demo`"},
		{"placeholders from the environment", "keygate", []string{"-env-file", os.DevNull}, []string{"OPENROUTER_API_KEYS=<your key>"},
			"OPENROUTER_API_KEYS (item 1) holds a placeholder, not an API key (…): put your OpenRouter keys there (https://openrouter.ai/settings/keys); or try `keygate -demo`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runAs(tc.cmd, tc.args, tc.environ, &out, &errb); code != 2 {
				t.Fatalf("exit %d; stderr %q", code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
				t.Fatalf("stderr %q, want one line with %q", errb.String(), tc.want)
			}
		})
	}
}

// TestPortInUseHint: a port already taken gets a hint to set PORT.
func TestPortInUseHint(t *testing.T) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	var out, errb bytes.Buffer
	code := run([]string{"-env-file", os.DevNull}, []string{"OPENROUTER_API_KEY_1=" + shutdownKey, "PORT=" + port, "LOG_LEVEL=error"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "address already in use") || !strings.Contains(errb.String(), "set PORT to a free port") {
		t.Fatalf("exit %d, stderr %q; want 1 and a hint to set PORT", code, errb.String())
	}
}

// TestStartupLines: start-up counts keys in good English, says that
// client auth is on, and warns about a key OpenRouter would refuse.
func TestStartupLines(t *testing.T) {
	p := startProcess(t, "OPENROUTER_BASE_URL=https://openrouter.ai/api/v1", "OPENROUTER_API_KEY_1=gsk_4f9Kd83jS0a8f7D6s5A4q3W2e1R0t9Y8u7I6",
		"GATEWAY_API_KEYS=tok-0123456789abcdef,tok-fedcba9876543210")
	out := p.out.String()
	for _, want := range []string{
		"with 1 key, rotation random",
		"🔒 Client auth is on: requests need Authorization: Bearer <one of the 2 tokens in GATEWAY_API_KEYS>",
		"⚠️  API Key #1 does not look like an OpenRouter key (sk-or-v1-…)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "GATEWAY_API_KEYS is not set") || strings.Contains(out, "0123456789abcdef") || strings.Contains(out, "D6s5A4q3") {
		t.Errorf("console:\n%s", out)
	}
}

// TestStartupWarnsUnreadKeyVar: a key variable misnamed beside others
// that load (OPENROUTER_API_KEY2) is named at start-up, never its value:
// the pool started a key short without a word.
func TestStartupWarnsUnreadKeyVar(t *testing.T) {
	const typo = "sk-or-v1-0000000000000000000000000000000000000000000000000000000000c0ffee"
	p := startProcess(t, "OPENROUTER_API_KEY2="+typo, "BUDGET_POLL_INTERVAL=0")
	out := p.out.String()
	if !strings.Contains(out, "⚠️  OPENROUTER_API_KEY2 is set but is not a key variable (OPENROUTER_API_KEY_<N>): its key is not in the pool") {
		t.Errorf("console does not name OPENROUTER_API_KEY2:\n%s", out)
	}
	if strings.Contains(out, "0000c0ffee") {
		t.Errorf("console prints the variable's value:\n%s", out)
	}
}

// TestStartupWarnsOffAPIBase: a base URL on OpenRouter's host but not on
// its API (a common slip: https://openrouter.ai/v1) is warned of at
// start-up, since every call would get 404; OpenRouter's own base is not.
func TestStartupWarnsOffAPIBase(t *testing.T) {
	const warning = "⚠️  OPENROUTER_BASE_URL is OpenRouter's host with the path"
	for _, tc := range []struct {
		base string
		want bool
	}{
		{"https://openrouter.ai/v1", true},
		{"https://openrouter.ai/api/v1", false},
	} {
		t.Run(tc.base, func(t *testing.T) {
			// No budget poll: the test makes no call off this machine.
			p := startProcess(t, "OPENROUTER_BASE_URL="+tc.base, "BUDGET_POLL_INTERVAL=0")
			out := p.out.String()
			if got := strings.Contains(out, warning+` "/v1", which is not its API`); got != tc.want {
				t.Fatalf("warned %v, want %v:\n%s", got, tc.want, out)
			}
			if !tc.want && strings.Contains(out, warning) {
				t.Fatalf("warned of OpenRouter's own base:\n%s", out)
			}
		})
	}
}

func TestHealthcheckFailsWithoutServer(t *testing.T) {
	var errb bytes.Buffer
	if code := healthcheck([]string{"PORT=1"}, ".env", false, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

// TestHealthcheckReadsPortFromDotenv: with PORT only in .env, as a gateway
// started from that directory reads it, healthcheck asks that port.
func TestHealthcheckReadsPortFromDotenv(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("PORT="+port+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var errb bytes.Buffer
	if code := healthcheck(nil, ".env", false, &errb); code != 0 {
		t.Fatalf("exit %d with PORT=%s in .env: %s", code, port, errb.String())
	}
	if code := healthcheck([]string{"PORT=1"}, ".env", false, &errb); code != 1 {
		t.Fatalf("exit %d: the environment's PORT=1 must win over .env", code)
	}
}

// TestHealthcheckEnvFile: healthcheck reads the env file as the gateway
// does: the one -env-file names, and one with a byte-order mark (Windows
// editors write it), which godotenv alone read as no PORT at all. A file
// named that is missing, or one that does not parse, fails the check
// rather than sending it to the default port.
func TestHealthcheckEnvFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	named := write("gateway.env", "PORT="+port+"\n")
	bom := write("bom.env", "\ufeffPORT="+port+"\r\n")
	bad := write("bad.env", "FOO BAR\nPORT="+port+"\n")
	for _, tt := range []struct {
		name string
		args []string
		want int
	}{
		{"named file", []string{"-env-file", named}, 0},
		{"byte-order mark", []string{"-env-file", bom}, 0},
		{"missing named file", []string{"-env-file", filepath.Join(dir, "none.env")}, 1},
		{"unparsable file", []string{"-env-file", bad}, 1},
		{"stray argument", []string{"now"}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var errb bytes.Buffer
			if code := runAs("keygate", append([]string{"healthcheck"}, tt.args...), nil, io.Discard, &errb); code != tt.want {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.want, errb.String())
			}
		})
	}
}

// TestStartupErrorsQuoteNoKey: a .env that does not parse is refused
// without quoting its lines (they hold keys), and healthcheck refuses a
// PORT that is not a port without quoting it.
func TestStartupErrorsQuoteNoKey(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.env")
	if err := os.WriteFile(bad, []byte("FOO BAR\nOPENROUTER_API_KEY_1="+shutdownKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-env-file", bad}, nil, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %q", code, errb.String())
	}
	if strings.Contains(errb.String(), shutdownKey[len(shutdownKey)-12:]) || !strings.Contains(errb.String(), bad) ||
		!strings.Contains(errb.String(), "not a .env file") {
		t.Fatalf("stderr %q: want the file named, its lines not quoted", errb.String())
	}
	errb.Reset()
	if code := healthcheck([]string{"PORT=" + shutdownKey}, ".env", false, &errb); code != 1 || strings.Contains(errb.String(), shutdownKey[len(shutdownKey)-12:]) ||
		!strings.Contains(errb.String(), "invalid PORT") {
		t.Fatalf("healthcheck with a key as PORT: exit %d, stderr %q", code, errb.String())
	}
}
