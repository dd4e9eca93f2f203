// Package config reads keygate's settings from the environment and from a
// .env file (the real environment wins), and the key pool from
// OPENROUTER_API_KEY_<N> or OPENROUTER_API_KEYS.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/caarlos0/env/v11"

	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// Config is every setting. The env tags are the contract's variable names;
// help tags feed `keygate -h`.
type Config struct {
	BaseURL             string        `env:"OPENROUTER_BASE_URL" envDefault:"https://openrouter.ai/api/v1" help:"upstream base; /v1/<rest> maps to <base>/<rest>"`
	Port                int           `env:"PORT" envDefault:"4000" help:"listen port (all interfaces)"`
	KeyRotation         string        `env:"KEY_ROTATION" envDefault:"random" help:"random, round-robin or least-busy"`
	GatewayAPIKeys      []secret.Key  `env:"GATEWAY_API_KEYS" help:"comma-separated client tokens; when set, /run, /v1/* and /keys need Authorization: Bearer <token>"`
	RateLimitCooldown   time.Duration `env:"RATE_LIMIT_COOLDOWN" envDefault:"30s" help:"rest after a 429 without a reset hint"`
	AuthFailureCooldown time.Duration `env:"AUTH_FAILURE_COOLDOWN" envDefault:"10m" help:"how long a key rests after a 401 (doubling on each failed trial), and an account after a credit 402"`
	MaxCooldown         time.Duration `env:"MAX_COOLDOWN" envDefault:"1h" help:"cap on a rest that doubles after each failed trial"`
	UpstreamTimeout     time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"120s" help:"one upstream call (a stream: longest silence between bytes)"`
	MaxBodyBytes        int64         `env:"MAX_BODY_BYTES" envDefault:"10485760" help:"larger request bodies get 413"`
	MaxInFlight         int           `env:"MAX_IN_FLIGHT" envDefault:"4096" help:"concurrent client requests; past it 503 with Retry-After"`
	RunMaxModels        int           `env:"RUN_MAX_MODELS" envDefault:"32" help:"most models in one POST /run"`
	MetricsMaxModels    int           `env:"METRICS_MAX_MODELS" envDefault:"200" help:"distinct model label values; the rest count as other"`
	ReadHeaderTimeout   time.Duration `env:"READ_HEADER_TIMEOUT" envDefault:"10s" help:"time a client has to send its request headers"`
	ReadBodyTimeout     time.Duration `env:"READ_BODY_TIMEOUT" envDefault:"60s" help:"time a client has to send its whole request body"`
	IdleTimeout         time.Duration `env:"IDLE_TIMEOUT" envDefault:"120s" help:"keep-alive connection idle limit"`
	ShutdownTimeout     time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s" help:"on SIGTERM, how long in-flight requests may finish"`
	LogFormat           string        `env:"LOG_FORMAT" envDefault:"text" help:"text (console lines) or json"`
	LogLevel            string        `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	BudgetPollInterval  time.Duration `env:"BUDGET_POLL_INTERVAL" envDefault:"60s" help:"how often each key's budget is read from GET <base>/key (jittered; also after a 402 or 429); 0 is off"`
	ClientRestShare     float64       `env:"CLIENT_REST_SHARE" envDefault:"0.5" help:"share of the pool one client's requests may rest per CLIENT_REST_WINDOW without GET /key confirming it"`
	ClientRestWindow    time.Duration `env:"CLIENT_REST_WINDOW" envDefault:"1m" help:"window of CLIENT_REST_SHARE"`
	StreamHoldTimeout   time.Duration `env:"STREAM_HOLD_TIMEOUT" envDefault:"15s" help:"how long a streamed answer's status is held back waiting for its first data event, so that an error there goes to another key; 0 is off"`
	GCMinHeapBytes      uint64        `env:"GC_MIN_HEAP_BYTES" envDefault:"33554432" help:"the garbage collector lets the heap grow to this size before it runs (then Go's usual pacing takes over); less collecting under load for up to this much memory; 0 is Go's default; ignored when GOGC is set"`
	PprofAddr           string        `env:"PPROF_ADDR" help:"loopback host:port (127.0.0.1:6060) serving /debug/pprof/ for profiling; unset is off"`
	KeysFile            string        `env:"KEYS_FILE" help:"file holding the pool as OPENROUTER_API_KEY_<N>=<key> lines (a .env works); re-read when it changes and on SIGHUP"`
	AdminToken          secret.Key    `env:"ADMIN_TOKEN" help:"token for /admin/* (Authorization: Bearer <token>); unset, /admin/* answers 404"`
	RedisURL            string        `env:"REDIS_URL" help:"redis://[user:pass@]host:port/db, rediss://… (TLS) or unix:///path: replicas share what they learn about keys; unset keeps it all in this process"`
	RedisPrefix         string        `env:"REDIS_PREFIX" envDefault:"keygate:" help:"namespace of every Redis key, so that several pools can share one Redis"`
	WriteTimeout        time.Duration `env:"WRITE_TIMEOUT" envDefault:"60s" help:"a client that accepts no bytes of an answer for this long is cut off, its slot freed and its upstream call cancelled"`
	CORSOrigins         []string      `env:"CORS_ORIGINS" help:"browser origins allowed to call keygate (comma-separated, or *); other browser requests get 403"`
	AllowedHosts        []string      `env:"ALLOWED_HOSTS" help:"extra Host values accepted when GATEWAY_API_KEYS is unset (loopback and this machine's names always are)"`

	// Keys is the pool, ordered by id; filled from the key variables.
	Keys []keyring.Entry `env:"-"`
	// Duplicates are ids whose key repeats an earlier one's; they are
	// dropped from Keys.
	Duplicates []Duplicate `env:"-"`
	// ForeignKeys are ids whose key does not look like an OpenRouter key
	// (sk-or-v1-…) while BaseURL is OpenRouter's, which would refuse it:
	// start-up warns about each.
	ForeignKeys []int `env:"-"`
	// ShortKeys are ids whose key is shorter than ShortKey characters (a
	// local server's "EMPTY" or "ollama"): keygate masks a key wherever
	// it appears, answers included, so start-up warns that text holding
	// such a word reaches clients masked.
	ShortKeys []int `env:"-"`
	// OffAPIPath is BaseURL's path ("/" for none) when BaseURL is
	// OpenRouter's host but not its API (/api/v1): every call would get
	// 404, and start-up warns. Empty otherwise.
	OffAPIPath string `env:"-"`
	// UnreadKeyVars are variables set that look meant for the pool but
	// are not read into it: start-up warns about each.
	UnreadKeyVars []UnreadKeyVar `env:"-"`
}

// Duplicate names a key given twice.
type Duplicate struct{ ID, SameAs int }

// Key variable names.
const (
	keyVarPrefix = "OPENROUTER_API_KEY_"
	keyListVar   = "OPENROUTER_API_KEYS"
)

// ErrNoKeys is returned by Load when the pool would be empty.
var ErrNoKeys = errors.New("no API keys: set OPENROUTER_API_KEY_1 … OPENROUTER_API_KEY_<N> or OPENROUTER_API_KEYS (comma-separated), in the environment or .env")

// Load reads the settings from environ (the real environment, as
// os.Environ gives it) over dotenv (the .env file's variables, may be nil).
// With requireKeys (the pool is for real use, not the demo's), an empty
// pool is ErrNoKeys and one holding placeholders a *PlaceholderError.
func Load(environ []string, dotenv map[string]string, requireKeys bool) (*Config, error) {
	vars := make(map[string]string, len(dotenv)+len(environ))
	for k, v := range dotenv {
		vars[k] = v
	}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: vars}); err != nil {
		return nil, masked(explain(err, vars), vars)
	}
	if err := c.validate(); err != nil {
		return nil, masked(err, vars)
	}
	raw, err := rawPool(vars)
	if err != nil {
		return nil, err
	}
	if requireKeys {
		if len(raw) == 0 {
			return nil, noKeys(vars)
		}
		if err := checkPlaceholders(raw); err != nil {
			return nil, err
		}
	}
	if err := checkPrintable(raw); err != nil {
		return nil, err
	}
	c.setPool(raw, vars)
	// The warning quotes the path, where a key or a token may have been
	// pasted (https://openrouter.ai/api/v1/sk-or-v1-…).
	if p := offAPIPath(c.BaseURL); p != "" {
		c.OffAPIPath = varsRedactor(vars).Redact(p)
	}
	return &c, nil
}

// UsePool puts the pool that vars give (a KEYS_FILE's variables, read as
// the environment's are) in place of the one Load read, with what start-up
// warns of about its keys (ForeignKeys, ShortKeys, UnreadKeyVars): with
// KEYS_FILE the pool, and so those warnings, are the file's alone.
func (c *Config) UsePool(vars map[string]string) error {
	raw, err := rawPool(vars)
	if err != nil {
		return err
	}
	if err := checkPrintable(raw); err != nil {
		return err
	}
	c.setPool(raw, vars)
	return nil
}

// setPool makes raw, read from vars, the pool, and notes what start-up
// warns of about its keys.
func (c *Config) setPool(raw []rawKey, vars map[string]string) {
	c.Keys, c.Duplicates = dedupe(raw)
	c.ForeignKeys = foreignKeys(raw, c.BaseURL)
	c.ShortKeys = shortKeys(raw)
	c.UnreadKeyVars = unreadKeyVars(vars, raw)
}

// masked is err with every secret vars hold (pool keys, client tokens,
// ADMIN_TOKEN, and any value that starts like an API key) masked, as
// written and lower-cased: the errors that refuse a
// setting quote its value, and a key pasted into the wrong variable would
// be printed whole.
func masked(err error, vars map[string]string) error {
	if msg := varsRedactor(vars).Redact(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// varsRedactor masks every secret vars hold, as masked does.
func varsRedactor(vars map[string]string) *secret.Redactor {
	var keys []secret.Key
	add := func(list string) {
		for _, v := range strings.Split(list, ",") {
			if k := secret.New(v); !k.IsZero() {
				keys = append(keys, k, secret.New(strings.ToLower(strings.TrimSpace(v))))
			}
		}
	}
	for name, v := range vars {
		if strings.HasPrefix(name, keyVarPrefix) || name == keyListVar || name == "GATEWAY_API_KEYS" || name == "ADMIN_TOKEN" {
			add(v)
			continue
		}
		// A key pasted into another setting, and into no key variable
		// (or into a KEYS_FILE, which is read later), is a key all the
		// same: API keys start with "sk-", at the start of an item or
		// inside it (a URL's query, "Bearer sk-…").
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); strings.HasPrefix(strings.ToLower(item), "sk-") {
				add(item)
			}
		}
		for _, k := range keysInside(v) {
			add(k)
		}
	}
	return secret.NewRedactor(keys)
}

// minKeyInside is the shortest "sk-" run keysInside takes for a key: a
// word like "risk-free" is none.
const minKeyInside = 20

// keysInside are the runs of key characters (letters, digits, '-', '_')
// in v that start with "sk-" in any case and are long enough for a key.
func keysInside(v string) []string {
	var out []string
	low := strings.ToLower(v)
	for i := 0; ; {
		x := strings.Index(low[i:], "sk-")
		if x < 0 {
			return out
		}
		start := i + x
		end := start + len("sk-")
		for end < len(v) && keyChar(v[end]) {
			end++
		}
		if end-start >= minKeyInside {
			out = append(out, v[start:end])
		}
		i = end
	}
}

func keyChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func (c *Config) validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		shown, _ := secret.HideUserinfo(c.BaseURL)
		return fmt.Errorf("invalid OPENROUTER_BASE_URL=%q: want an absolute http(s) URL without query, like https://openrouter.ai/api/v1", shown)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("invalid PORT=%d: want 1-65535", c.Port)
	}
	// Words are taken in any case, as LOG_LEVEL's are (slog's parser):
	// KEY_ROTATION=Round-Robin means what it says.
	c.KeyRotation = strings.ToLower(c.KeyRotation)
	c.LogFormat = strings.ToLower(c.LogFormat)
	if !slices.Contains(keyring.Names[:], c.KeyRotation) {
		return fmt.Errorf("invalid KEY_ROTATION=%q: want random, round-robin or least-busy", c.KeyRotation)
	}
	if c.BudgetPollInterval < 0 || c.BudgetPollInterval > 0 && c.BudgetPollInterval < time.Second {
		// Below a second every key's GET /key would be asked many
		// times a second.
		return fmt.Errorf("invalid BUDGET_POLL_INTERVAL=%s: want 0 (off) or at least 1s, like 60s", c.BudgetPollInterval)
	}
	if c.StreamHoldTimeout < 0 {
		return fmt.Errorf("invalid STREAM_HOLD_TIMEOUT=%s: want 0 (off) or a positive duration like 15s", c.StreamHoldTimeout)
	}
	if !(c.ClientRestShare > 0 && c.ClientRestShare <= 1) { // NaN fails both
		return fmt.Errorf("invalid CLIENT_REST_SHARE=%v: want a share of the pool above 0 and at most 1, like 0.5", c.ClientRestShare)
	}
	if c.ClientRestWindow <= 0 {
		return fmt.Errorf("invalid CLIENT_REST_WINDOW=%s: want a positive duration like 1m", c.ClientRestWindow)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("invalid LOG_FORMAT=%q: want text or json", c.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("invalid LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.PprofAddr != "" && !loopbackAddr(c.PprofAddr) {
		return fmt.Errorf("invalid PPROF_ADDR=%q: want a loopback host:port like 127.0.0.1:6060 (profiles must not be reachable from outside)", c.PprofAddr)
	}
	if c.RedisURL != "" {
		if _, err := cluster.ParseURL(c.RedisURL); err != nil {
			return fmt.Errorf("invalid REDIS_URL: %w", err)
		}
	}
	if c.RedisPrefix == "" || strings.ContainsFunc(c.RedisPrefix, unicode.IsSpace) {
		return fmt.Errorf("invalid REDIS_PREFIX=%q: want a non-empty prefix without spaces, like keygate:", c.RedisPrefix)
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"RATE_LIMIT_COOLDOWN", int64(c.RateLimitCooldown)},
		{"AUTH_FAILURE_COOLDOWN", int64(c.AuthFailureCooldown)},
		{"MAX_COOLDOWN", int64(c.MaxCooldown)},
		{"UPSTREAM_TIMEOUT", int64(c.UpstreamTimeout)},
		{"MAX_BODY_BYTES", c.MaxBodyBytes},
		{"MAX_IN_FLIGHT", int64(c.MaxInFlight)},
		{"RUN_MAX_MODELS", int64(c.RunMaxModels)},
		{"METRICS_MAX_MODELS", int64(c.MetricsMaxModels)},
		{"READ_HEADER_TIMEOUT", int64(c.ReadHeaderTimeout)},
		{"READ_BODY_TIMEOUT", int64(c.ReadBodyTimeout)},
		{"IDLE_TIMEOUT", int64(c.IdleTimeout)},
		{"SHUTDOWN_TIMEOUT", int64(c.ShutdownTimeout)},
		{"WRITE_TIMEOUT", int64(c.WriteTimeout)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("invalid %s: must be positive", p.name)
		}
	}
	if err := c.validateBrowser(); err != nil {
		return err
	}
	if !c.AdminToken.ASCII() {
		return errors.New("invalid ADMIN_TOKEN: it holds a blank, a control character or a character past ASCII (an accent, a typographic quote?); the status page's sign-in and most clients cannot send it")
	}
	var tokens []secret.Key
	for i, t := range c.GatewayAPIKeys {
		if !t.Printable() {
			return fmt.Errorf("invalid GATEWAY_API_KEYS: token %d holds a control character or blank (a newline?); no client could send it", i+1)
		}
		if !t.ASCII() {
			return fmt.Errorf("invalid GATEWAY_API_KEYS: token %d holds a character past ASCII (an accent, a typographic quote?); browsers and Node's HTTP client cannot send it", i+1)
		}
		if !t.IsZero() {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == 0 && len(c.GatewayAPIKeys) > 0 {
		// Set, but to commas and blanks: running open would be a surprise.
		return errors.New("invalid GATEWAY_API_KEYS: it holds no token (unset it to run without client auth)")
	}
	for i, t := range tokens {
		if !c.AdminToken.IsZero() && t.Equal(c.AdminToken) {
			return fmt.Errorf("invalid ADMIN_TOKEN: it is also token %d of GATEWAY_API_KEYS, and a client token must not open /admin/*; choose another", i+1)
		}
	}
	c.GatewayAPIKeys = tokens
	return nil
}

// loopbackAddr reports whether addr is host:port with a loopback host
// (localhost, 127.0.0.0/8 or ::1) and a port.
func loopbackAddr(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LogLevelValue is LogLevel as a slog.Level.
func (c *Config) LogLevelValue() slog.Level {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return lvl
}

// ShortKey is the length below which a key may be a word an answer holds.
const ShortKey = 16

// shortKeys are the ids of the keys in raw shorter than ShortKey.
func shortKeys(raw []rawKey) []int {
	return idsOf(raw, func(key string) bool { return len(key) < ShortKey })
}

// rawKey is one key as its variable gives it, before it becomes a
// secret.Key.
type rawKey struct {
	id   int
	name string // the variable, for messages: OPENROUTER_API_KEY_3, OPENROUTER_API_KEYS (item 3)
	raw  string // trimmed
}

// checkPrintable refuses a key with a control character or blank inside
// (a newline pasted with it, say): every call with it would fail while the
// key counts as healthy.
func checkPrintable(raw []rawKey) error {
	for _, r := range raw {
		if !secret.New(r.raw).Printable() {
			return fmt.Errorf("invalid %s: the key holds a control character or blank (a newline, or a comment after the key?); every call with it would fail", r.name)
		}
	}
	return nil
}

// rawPool reads numbered keys, or else the comma-separated list, in id
// order.
func rawPool(vars map[string]string) ([]rawKey, error) {
	var raw []rawKey
	for name, v := range vars {
		num, ok := strings.CutPrefix(name, keyVarPrefix)
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		id, err := strconv.Atoi(num)
		if err != nil || id <= 0 || strconv.Itoa(id) != num {
			return nil, fmt.Errorf("invalid variable name %s: want %s<N> with N a positive number", shownName(name), keyVarPrefix)
		}
		raw = append(raw, rawKey{id: id, name: name, raw: strings.TrimSpace(v)})
	}
	if len(raw) == 0 {
		for i, v := range strings.Split(vars[keyListVar], ",") {
			if strings.TrimSpace(v) == "" {
				continue
			}
			raw = append(raw, rawKey{id: i + 1, name: keyListVar + " (item " + strconv.Itoa(i+1) + ")", raw: strings.TrimSpace(v)})
		}
	}
	sort.Slice(raw, func(i, j int) bool { return raw[i].id < raw[j].id })
	return raw, nil
}

// poolFrom reads numbered keys, or else the comma-separated list. Repeated
// keys are kept once, under their lowest id.
func poolFrom(vars map[string]string) ([]keyring.Entry, []Duplicate, error) {
	raw, err := rawPool(vars)
	if err != nil {
		return nil, nil, err
	}
	if err := checkPrintable(raw); err != nil {
		return nil, nil, err
	}
	keys, dups := dedupe(raw)
	return keys, dups, nil
}

// dedupe turns raw into the pool, keeping a repeated key once, under its
// lowest id.
func dedupe(raw []rawKey) ([]keyring.Entry, []Duplicate) {
	var keys []keyring.Entry
	var dups []Duplicate
	first := make(map[string]int, len(raw)) // raw key → its lowest id
	for _, r := range raw {
		if id, ok := first[r.raw]; ok {
			dups = append(dups, Duplicate{ID: r.id, SameAs: id})
			continue
		}
		first[r.raw] = r.id
		keys = append(keys, keyring.Entry{ID: r.id, Secret: secret.New(r.raw)})
	}
	return keys, dups
}

// explain turns env's errors into one line naming the variable.
func explain(err error, vars map[string]string) error {
	var pe env.ParseError
	if errors.As(err, &pe) {
		name := envName(pe.Name)
		want := "a valid value"
		switch pe.Type.Kind() {
		case reflect.Int, reflect.Int64:
			want = "a whole number"
			if pe.Type == reflect.TypeFor[time.Duration]() {
				want = "a duration like 30s, 10m or 1h30m"
			}
		case reflect.Uint64:
			want = "a whole number, 0 or more"
		case reflect.Float64:
			want = "a number like 0.5"
		}
		return fmt.Errorf("invalid %s=%q: want %s", name, vars[name], want)
	}
	return fmt.Errorf("reading settings: %w", err)
}

func envName(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return field
	}
	return f.Tag.Get("env")
}

// Usage writes every setting with its default and meaning.
func Usage(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	fmt.Fprintf(tw, "%s1 … %s<N>\t—\tthe key pool; any N, gaps allowed; N is the key's id\n", keyVarPrefix, keyVarPrefix)
	fmt.Fprintf(tw, "%s\t—\tcomma-separated alternative, ids 1..n; used only when no numbered variable is set\n", keyListVar)
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("env")
		if name == "" || name == "-" {
			continue
		}
		def := f.Tag.Get("envDefault")
		if def == "" {
			def = "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, def, f.Tag.Get("help"))
	}
	_ = tw.Flush()
}

// Unapplied names the settings (their variables) whose values differ
// between was, the configuration the gateway started with, and now, one
// read later: a reload applies the key pool alone, so an operator who
// changed PORT or GATEWAY_API_KEYS and sent SIGHUP is told they need a
// restart rather than left to believe them in force. Names only: a value
// may be a token.
func Unapplied(was, now *Config) []string {
	var names []string
	a, b := reflect.ValueOf(was).Elem(), reflect.ValueOf(now).Elem()
	t := a.Type()
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("env")
		if name == "" || name == "-" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			names = append(names, name)
		}
	}
	return names
}
