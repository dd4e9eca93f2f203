package configs

// These tests lint the deployment files that CI cannot run here, since
// there is no Docker engine and no Grafana: the Dockerfile and
// .env.example. The dashboard and the rules are checked in
// dashboard_test.go, the rules' behaviour by promtool in configs/check.sh.

import (
	"bufio"
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the repository as seen from this package's directory, where
// go test runs.
const repoRoot = ".."

// --- Dockerfile ---------------------------------------------------------

type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

type stage struct {
	image, name string
	instrs      []instruction
}

// parseDockerfile splits a Dockerfile into stages, joining continuation
// lines and dropping comments the way the builder does.
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		stages  []stage
		logical strings.Builder
	)
	flush := func() {
		line := strings.TrimSpace(logical.String())
		logical.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				fields = fields[1:] // --platform=...
			}
			if len(fields) == 0 {
				t.Fatalf("FROM without an image: %q", line)
			}
			st := stage{image: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s before the first FROM", in.cmd)
			}
			return
		}
		last := &stages[len(stages)-1]
		last.instrs = append(last.instrs, in)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue // comments, parser directives, comment lines inside a continuation
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			logical.WriteString(cont + " ")
			continue
		}
		logical.WriteString(line)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	if len(stages) == 0 {
		t.Fatal("no FROM in the Dockerfile")
	}
	return stages
}

var digestRef = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// pinned reports whether an image reference names a fixed version: a digest,
// or a tag other than latest.
func pinned(ref string) bool {
	if strings.Contains(ref, "$") {
		return false // set by a build argument: anything goes
	}
	if strings.Contains(ref, "@") {
		return digestRef.MatchString(ref)
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	return ok && tag != "" && tag != "latest"
}

// execForm parses the JSON array of an exec-form CMD, ENTRYPOINT or
// HEALTHCHECK CMD; ok is false for the shell form.
func execForm(args string) (argv []string, ok bool) {
	if json.Unmarshal([]byte(args), &argv) != nil || len(argv) == 0 {
		return nil, false
	}
	return argv, true
}

var (
	secretValue = regexp.MustCompile(`sk-[A-Za-z0-9_-]{6,}`)
	secretName  = regexp.MustCompile(`(?i)(api_?keys?|token|secret|passw(or)?d)`)
	envPair     = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)[= ]\s*("[^"]*"|'[^']*'|\S+)`)
)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	final := stages[len(stages)-1]
	names := map[string]bool{"scratch": true}

	t.Run("base images pinned", func(t *testing.T) {
		for _, st := range stages {
			if !names[st.image] && !pinned(st.image) {
				t.Errorf("FROM %s: pin a tag other than latest, or a digest", st.image)
			}
			if st.name != "" {
				names[st.name] = true
			}
		}
	})

	t.Run("build image has go.mod's Go", func(t *testing.T) {
		// The golang image sets GOTOOLCHAIN=local: an older Go than go.mod
		// asks for fails the build instead of downloading a newer one.
		i := slices.IndexFunc(stages, func(st stage) bool { return strings.HasPrefix(st.image, "golang:") })
		if i < 0 {
			t.Fatal("no golang:<version> build stage")
		}
		tag := strings.TrimPrefix(stages[i].image, "golang:")
		have, _, _ := strings.Cut(tag, "-")
		have, _, _ = strings.Cut(have, "@")
		want := goModVersion(t)
		if compareVersions(have, want) < 0 {
			t.Errorf("FROM %s: Go %s is older than go.mod's %s", stages[i].image, have, want)
		}
	})

	t.Run("final stage runs as non-root", func(t *testing.T) {
		user := ""
		for _, in := range final.instrs {
			if in.cmd == "USER" {
				user, _, _ = strings.Cut(in.args, ":")
			}
		}
		if user == "" || user == "root" || user == "0" {
			t.Errorf("final stage user %q: want a USER that is not root", user)
		}
	})

	t.Run("no secrets baked in", func(t *testing.T) {
		for _, st := range stages {
			for _, in := range st.instrs {
				switch in.cmd {
				case "ENV", "ARG", "LABEL":
					if secretValue.MatchString(in.args) {
						t.Errorf("%s %s: looks like an API key", in.cmd, in.args)
					}
					if in.cmd == "LABEL" {
						continue
					}
					for _, m := range envPair.FindAllStringSubmatch(in.args, -1) {
						if secretName.MatchString(m[1]) && strings.Trim(m[2], `"'`) != "" {
							t.Errorf("%s %s: a secret must come at run time, not from the image", in.cmd, m[1])
						}
					}
				case "COPY", "ADD":
					if slices.ContainsFunc(strings.Fields(in.args), func(f string) bool {
						return f == ".env" || strings.HasSuffix(f, "/.env")
					}) {
						t.Errorf("%s %s: copies .env into the image", in.cmd, in.args)
					}
				}
			}
		}
		ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(strings.Fields(string(ignore)), ".env") {
			t.Error(".dockerignore does not exclude .env")
		}
	})

	t.Run("final stage exposes 4000 and checks health without a shell", func(t *testing.T) {
		var exposed, health, entry bool
		for _, in := range final.instrs {
			switch in.cmd {
			case "EXPOSE":
				exposed = exposed || slices.Contains(strings.Fields(in.args), "4000") ||
					slices.Contains(strings.Fields(in.args), "4000/tcp")
			case "HEALTHCHECK":
				fields := strings.Fields(in.args)
				for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
					fields = fields[1:]
				}
				if len(fields) == 0 || fields[0] != "CMD" {
					t.Errorf("HEALTHCHECK %s: want CMD [...]", in.args)
					continue
				}
				argv, ok := execForm(strings.Join(fields[1:], " "))
				health = ok && strings.HasPrefix(argv[0], "/")
				if !health {
					t.Errorf("HEALTHCHECK %s: want exec form with an absolute path, the image has no shell", in.args)
				}
			case "ENTRYPOINT":
				_, entry = execForm(in.args)
			}
		}
		if !exposed {
			t.Error("final stage does not EXPOSE 4000")
		}
		if !health {
			t.Error("final stage has no exec-form HEALTHCHECK")
		}
		if !entry {
			t.Error("final stage has no exec-form ENTRYPOINT")
		}
	})

	t.Run("static reproducible build", func(t *testing.T) {
		var builds []string
		for _, st := range stages {
			for _, in := range st.instrs {
				if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
					builds = append(builds, in.args)
				}
			}
		}
		// configs/check.sh runs this very line, so there must be one.
		if len(builds) != 1 {
			t.Fatalf("want exactly one RUN with go build, got %d", len(builds))
		}
		for _, flag := range []string{"CGO_ENABLED=0", "-trimpath"} {
			if !slices.Contains(strings.Fields(builds[0]), flag) {
				t.Errorf("RUN %s: missing %s", builds[0], flag)
			}
		}
	})
}

