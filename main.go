// Command keygate is an LLM API gateway that spreads calls over a pool of
// OpenRouter (or any OpenAI-compatible) API keys, takes failing keys out of
// rotation, and exports per-key metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/gctune"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/keysfile"
	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/simulator"
)

func main() {
	os.Exit(runAs(commandName(os.Args[0]), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args, environ []string, stdout, stderr io.Writer) int {
	return runAs("keygate", args, environ, stdout, stderr)
}

// commandName is how to run this program again, for hints: "go run ."
// when argv0 is a binary that `go run` built, else argv0 as invoked
// ("./keygate", "keygate").
func commandName(argv0 string) string {
	if argv0 == "" {
		return "keygate"
	}
	if goRunBinary(argv0) {
		return "go run ."
	}
	return argv0
}

// goRunBinary reports whether path is where `go run` puts the binary it
// builds: its build cache (<GOCACHE>/ab/<64 hex digits>-d/<name>, Go 1.24
// on) or a temporary directory (go-build<N>/b001/exe/<name>).
func goRunBinary(path string) bool {
	dir := filepath.Dir(path)
	if filepath.Base(dir) == "exe" && strings.HasPrefix(filepath.Base(filepath.Dir(filepath.Dir(dir))), "go-build") {
		return true
	}
	hash, ok := strings.CutSuffix(filepath.Base(dir), "-d")
	shard := filepath.Base(filepath.Dir(dir))
	return ok && len(hash) == 64 && isHex(hash) && len(shard) == 2 && isHex(shard) && strings.HasPrefix(hash, shard)
}

func isHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

// runAs is run for a program invoked as name.
func runAs(name string, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheckAs(name, args[1:], environ, stderr)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr) // the error of a bad flag
	fs.Usage = func() {} // written below, where asked for or after the error
	demo := fs.Bool("demo", false, "run against a built-in simulated upstream with 4 demo keys (offline)")
	envFile := fs.String("env-file", ".env", "file of settings read under the real environment")
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "keygate — one endpoint over a pool of LLM API keys\n\n")
		fmt.Fprintf(w, "usage: %s [-demo] [-env-file FILE]\n       %s healthcheck [-env-file FILE]\n\nflags:\n", name, name)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nsettings (environment, or the env file; the real environment wins):\n")
		config.Usage(w)
	}
	if err := fs.Parse(args); err != nil {
		// Help asked for is the answer, on stdout; after a usage error it
		// explains the error, on stderr.
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		fmt.Fprintln(stderr)
		usage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		// "keygate demo", or a flag after a word, which flag parsing
		// would silently drop.
		arg := strconv.Quote(fs.Arg(0))
		if len(fs.Arg(0)) > 16 || strings.HasPrefix(fs.Arg(0), "sk-") {
			arg = "(not quoted: it may be a key)"
		}
		fmt.Fprintf(stderr, "keygate: unexpected argument %s: flags start with -, like -demo\n\n", arg)
		usage(stderr)
		return 2
	}
	explicit := flagSet(fs, "env-file")
	dotenv, repeated, err := readDotenv(*envFile)
	// A missing .env is normal; a missing file the user named is a typo.
	if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
		fmt.Fprintf(stderr, "keygate: reading %s: %v\n", *envFile, err)
		return 2
	}
	// With KEYS_FILE the pool comes from the file (app reads it), so the
	// environment may hold no key.
	keysFile := dotenv["KEYS_FILE"]
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "KEYS_FILE="); ok {
			keysFile = v
		}
	}
	cfg, err := config.Load(environ, dotenv, !*demo && strings.TrimSpace(keysFile) == "")
	if err != nil {
		fmt.Fprintf(stderr, "keygate: %v%s\n", err, keysHint(err, dotenv, *envFile, name))
		return 2
	}
	// Log lines go out in batches (one write per access line would be a
	// system call per request); every return from here on writes what is
	// left, and an error on stderr follows the lines before it.
	logOut := console.NewLineBuffer(stdout, 0)
	defer logOut.Close()
	stderr = logOut.Before(stderr)
	log := console.New(logOut, cfg.LogFormat, cfg.LogLevelValue())
	cluster.RouteClientLog(log)
	app.LogRepeated(log, *envFile, repeated)
	if cfg.KeysFile != "" && !*demo {
		if names := config.KeyVarNames(environ, dotenv); len(names) > 0 {
			log.Warn("⚠️  KEYS_FILE is set: the pool comes from "+cfg.KeysFile+" alone; ignoring "+strings.Join(names, ", "),
				"event", "key_vars_ignored", "ignored", names)
		}
	}
	// Without KEYS_FILE, SIGHUP re-reads the pool from the .env the
	// gateway started from, under the real environment; the settings
	// that changed beside it are named, as a reload leaves them.
	started := *cfg
	reread := func() ([]keyring.Entry, []config.Duplicate, error) {
		dotenv, repeated, err := readDotenv(*envFile)
		if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
			return nil, nil, fmt.Errorf("reading %s: %w", *envFile, err)
		}
		app.LogRepeated(log, *envFile, repeated)
		c, err := config.Load(environ, dotenv, true)
		if err != nil {
			return nil, nil, err
		}
		if names := config.Unapplied(&started, c); len(names) > 0 {
			log.Warn("⚠️  "+strings.Join(names, ", ")+" changed in "+*envFile+": a reload applies the keys only; restart keygate for the rest",
				"event", "settings_unapplied", "settings", names)
		}
		return c.Keys, c.Duplicates, nil
	}

	if *demo {
		sim, err := simulator.Start(simulator.DemoOptions())
		if err != nil {
			fmt.Fprintf(stderr, "keygate: starting demo upstream: %v\n", err)
			return 1
		}
		defer sim.Close()
		cfg.BaseURL = sim.BaseURL()
		cfg.Keys = cfg.Keys[:0]
		for i, k := range simulator.DemoKeys() {
			cfg.Keys = append(cfg.Keys, keyring.Entry{ID: i + 1, Secret: secret.New(k)})
		}
		cfg.Duplicates, cfg.ForeignKeys, cfg.ShortKeys, cfg.OffAPIPath, cfg.UnreadKeyVars = nil, nil, nil, "", nil
		cfg.KeysFile = ""
		reread = nil
		log.Info("🎭 Demo mode: simulated upstream at "+cfg.BaseURL+" with 4 keys in 2 accounts (#1 rate-limited now and then, #2 revoked, #3 near its daily cap, account of #3 and #4 near its free-model quota)", "event", "demo")
		if cfg.AdminToken.IsZero() {
			log.Info("🎭 The admin API and the status page's buttons are off: set ADMIN_TOKEN to try them (ADMIN_TOKEN=demo-admin-token go run . -demo)", "event", "admin_off")
		}
	}

	a, err := app.New(cfg, log, app.Options{Reread: reread})
	if err != nil {
		fmt.Fprintf(stderr, "keygate: %v\n", err)
		return 2
	}
	defer routeStdLog(a.Log)()
	// From here on start-up lines pass the pool's redactor too, as every
	// line after them does: the warnings below quote settings (the base
	// URL's path), which may hold a key of a KEYS_FILE.
	log = a.Log
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		fmt.Fprintf(stderr, "keygate: %v%s\n", err, listenHint(err, cfg.Port))
		return 1
	}
	a.Warnings()
	for _, id := range cfg.ForeignKeys {
		log.Warn("⚠️  API Key #"+strconv.Itoa(id)+" does not look like an OpenRouter key (sk-or-v1-…), and OPENROUTER_BASE_URL is OpenRouter's: it will likely be refused (401)",
			"event", "key_foreign", "key_id", id)
	}
	for _, id := range cfg.ShortKeys {
		log.Warn("⚠️  API Key #"+strconv.Itoa(id)+" is shorter than "+strconv.Itoa(config.ShortKey)+" characters: keygate masks a key wherever it appears, answers included, so a model's text that holds it (a word like EMPTY) reaches clients masked",
			"event", "key_short", "key_id", id)
	}
	// With KEYS_FILE these are the file's (app.New read them from it); the
	// key variables of the environment were named as ignored above.
	for _, v := range cfg.UnreadKeyVars {
		reason := " is set but is not a key variable (OPENROUTER_API_KEY_<N>): its key is not in the pool"
		if v.Shadowed {
			reason = " is set but is not read, as numbered OPENROUTER_API_KEY_<N> are set too: its keys are not in the pool"
		}
		log.Warn("⚠️  "+v.Name+reason, "event", "key_variable_unread", "variable", v.Name)
	}
	if p := cfg.OffAPIPath; p != "" {
		log.Warn("⚠️  OPENROUTER_BASE_URL is OpenRouter's host with the path "+strconv.Quote(p)+", which is not its API: calls will likely get 404 (OpenRouter's API is https://openrouter.ai/api/v1)",
			"event", "base_url_off_api", "path", p)
	}
	if cfg.MaxInFlight <= cfg.RunMaxModels {
		// A /run holds a slot and each of its models one more.
		log.Warn("⚠️  MAX_IN_FLIGHT="+strconv.Itoa(cfg.MaxInFlight)+" is not above RUN_MAX_MODELS="+strconv.Itoa(cfg.RunMaxModels)+
			": a /run takes a slot and each of its models one more, so a /run of "+strconv.Itoa(cfg.MaxInFlight)+
			" or more models gets some refused as overloaded even on an idle gateway; raise MAX_IN_FLIGHT or lower RUN_MAX_MODELS",
			"event", "in_flight_below_run", "max_in_flight", cfg.MaxInFlight, "run_max_models", cfg.RunMaxModels)
	}
	if below := cooldownsAbove(cfg); below != "" {
		// A rest is never shorter than its first length (breaker.restFor).
		log.Warn("⚠️  MAX_COOLDOWN="+shortDuration(cfg.MaxCooldown)+" is below "+below+
			": a rest is never shorter than its first, so these rests neither double nor are cut to MAX_COOLDOWN; lower them, or raise MAX_COOLDOWN",
			"event", "max_cooldown_below", "max_cooldown", shortDuration(cfg.MaxCooldown))
	}
	if n := len(cfg.GatewayAPIKeys); n > 0 {
		log.Info("🔒 Client auth is on: requests need Authorization: Bearer <one of the "+plural(n, "token")+" in GATEWAY_API_KEYS>",
			"event", "client_auth", "tokens", n)
	}
	if cfg.PprofAddr != "" {
		stopDebug, err := app.StartDebug(cfg.PprofAddr, log)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "keygate: %v\n", err)
			return 1
		}
		defer stopDebug()
	}
	log.Info("🚀 keygate listening on http://localhost:"+strconv.Itoa(cfg.Port)+" with "+plural(a.Pool.Len(), "key")+", rotation "+cfg.KeyRotation,
		"event", "listening", "port", cfg.Port, "keys", a.Pool.Len(), "strategy", cfg.KeyRotation)
	// The start-up lines are out before the first request is answered.
	_ = logOut.Flush()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	// The collector is paced for a gateway's small heap (GOGC set by the
	// user wins), and a burst of streams gives its memory back when over.
	if _, userGOGC := lookupEnv(environ, "GOGC"); !userGOGC {
		defer gctune.Start(cfg.GCMinHeapBytes).Stop()
	}
	// As a burst's requests finish, its memory is freed, and once they are
	// done the upstream connections it left idle are closed; once its
	// clients have closed their connections too, their buffers are freed.
	var released sync.WaitGroup
	released.Go(func() {
		gctune.Release(ctx, a.InFlight, time.Second, releaseAfterPeak, func(over bool) {
			if over {
				a.CloseIdle()
			}
			gctune.FreeMemory()
		})
	})
	released.Go(func() {
		gctune.Release(ctx, a.Conns, time.Second, releaseAfterPeak, func(bool) { gctune.FreeMemory() })
	})
	defer func() { stop(); released.Wait() }()
	force := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-sigs:
			case <-done: // stopped, or never started: nothing to wait for
				return
			}
			if i == 0 {
				stop()
				continue
			}
			log.Warn("second signal: exiting now", "event", "second_signal")
			close(force)
			return
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go keysfile.OnHangup(ctx, hup, func() { a.Live.ReloadFrom("sighup") })
	if err := a.Serve(ctx, ln, force); err != nil {
		fmt.Fprintf(stderr, "keygate: %v\n", err)
		return 1
	}
	select {
	case <-force:
		return 1
	default:
	}
	log.Info("👋 keygate stopped", "event", "stopped")
	return 0
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// healthcheckAs parses healthcheck's flags (-env-file, as the gateway's)
// and runs it.
func healthcheckAs(name string, args, environ []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(name+" healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", ".env", "file of settings the gateway was started with")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keygate healthcheck: unexpected argument: usage: %s healthcheck [-env-file FILE]\n", name)
		return 2
	}
	explicit := flagSet(fs, "env-file")
	return healthcheck(environ, *envFile, explicit, stderr)
}

