package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/admin"
	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/gateway"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/keysfile"
	"github.com/keygate/keygate/metrics"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// KeyRef names a key across reloads and replicas: its id and a digest of
// its secret (cluster.RefOf). A disable is held by the digest alone
// (KeyRef.Digest), so that it follows the key, not a number: a new secret
// under the id is another key, and a key a reload renumbered is the same.
type KeyRef = cluster.KeyRef

// RefOf is k's KeyRef.
func RefOf(k *keyring.Key) KeyRef { return cluster.RefOf(k.ID, k.Secret) }

// Live is the key pool in force and what changes it: reloads (KEYS_FILE,
// SIGHUP, POST /admin/reload) and manual disables. It implements
// admin.Pool, and gateway.Spender and gateway.BudgetViewer by routing to the
// budget poller of the pool in force. Reloads and disables are serialised;
// calls never wait for them.
type Live struct {
	mu       sync.Mutex
	relay    *relay.Relay
	obs      *gateway.Observer
	src      *gateway.KeySource
	m        *metrics.Metrics
	log      *slog.Logger
	redactor *secret.Redactor
	// retired are the keys reloads removed, by digest: they stay masked
	// for the life of the process (calls in flight on them, and answers
	// that quote them later, across any number of reloads).
	retired  map[[32]byte]secret.Key
	settings breaker.Settings
	budgetO  budget.Options
	confirm  bool // faults are confirmed by GET /key (polling on)
	entries  []keyring.Entry
	budgets  atomic.Pointer[budget.Poller]
	// disabled holds the keys disabled by hand, by KeyRef.Digest; it
	// outlives snapshots.
	disabled map[string]bool
	// toggled is when each key (by KeyRef.Digest) was last disabled or
	// enabled: of two toggles (one from another replica, perhaps under
	// the key's id before a reload renumbered it) the later wins.
	toggled map[string]time.Time
	// read re-reads the pool's source, and the ids whose key repeats an
	// earlier one's (dropped, with a warning); nil refuses reloads.
	read func() ([]keyring.Entry, []config.Duplicate, error)
	// run is the poller's loop, while Run runs.
	runCtx  context.Context
	stopRun func()
	// notify, when set, learns of every disable and enable asked of this
	// replica (not those SetDisabled brings from elsewhere).
	notify func(ref KeyRef, on bool, at time.Time)
	// masks is every mask each id has had, for Named: after a reload put
	// another key with the same mask under an id, the mask alone names
	// neither.
	masks map[idMask]maskSeen
	// attach, when set, hands each new snapshot's breakers and poller to
	// what shares their facts with other replicas.
	attach func(set *breaker.Set, poller *budget.Poller, keys []*keyring.Key)
}

// OnToggle makes fn learn of every disable and enable asked of this
// replica's admin API (at when it was done), after it took effect here: the
// hook that shares them with other replicas, which apply them with
// ApplyEvent. fn is called with the pool's lock held and must not call
// back into l.
func (l *Live) OnToggle(fn func(ref KeyRef, on bool, at time.Time)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.notify = fn
}

// Budgets is the budget poller of the pool in force.
func (l *Live) Budgets() *budget.Poller { return l.budgets.Load() }

// Spend implements gateway.Spender.
func (l *Live) Spend(k *keyring.Key, model string, usd float64) {
	if p, nk := l.resolve(k); p != nil {
		p.Spend(nk, model, usd)
	}
}

// UseFree implements gateway.Spender.
func (l *Live) UseFree(k *keyring.Key) {
	if p, nk := l.resolve(k); p != nil {
		p.UseFree(nk)
	}
}

// PollSoon implements gateway.Spender.
func (l *Live) PollSoon(k *keyring.Key) {
	if p, nk := l.resolve(k); p != nil {
		p.PollSoon(nk)
	}
}

// View implements gateway.BudgetViewer.
func (l *Live) View(k *keyring.Key) *budget.View {
	if p, nk := l.resolve(k); p != nil {
		return p.View(nk)
	}
	return nil
}

// resolve finds k in the pool in force: k itself, or the same key (its
// secret, under any id) in a newer snapshot; nil when a reload removed it.
// The poller and the pool are read in that order and swapped in the other,
// so the key found always has a slot in the poller.
func (l *Live) resolve(k *keyring.Key) (*budget.Poller, *keyring.Key) {
	p := l.budgets.Load()
	if nk := p.Pool().Find(k); nk != nil {
		return p, nk
	}
	return nil, nil
}

// Run runs the budget poller of the pool in force, and of each pool a
// reload puts in force, until ctx ends.
func (l *Live) Run(ctx context.Context) {
	l.mu.Lock()
	l.runCtx = ctx
	l.startPoller()
	l.mu.Unlock()
	<-ctx.Done()
	l.mu.Lock()
	l.stopPoller()
	l.runCtx = nil
	l.mu.Unlock()
}

