package relay_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

var epoch = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// clock is the breakers' clock, moved by tests.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// rawKey is the secret of key id, as upstream sees it.
func rawKey(id int) string { return fmt.Sprintf("sk-or-v1-test%04d0123456789abcdef", id) }

// first picks the first available key in pool order: deterministic.
var first = keyring.NewRandom(func(int) int { return 0 })

type upstreamEvent struct{ key, code int }

type cooldownEvent struct {
	key    int
	reason breaker.Reason
	status int
	rest   time.Duration
}

// recorder is a relay.Observer that remembers every event.
type recorder struct {
	mu        sync.Mutex
	selected  []int
	upstream  []upstreamEvent
	cooldowns []cooldownEvent
	accounts  []accountEvent
	judged    []fault.Verdict
	retries   []breaker.Reason
	failovers []string
}

func (o *recorder) KeySelected(k *keyring.Key, _ string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.selected = append(o.selected, k.ID)
}

func (o *recorder) Upstream(k *keyring.Key, _ string, code int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.upstream = append(o.upstream, upstreamEvent{k.ID, code})
}

func (o *recorder) Cooldown(k *keyring.Key, v fault.Verdict, rest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cooldowns = append(o.cooldowns, cooldownEvent{k.ID, v.Reason, v.Status, rest})
}

func (o *recorder) AccountCooldown(k *keyring.Key, v fault.Verdict, until time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.accounts = append(o.accounts, accountEvent{k.ID, v.Reason, v.Status, until})
}

func (o *recorder) Retry(v fault.Verdict) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries = append(o.retries, v.Reason)
}

func (o *recorder) StreamFailover(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failovers = append(o.failovers, reason)
}

func (o *recorder) Judged(k *keyring.Key, v fault.Verdict) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.judged = append(o.judged, v)
}

// accountEvent is an AccountCooldown.
type accountEvent struct {
	key    int
	reason breaker.Reason
	status int
	until  time.Time
}

// trackedBody is an upstream response body that counts its closes.
type trackedBody struct {
	io.ReadCloser
	key    int
	closes atomic.Int32
}

func (b *trackedBody) Close() error {
	b.closes.Add(1)
	return b.ReadCloser.Close()
}

// tracker wraps the relay's transport to see every upstream response body.
type tracker struct {
	inner  http.RoundTripper
	ids    map[string]int // Authorization value → key id
	mu     sync.Mutex
	bodies []*trackedBody
}

func (tr *tracker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.inner.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	tb := &trackedBody{ReadCloser: resp.Body, key: tr.ids[req.Header.Get("Authorization")]}
	resp.Body = tb
	tr.mu.Lock()
	tr.bodies = append(tr.bodies, tb)
	tr.mu.Unlock()
	return resp, nil
}

// closes returns, per response in order, its key and its close count.
func (tr *tracker) closes() [][2]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out [][2]int
	for _, b := range tr.bodies {
		out = append(out, [2]int{b.key, int(b.closes.Load())})
	}
	return out
}

// handler answers an upstream request made with key id.
type handler func(w http.ResponseWriter, r *http.Request, id int)

type env struct {
	pool  *keyring.Pool
	set   *breaker.Set
	relay *relay.Relay
	clock *clock
	obs   *recorder
	tr    *tracker
	url   string
	hits  []atomic.Int32 // upstream requests by key slot
}