// healthcheck asks the local gateway's /healthz: exit 0 when it answers 200.
// It is the container HEALTHCHECK, which has no shell or curl. It finds the
// port as the gateway does: PORT from the environment, else from the env
// file, read by the gateway's own parser (a file it reads and godotenv
// does not, one with a byte-order mark, would otherwise send the check to
// the default port).
func healthcheck(environ []string, envFile string, explicit bool, stderr io.Writer) int {
	port := "4000"
	dotenv, _, err := readDotenv(envFile)
	switch {
	case err == nil && dotenv["PORT"] != "":
		port = dotenv["PORT"]
	case err != nil && (explicit || !errors.Is(err, os.ErrNotExist)):
		fmt.Fprintf(stderr, "keygate healthcheck: reading %s: %v\n", envFile, err)
		return 1
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok && v != "" {
			port = v
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		// Not quoted: a value pasted in the wrong variable may be a key.
		fmt.Fprintln(stderr, "keygate healthcheck: invalid PORT: want 1-65535")
		return 1
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "keygate healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "keygate healthcheck: status %d\n", resp.StatusCode)
		return 1
	}
	return 0
}

// cooldownsAbove names the first rests (as NAME=value) that MAX_COOLDOWN,
// the cap on doubling, is below; "" when none is.
func cooldownsAbove(cfg *config.Config) string {
	var names []string
	for _, c := range []struct {
		name string
		d    time.Duration
	}{{"AUTH_FAILURE_COOLDOWN", cfg.AuthFailureCooldown}, {"RATE_LIMIT_COOLDOWN", cfg.RateLimitCooldown}} {
		if c.d > cfg.MaxCooldown {
			names = append(names, c.name+"="+shortDuration(c.d))
		}
	}
	return strings.Join(names, " and ")
}

// shortDuration writes d as a setting would: 10m, not 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// plural is "1 key", "2 keys".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// keysHint is what to add to a key error of config.Load: which file to
// edit, and the demo, which needs no key.
func keysHint(err error, dotenv map[string]string, envFile, name string) string {
	var pe *config.PlaceholderError
	switch {
	case errors.As(err, &pe):
		for _, v := range pe.Vars {
			if base, _, _ := strings.Cut(v, " "); dotenv[base] != "" {
				return "; edit " + envFile + ", or try `" + name + " -demo` (offline, no keys needed)"
			}
		}
		return "; or try `" + name + " -demo` (offline, no keys needed)"
	case errors.Is(err, config.ErrNoKeys):
		return "; or try `" + name + " -demo` (offline, no keys needed)"
	}
	return ""
}

// listenHint is what to add to an error of listening on port.
func listenHint(err error, port int) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		return " (another program holds port " + strconv.Itoa(port) + ": stop it, or set PORT to a free port)"
	}
	return ""
}