// startPoller starts the current poller's loop; l.mu is held.
func (l *Live) startPoller() {
	if l.runCtx == nil {
		return
	}
	p := l.budgets.Load()
	ctx, cancel := context.WithCancel(l.runCtx)
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	l.stopRun = func() { cancel(); <-done }
}

// stopPoller ends the running poller loop and waits for its polls; l.mu is
// held.
func (l *Live) stopPoller() {
	if l.stopRun != nil {
		l.stopRun()
		l.stopRun = nil
	}
}

// key is the key id in force, or admin.ErrUnknownKey.
func (l *Live) key(id int) (*keyring.Key, *breaker.Set, error) {
	snap := l.relay.Snapshot()
	k := snap.Pool().ByID(id)
	if k == nil {
		return nil, nil, admin.ErrUnknownKey
	}
	return k, snap.Breakers(), nil
}

// Named implements admin.Pool.
func (l *Live) Named(id int) (admin.KeyName, bool) {
	k := l.relay.Snapshot().Pool().ByID(id)
	if k == nil {
		return admin.KeyName{}, false
	}
	l.mu.Lock()
	shared := l.masks[idMask{id, k.Secret.String()}].shared
	l.mu.Unlock()
	return admin.KeyName{Masked: k.Secret.String(), Fingerprint: k.Secret.Fingerprint(), MaskShared: shared}, true
}

// idMask is a mask under an id.
type idMask struct {
	id   int
	mask string
}

// maskSeen is what an id's mask has named: the first key seen with it
// (by digest), and whether another has been seen with it since.
type maskSeen struct {
	first  [32]byte
	shared bool
}

// seeMasks records the masks of pool's keys under their ids; l.mu is held
// (or l not yet shared).
func (l *Live) seeMasks(pool *keyring.Pool) {
	if l.masks == nil {
		l.masks = map[idMask]maskSeen{}
	}
	for _, k := range pool.Keys() {
		at, d := idMask{k.ID, k.Secret.String()}, k.Secret.Digest()
		switch m, ok := l.masks[at]; {
		case !ok:
			l.masks[at] = maskSeen{first: d}
		case m.first != d && !m.shared:
			l.masks[at] = maskSeen{first: m.first, shared: true}
		}
	}
}

// Disable implements admin.Pool.
func (l *Live) Disable(_ context.Context, id int) error { return l.toggle(id, true) }

// Enable implements admin.Pool.
func (l *Live) Enable(_ context.Context, id int) error { return l.toggle(id, false) }

func (l *Live) toggle(id int, on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, _, err := l.key(id)
	if err != nil {
		return err
	}
	ref, at := RefOf(k), time.Now()
	l.toggled[ref.Digest()] = at
	l.setDisabled(ref, on)
	if l.notify != nil {
		l.notify(ref, on, at)
	}
	return nil
}

// SetDisabled records that the key ref is disabled by hand (on) or not, and
// applies it to the pool in force if the key is in it, under ref's id or
// another. It is what an event from another replica calls; a key not in the
// pool is remembered for when a reload brings it.
func (l *Live) SetDisabled(ref KeyRef, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setDisabled(ref, on)
}

