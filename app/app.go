// Package app wires keygate together from a Config: key pool, breakers,
// metrics, relay and gateway, and runs the HTTP server with its limits and
// graceful shutdown. main and the end-to-end tests both build on it.
package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keygate/keygate/access"
	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/internal/conncount"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/keysfile"
	"github.com/keygate/keygate/metrics"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/share"
	"github.com/keygate/keygate/webui"
)

// App is a wired gateway.
type App struct {
	Config *config.Config
	// Live is the pool in force, its reloads and disables, and its
	// budgets.
	Live *Live
	// Budgets is the budget poller the app started with (Serve runs the
	// one in force, Live.Budgets(), which a reload replaces).
	Budgets *budget.Poller
	// Store shares state with other replicas (REDIS_URL); cluster.Local
	// without.
	Store cluster.Store
	// Pool and Breakers are the pool the app started with; the pool in
	// force is Relay.Pool().
	Pool     *keyring.Pool
	Breakers *breaker.Set
	Relay    *relay.Relay
	Registry *prometheus.Registry
	Handler  http.Handler
	Log      *slog.Logger
	// active counts requests being served, for the shutdown report;
	// conns the client connections open.
	active atomic.Int64
	conns  conncount.Counter
	// transport carries every upstream call; CloseIdle closes its idle
	// connections.
	transport http.RoundTripper
	// Share carries what this replica learns to the others (REDIS_URL);
	// with no Redis its store is cluster.Local.
	Share *share.Adapter
	// keysSum is the Sum of the KEYS_FILE reading New built the pool from.
	keysSum [sha256.Size]byte
	// keysRepeated are that reading's variables set twice, for Warnings.
	keysRepeated []string
}

// ErrShutdownCut is returned by Serve when SHUTDOWN_TIMEOUT (or a second
// signal) ended requests still in flight: the process should exit non-zero.
var ErrShutdownCut = errors.New("shutdown cut requests in flight")

// Options are what a Config does not say.
type Options struct {
	// Now is the clock of rests (tests move it). Default time.Now.
	Now func() time.Time
	// Transport overrides the upstream transport.
	Transport http.RoundTripper
	// Rand overrides the random source of key choice.
	Rand keyring.IntN
	// Reread re-reads the pool for SIGHUP and POST /admin/reload when
	// KEYS_FILE is not set (main re-reads the .env under the real
	// environment); nil refuses those reloads.
	Reread func() ([]keyring.Entry, []config.Duplicate, error)
	// Replica names this gateway on the status page; default the host
	// name.
	Replica string
}

