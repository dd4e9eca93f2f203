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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/joho/godotenv"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/console"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/simulator"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status.
func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(environ, stderr)
	}
	fs := flag.NewFlagSet("keygate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demo := fs.Bool("demo", false, "run against a built-in simulated upstream with 4 demo keys (offline)")
	envFile := fs.String("env-file", ".env", "file of settings read under the real environment")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "keygate — one endpoint over a pool of LLM API keys\n\n")
		fmt.Fprintf(stderr, "usage: keygate [-demo] [-env-file FILE]\n       keygate healthcheck\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nsettings (environment, or the env file; the real environment wins):\n")
		config.Usage(stderr)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "env-file" })
	dotenv, err := godotenv.Read(*envFile)
	// A missing .env is normal; a missing file the user named is a typo.
	if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
		fmt.Fprintf(stderr, "keygate: reading %s: %v\n", *envFile, err)
		return 2
	}
	cfg, err := config.Load(environ, dotenv, !*demo)
	if err != nil {
		fmt.Fprintf(stderr, "keygate: %v\n", err)
		return 2
	}
	log := console.New(stdout, cfg.LogFormat, cfg.LogLevelValue())
	cluster.RouteClientLog(log)

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
		cfg.Duplicates = nil
		log.Info("🎭 Demo mode: simulated upstream at " + cfg.BaseURL + " with 4 keys in 2 accounts (#2 revoked, #3 near its daily cap, account of #3 and #4 near its free-model quota)")
	}

	a, err := app.New(cfg, log, app.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "keygate: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		fmt.Fprintf(stderr, "keygate: %v\n", err)
		return 1
	}
	a.Warnings()
	if cfg.PprofAddr != "" {
		stopDebug, err := app.StartDebug(cfg.PprofAddr, log)
		if err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "keygate: %v\n", err)
			return 1
		}
		defer stopDebug()
	}
	log.Info("🚀 keygate listening on http://localhost:"+strconv.Itoa(cfg.Port)+" with "+strconv.Itoa(a.Pool.Len())+" keys, rotation "+cfg.KeyRotation,
		"event", "listening", "port", cfg.Port, "keys", a.Pool.Len(), "strategy", cfg.KeyRotation)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
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
			log.Warn("second signal: exiting now")
			close(force)
			return
		}
	}()
	if err := a.Serve(ctx, ln, force); err != nil {
		fmt.Fprintf(stderr, "keygate: %v\n", err)
		return 1
	}
	select {
	case <-force:
		return 1
	default:
	}
	log.Info("👋 keygate stopped")
	return 0
}

// healthcheck asks the local gateway's /healthz: exit 0 when it answers 200.
// It is the container HEALTHCHECK, which has no shell or curl. It finds the
// port as the gateway does: PORT from the environment, else from .env.
func healthcheck(environ []string, stderr io.Writer) int {
	port := "4000"
	if dotenv, err := godotenv.Read(".env"); err == nil && dotenv["PORT"] != "" {
		port = dotenv["PORT"]
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok && v != "" {
			port = v
		}
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