type envOptions struct {
	keys    int
	timeout time.Duration // default 1m
	// bare: no recorder, no tracker (benchmarks).
	bare bool
	// confirmer, share: the relay's Options.Confirmer and RestShare.
	confirmer relay.Confirmer
	share     float64
	// hold is the relay's Options.StreamHold (0: its default).
	hold time.Duration
	// dial, when set, replaces the transport's DialContext.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// newEnv starts an httptest upstream running h and a relay over a pool of
// o.keys keys (ids 1..n) in front of it.
func newEnv(t testing.TB, o envOptions, h handler) *env {
	t.Helper()
	entries := make([]keyring.Entry, o.keys)
	ids := make(map[string]int, o.keys)
	for i := range entries {
		entries[i] = keyring.Entry{ID: i + 1, Secret: secret.New(rawKey(i + 1))}
		ids["Bearer "+rawKey(i+1)] = i + 1
	}
	pool, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{pool: pool, clock: &clock{}, hits: make([]atomic.Int32, o.keys)}
	e.clock.ns.Store(epoch.UnixNano())
	e.set = breaker.NewSet(pool, breaker.Settings{Now: e.clock.Now})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := ids[r.Header.Get("Authorization")]
		if id == 0 {
			t.Errorf("upstream: Authorization %q is no pool key", r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusTeapot)
			return
		}
		e.hits[id-1].Add(1)
		h(w, r, id)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL + "/chat/completions"
	transport := relay.NewTransport(0)
	if o.dial != nil {
		transport.DialContext = o.dial
	}
	t.Cleanup(transport.CloseIdleConnections)
	opts := relay.Options{Transport: transport, Timeout: o.timeout, Confirmer: o.confirmer, RestShare: o.share, StreamHold: o.hold}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	if !o.bare {
		e.obs = &recorder{}
		e.tr = &tracker{inner: transport, ids: ids}
		opts.Observer, opts.Transport = e.obs, e.tr
	}
	e.relay = relay.New(pool, e.set, opts)
	return e
}

func (e *env) key(id int) *keyring.Key { return e.pool.ByID(id) }

// rest sends key id to rest as if it had answered status.
func (e *env) rest(t testing.TB, id, status int, hint time.Duration) {
	t.Helper()
	tr, err := e.set.For(e.key(id)).Allow()
	if err != nil {
		t.Fatalf("Allow key %d: %v", id, err)
	}
	v := fault.Classify(status, http.Header{}, nil, e.clock.Now())
	if hint > 0 {
		v.Until = e.clock.Now().Add(hint)
	}
	tr.Fail(v)
}

func (e *env) inFlight(id int) int64 { return e.pool.Ledger().InFlight(e.key(id).Slot()) }

func (e *env) hitsByKey() []int {
	out := make([]int, len(e.hits))
	for i := range e.hits {
		out[i] = int(e.hits[i].Load())
	}
	return out
}

// request is a POST to the upstream with ctx.
func (e *env) request(t testing.TB, ctx context.Context) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// do runs one call with the first-available strategy and body.
func (e *env) do(t testing.TB, body []byte, c *relay.Call) (*http.Response, error) {
	t.Helper()
	if c.Strategy == nil {
		c.Strategy = first
	}
	return e.relay.Do(e.request(t, t.Context()), body, c)
}

// readAll reads and closes resp's body.
func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatalf("closing body: %v", err)
	}
	return string(b)
}

// blocker is an upstream that stalls until the test ends or the client
// goes away; arrived is closed when the first request came in.
type blocker struct {
	release chan struct{}
	arrived chan struct{}
	once    sync.Once
	opened  sync.Once
}

// newBlocker must be called after newEnv, so that its cleanup runs before
// the upstream server's Close, which waits for the handlers.
func newBlocker(t testing.TB) *blocker {
	b := &blocker{release: make(chan struct{}), arrived: make(chan struct{})}
	t.Cleanup(func() { b.opened.Do(func() { close(b.release) }) })
	return b
}

func (b *blocker) wait(r *http.Request) {
	b.once.Do(func() { close(b.arrived) })
	select {
	case <-b.release:
	case <-r.Context().Done():
	}
}

func equalEvents[T comparable](t testing.TB, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func (o *recorder) check(t testing.TB, selected []int, upstream []upstreamEvent, retries []breaker.Reason) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	equalEvents(t, "KeySelected", o.selected, selected)
	equalEvents(t, "Upstream", o.upstream, upstream)
	equalEvents(t, "Retry", o.retries, retries)
}

func (o *recorder) cooldownList() []cooldownEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.cooldowns)
}