// goModVersion is the Go version go.mod needs: its toolchain line, else its
// go line.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	version := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "go" && version == "":
			version = f[1]
		case len(f) == 2 && f[0] == "toolchain":
			version = strings.TrimPrefix(f[1], "go")
		}
	}
	if version == "" {
		t.Fatal("go.mod has no go line")
	}
	return version
}

// compareVersions compares dotted numeric versions such as 1.26 and 1.26.8;
// a missing part counts as 0.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return cmp.Compare(x, y)
		}
	}
	return 0
}

func TestPinned(t *testing.T) {
	tests := []struct {
		ref  string
		want bool
	}{
		{"golang:1.26.8-bookworm", true},
		{"gcr.io/distroless/static-debian12:nonroot", true},
		{"localhost:5000/keygate:v1", true},
		{"golang@sha256:" + strings.Repeat("ab", 32), true},
		{"golang:1.26.8@sha256:" + strings.Repeat("ab", 32), true},
		{"golang", false},
		{"golang:latest", false},
		{"localhost:5000/keygate", false},
		{"golang:${GO_VERSION}", false},
		{"gcr.io/distroless/static-debian12@sha256:ab", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			if got := pinned(tt.ref); got != tt.want {
				t.Errorf("pinned(%q) = %v, want %v", tt.ref, got, tt.want)
			}
		})
	}
}

// --- .env.example -------------------------------------------------------

func TestEnvExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	// The settings of CONTRACT.md's Configuration table.
	for _, name := range []string{
		"OPENROUTER_API_KEY_1", "OPENROUTER_API_KEY_2", "OPENROUTER_API_KEY_3",
		"OPENROUTER_API_KEYS", "OPENROUTER_BASE_URL", "PORT", "KEY_ROTATION",
		"GATEWAY_API_KEYS", "RATE_LIMIT_COOLDOWN", "AUTH_FAILURE_COOLDOWN",
		"UPSTREAM_TIMEOUT", "MAX_BODY_BYTES", "LOG_FORMAT",
	} {
		if !regexp.MustCompile(`(?m)^#? ?` + name + `=`).MatchString(text) {
			t.Errorf(".env.example does not mention %s", name)
		}
	}
	for _, key := range secretValue.FindAllString(text, -1) {
		if !strings.Contains(key, "PLACEHOLDER") && !strings.HasSuffix(key, "-") {
			t.Errorf(".env.example holds %q: placeholders must say PLACEHOLDER", key)
		}
	}
}

// --- nginx -------------------------------------------------------------

// TestNginxPassesTheHostAsSent: the load balancer must pass the Host the
// browser sent, port and all ($http_host; $host drops the port). keygate
// refuses a browser POST whose Origin is not the Host it was sent to, so
// with $host every status-page button and browser POST /run behind the
// compose stack got 403 forbidden_origin.
func TestNginxPassesTheHostAsSent(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "configs", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		if len(f) == 3 && f[0] == "proxy_set_header" && strings.EqualFold(f[1], "Host") {
			n++
			if f[2] != "$http_host" {
				t.Errorf("nginx.conf: proxy_set_header Host %s, want $http_host", f[2])
			}
		}
	}
	if n == 0 {
		t.Error("nginx.conf sets no Host header for keygate: nginx would send the upstream's name")
	}
}