// releaseAfterPeak is the fewest requests in flight, or client connections
// open, at once that make a burst whose memory (and idle upstream
// connections) is handed back to the system when it is over.
const releaseAfterPeak = 256

// lookupEnv is os.LookupEnv over environ.
func lookupEnv(environ []string, name string) (string, bool) {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// readDotenv reads a .env file; a line it cannot read is refused without
// being quoted (keysfile.ParseEnv), as it may hold a key.
// Its variables set on more than one line are named too, for a warning.
func readDotenv(path string) (map[string]string, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	vars, err := keysfile.ParseEnv(data)
	if err != nil {
		return nil, nil, err
	}
	return vars, keysfile.RepeatedNames(data, vars), nil
}

// routeStdLog sends the standard logger's lines, which Go's own packages
// write (net/http's transport quotes the bytes of a malformed upstream
// answer, an error body with a pool key in it among them), through l and
// so through its redactor, at warning level. It returns what puts the
// standard logger back as it was.
func routeStdLog(l *slog.Logger) (restore func()) {
	w, flags, prefix := stdlog.Writer(), stdlog.Flags(), stdlog.Prefix()
	stdlog.SetOutput(slog.NewLogLogger(l.Handler(), slog.LevelWarn).Writer())
	stdlog.SetFlags(0)
	stdlog.SetPrefix("")
	return func() {
		stdlog.SetOutput(w)
		stdlog.SetFlags(flags)
		stdlog.SetPrefix(prefix)
	}
}