// New wires a gateway from cfg, logging to log.
func New(cfg *config.Config, log *slog.Logger, o Options) (*App, error) {
	var keysSum [sha256.Size]byte
	var keysRepeated []string
	if cfg.KeysFile != "" {
		// The pool comes from the file alone.
		f, err := keysfile.Read(cfg.KeysFile)
		if err != nil {
			return nil, err
		}
		if err := f.ApplyTo(cfg); err != nil {
			return nil, err
		}
		keysSum, keysRepeated = f.Sum, f.Repeated
	}
	pool, err := keyring.New(cfg.Keys, nil)
	if err != nil {
		return nil, fmt.Errorf("building key pool: %w", err)
	}
	redactor := poolRedactor(pool)
	// Every log record passes the redactor: text from upstream (Go's own
	// error quoting a malformed answer) may hold a key.
	log = slog.New(secret.NewLogHandler(log.Handler(), redactor))
	strategy, err := keyring.ByName(cfg.KeyRotation, o.Rand)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing OPENROUTER_BASE_URL: %w", err)
	}
	reg := metrics.NewRegistry()
	// The store replicas share key facts through: Local (nothing to share)
	// without REDIS_URL.
	store, err := cluster.New(cluster.Options{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix, TrialTTL: cfg.UpstreamTimeout,
		BudgetTTL: 5 * cfg.BudgetPollInterval, Logger: log, Registerer: reg, Now: o.Now})
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	shared := share.New(store, log)
	settings := breaker.Settings{
		AuthCooldown:      cfg.AuthFailureCooldown,
		RateLimitCooldown: cfg.RateLimitCooldown,
		MaxCooldown:       cfg.MaxCooldown,
		Now:               o.Now,
	}
	var budgetShare budget.Share
	if cfg.RedisURL != "" {
		// Alone, there is nobody to tell: the hooks stay off.
		settings.Sink, settings.Trials, budgetShare = shared, shared, shared
	}
	breakers := breaker.NewSet(pool, settings)
	src := gateway.NewKeySource(pool, breakers)
	m, err := metrics.New(reg, src, metrics.Options{MaxModels: cfg.MetricsMaxModels})
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	obs := gateway.NewObserver(m, log, pool.Len())
	obs.Follow(pool)
	transport := o.Transport
	if transport == nil {
		transport = relay.NewTransport(0)
	}
	budgetO := budget.Options{
		URL:       cfg.BaseURL + "/key",
		Client:    &http.Client{Transport: transport},
		Interval:  cfg.BudgetPollInterval,
		Now:       o.Now,
		Observer:  gateway.NewBudgetObserver(m, log),
		Cooldowns: obs,
		Log:       log,
		Share:     budgetShare,
	}
	budgets := budget.New(pool, breakers, budgetO)
	shared.Attach(breakers, budgets, pool.Keys())
	ro := relay.Options{Transport: transport, Timeout: cfg.UpstreamTimeout, Observer: obs,
		RestShare: cfg.ClientRestShare, RestWindow: cfg.ClientRestWindow, StreamHold: cfg.StreamHoldTimeout}
	if cfg.StreamHoldTimeout <= 0 {
		ro.StreamHold = -1 // STREAM_HOLD_TIMEOUT=0: no hold
	}
	if cfg.BudgetPollInterval > 0 {
		// With polling off keygate never calls GET /key: faults act at
		// once, as the fault table says.
		ro.Confirmer = budgets
	}
	rl := relay.New(pool, breakers, ro)
	obs.SetAccounts(func(k *keyring.Key) string { return accountOf(rl, k) })
	live := &Live{relay: rl, obs: obs, src: src, m: m, log: log, redactor: redactor, settings: settings,
		budgetO: budgetO, confirm: ro.Confirmer != nil, entries: cfg.Keys, disabled: map[string]bool{},
		toggled: map[string]time.Time{}, read: o.Reread}
	live.seeMasks(pool)
	var redisUp func() *bool
	if cfg.RedisURL != "" {
		// Manual disables outlive snapshots in the live pool, which
		// shares them with the other replicas.
		live.OnToggle(func(ref KeyRef, on bool, at time.Time) {
			kind := cluster.Enable
			if on {
				kind = cluster.Disable
			}
			store.Publish(cluster.Event{Kind: kind, Key: ref, At: at})
		})
		redisUp = func() *bool { up := store.Up(); return &up }
	}
	live.budgets.Store(budgets)
	live.attach = shared.Attach
	if cfg.KeysFile != "" {
		live.read = func() ([]keyring.Entry, []config.Duplicate, error) {
			f, err := keysfile.Read(cfg.KeysFile)
			if err == nil {
				LogRepeated(log, f.Path, f.Repeated)
			}
			return f.Entries, f.Duplicates, err
		}
	}
	guard := access.New(cfg.GatewayAPIKeys, cfg.AdminToken)
	replica := o.Replica
	if replica == "" {
		replica, _ = os.Hostname()
	}
	page := webui.New(guard, &gateway.StatusSource{Relay: rl, Observer: obs, Budgets: live, Strategy: strategy.Name(), Replica: replica, RedisUp: redisUp}, log)
	gw := gateway.New(gateway.Options{
		Relay:           rl,
		Strategy:        strategy,
		Rand:            o.Rand,
		BaseURL:         base,
		Tokens:          cfg.GatewayAPIKeys,
		Viewer:          guard.Viewer,
		MaxBodyBytes:    cfg.MaxBodyBytes,
		ReadBodyTimeout: cfg.ReadBodyTimeout,
		MaxInFlight:     cfg.MaxInFlight,
		RunMaxModels:    cfg.RunMaxModels,
		Metrics:         m,
		Gatherer:        reg,
		Observer:        obs,
		Logger:          log,
		Redactor:        redactor,
		Spender:         live,
		Budgets:         live,
		Admin:           admin.New(guard, live, log),
		Page:            page,
		WriteTimeout:    cfg.WriteTimeout,
		CORSOrigins:     cfg.CORSOrigins,
		AllowedHosts:    cfg.AllowedHosts,
	})
	return &App{Config: cfg, Live: live, Budgets: budgets, Store: store, Share: shared, Pool: pool, Breakers: breakers, Relay: rl, Registry: reg, Handler: gw, Log: log, transport: transport, keysSum: keysSum, keysRepeated: keysRepeated}, nil
}

// poolRedactor masks the pool's keys.
func poolRedactor(pool *keyring.Pool) *secret.Redactor {
	secrets := make([]secret.Key, 0, pool.Len())
	for _, k := range pool.Keys() {
		secrets = append(secrets, k.Secret)
	}
	return secret.NewRedactor(secrets)
}