// ApplyEvent takes a disable or enable from another replica: the later of
// it and the last toggle known wins (the store re-reads facts, so an older
// one may come again). Other kinds are not the live pool's.
func (l *Live) ApplyEvent(ev cluster.Event) {
	if ev.Kind != cluster.Disable && ev.Kind != cluster.Enable {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	d := ev.Key.Digest()
	if last, ok := l.toggled[d]; ok && !ev.At.After(last) {
		return
	}
	l.toggled[d] = ev.At
	l.setDisabled(ev.Key, ev.Kind == cluster.Disable)
}

func (l *Live) setDisabled(ref KeyRef, on bool) {
	d := ref.Digest()
	if on {
		l.disabled[d] = true
	} else {
		delete(l.disabled, d)
	}
	snap := l.relay.Snapshot()
	for _, k := range snap.Pool().Keys() {
		if RefOf(k).Digest() == d {
			snap.Breakers().SetDisabled(k, on)
		}
	}
}

// Check implements admin.Pool: it polls the key's GET /key now.
func (l *Live) Check(ctx context.Context, id int) (admin.Budget, error) {
	p := l.budgets.Load()
	k := p.Pool().ByID(id)
	if k == nil {
		return admin.Budget{}, admin.ErrUnknownKey
	}
	if _, err := p.Check(ctx, k); err != nil {
		return admin.Budget{}, fmt.Errorf("GET /key: %w", err)
	}
	v := p.View(k)
	if v == nil {
		return admin.Budget{}, errors.New("GET /key gave no figures")
	}
	return *v, nil
}

// Reload implements admin.Pool (POST /admin/reload).
func (l *Live) Reload(context.Context) (admin.ReloadResult, error) {
	return l.ReloadFrom("admin"), nil
}

// ReloadFrom re-reads the pool's source and puts it in force; source names
// who asked ("admin", "sighup", "file") for the console line.
func (l *Live) ReloadFrom(source string) admin.ReloadResult {
	l.mu.Lock()
	read := l.read
	l.mu.Unlock()
	if read == nil {
		return l.Apply(nil, errors.New("no source to reload from"), source)
	}
	entries, dups, err := read()
	if err == nil {
		LogDuplicates(l.log, dups)
	}
	res := l.Apply(entries, err, source)
	if res.Refused == "" {
		// The operator who asked sees what the console warns of.
		for _, d := range dups {
			res.Repeated = append(res.Repeated, admin.Repeat{ID: d.ID, SameAs: d.SameAs})
		}
	}
	return res
}

// KeysChanged implements keysfile.Handler: the watched KEYS_FILE changed.
func (l *Live) KeysChanged(f keysfile.File, err error) {
	if err == nil {
		LogRepeated(l.log, f.Path, f.Repeated)
		LogDuplicates(l.log, f.Duplicates)
	}
	l.Apply(f.Entries, err, "file")
}

// LogDuplicates warns of each key that repeats an earlier one, which the
// pool uses once: at start-up and at every reload that reads it, so that a
// key pasted twice into KEYS_FILE is told, not dropped silently.
func LogDuplicates(log *slog.Logger, dups []config.Duplicate) {
	for _, d := range dups {
		// Key ids name keys in every log line, whether they came numbered
		// or from the OPENROUTER_API_KEYS list.
		log.Warn("⚠️  API Key #"+strconv.Itoa(d.ID)+" repeats API Key #"+strconv.Itoa(d.SameAs)+"; using it once",
			"event", "key_repeated", "key_id", d.ID, "same_as", d.SameAs)
	}
}

// LogRepeated warns of each variable set on more than one line of file
// (keysfile.RepeatedNames): only its last value counts, so a key line
// pasted under a name already used leaves the earlier key out.
func LogRepeated(log *slog.Logger, file string, names []string) {
	for _, n := range names {
		why := ""
		if strings.HasPrefix(n, "OPENROUTER_API_KEY") {
			why = ", so a key under that name earlier in the file is not in the pool"
		}
		log.Warn("⚠️  "+n+" is set on more than one line of "+file+": only the last counts"+why,
			"event", "variable_repeated", "variable", n, "file", file)
	}
}

// Apply puts entries in force as the pool, or, when err is set or entries
// would leave the pool empty or invalid, refuses them: the pool stays,
// and the log, the result and keygate_pool_reloads_total say why.
func (l *Live) Apply(entries []keyring.Entry, err error, source string) admin.ReloadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	res, err := l.swap(entries, err)
	if err != nil {
		res = admin.ReloadResult{Keys: len(l.entries), Refused: err.Error()}
		admin.LogReloadRefused(l.log, res.Refused, res.Keys, source)
	} else {
		admin.LogReloaded(l.log, res, source)
	}
	if l.m != nil {
		l.m.PoolReload(err == nil)
	}
	return res
}

// accountOf is k's account label in the pool in force ("" for a key no
// longer in it), for console lines.
func accountOf(rl *relay.Relay, k *keyring.Key) string {
	snap := rl.Snapshot()
	if nk := snap.Pool().Find(k); nk != nil {
		return snap.Breakers().Account(nk)
	}
	return ""
}

// WatchKeysFile watches KEYS_FILE and puts each good new reading in force
// (a bad one is refused and counted); reloads asked for by SIGHUP or the
// admin API read through the watcher, so that it does not hand on the same
// contents again. The returned func stops the watch.
func (a *App) WatchKeysFile() (stop func(), err error) {
	w, err := keysfile.Watch(a.Config.KeysFile, a.Live, keysfile.Options{})
	if err != nil {
		return nil, err
	}
	l := a.Live
	l.mu.Lock()
	l.read = func() ([]keyring.Entry, []config.Duplicate, error) {
		f, err := w.ReadNow()
		if err == nil {
			LogRepeated(l.log, f.Path, f.Repeated)
		}
		return f.Entries, f.Duplicates, err
	}
	l.mu.Unlock()
	// The watch counts the file as it is now as seen: a change since New
	// read it (start-up's gap before serving) is no event it would hand
	// on, so it is compared with New's reading here.
	if f, err := w.ReadNow(); err != nil || f.Sum != a.keysSum {
		l.KeysChanged(f, err)
	}
	return func() {
		_ = w.Close()
	}, nil
}