// Server returns the HTTP server for the app, with its timeouts.
func (a *App) Server() *http.Server {
	return &http.Server{
		Addr:              ":" + strconv.Itoa(a.Config.Port),
		Handler:           http.HandlerFunc(a.serveCounted),
		ReadHeaderTimeout: a.Config.ReadHeaderTimeout,
		IdleTimeout:       a.Config.IdleTimeout,
		ConnContext:       gateway.ConnContext,
		ConnState:         a.conns.Track,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelDebug),
	}
}

// InFlight is the number of requests being served now.
func (a *App) InFlight() int64 { return a.active.Load() }

// Conns is the number of client connections open now. Each keeps its read
// and write buffers while idle, so a burst of streams over HTTP/1.1 holds
// that memory until its clients close their connections, after its
// requests are done.
func (a *App) Conns() int64 { return a.conns.Open() }

// CloseIdle closes the upstream connections no call is using. After a
// burst, those are the surplus the burst opened (each with an HTTP/2 read
// loop, or HTTP/1.1's two, and their buffers), which the transport would
// otherwise keep for its 90 s idle timeout; the next call dials again if it
// finds none.
func (a *App) CloseIdle() {
	if c, ok := a.transport.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// serveCounted serves r, counted among the active requests.
func (a *App) serveCounted(w http.ResponseWriter, r *http.Request) {
	a.active.Add(1)
	defer a.active.Add(-1)
	a.Handler.ServeHTTP(w, r)
}

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting, lets requests and streams in flight finish for up to
// SHUTDOWN_TIMEOUT, and then closes what is left. force, when it yields,
// ends the wait at once.
func (a *App) Serve(ctx context.Context, ln net.Listener, force <-chan struct{}) error {
	// KEYS_FILE is watched from before the first request on; the watch
	// stops after the last.
	if a.Config.KeysFile != "" {
		stopWatch, err := a.WatchKeysFile()
		if err != nil {
			return err
		}
		defer stopWatch()
	}
	srv := a.Server()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// Budgets are polled while the server runs; the first poll of every
	// key goes out now.
	pctx, stopPolls := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() { a.Live.Run(pctx); close(polled) }()
	defer func() { stopPolls(); <-polled }()
	// Other replicas' events are applied while the server runs: manual
	// disables by the live pool (they outlive snapshots), the rest by the
	// adapter, onto the snapshot in force.
	shareCtx, stopShare := context.WithCancel(context.Background())
	sharing := make(chan struct{})
	go func() {
		_ = a.Store.Run(shareCtx, func(ev cluster.Event) {
			if ev.Kind == cluster.Disable || ev.Kind == cluster.Enable {
				a.Live.ApplyEvent(ev)
				return
			}
			a.Share.Apply(ev)
		})
		close(sharing)
	}()
	defer func() { stopShare(); <-sharing; _ = a.Close() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	a.Log.Info("🛑 Shutting down: finishing requests in flight (up to "+a.Config.ShutdownTimeout.String()+")", "event", "shutting_down")
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	go func() {
		select {
		case <-force:
			cancel()
		case <-sctx.Done():
		}
	}()
	err := srv.Shutdown(sctx)
	cut := int64(0)
	if err != nil {
		cut = a.active.Load()
		_ = srv.Close()
		what := " requests in flight were cut"
		if cut == 1 {
			what = " request in flight was cut"
		}
		a.Log.Warn("shutdown cut short: "+strconv.FormatInt(cut, 10)+what+"; open connections closed",
			"event", "shutdown_cut", "cut", cut, "err", err)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", serr)
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutting down: %w", err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %d cut by a second signal", ErrShutdownCut, cut)
	}
	if err != nil {
		return fmt.Errorf("%w: %d cut after %s", ErrShutdownCut, cut, a.Config.ShutdownTimeout)
	}
	return nil
}

// Close releases the shared store's connections; Serve does it when it
// returns, so only an App that never served needs it.
func (a *App) Close() error { return a.Share.Store().Close() }

// Warnings logs what a user should know at start-up.
func (a *App) Warnings() {
	LogRepeated(a.Log, a.Config.KeysFile, a.keysRepeated)
	LogDuplicates(a.Log, a.Config.Duplicates)
	if len(a.Config.GatewayAPIKeys) == 0 {
		a.Log.Warn("⚠️  GATEWAY_API_KEYS is not set: anyone who reaches this port spends your API keys", "event", "client_auth_off")
	}
}
