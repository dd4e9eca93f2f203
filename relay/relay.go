// Package relay sends one logical upstream call over the key pool: it picks
// a key, asks the key's breaker, injects the key, judges the answer with the
// fault package, and when it is the key's or its account's fault rests them
// and tries another key, each key at most once. A streamed answer is held
// until its first data event (hold.go), so that an error there, or a stream
// that ends before any data, still goes on to another key. It speaks
// net/http only; the passthrough and /run handlers both stand on it.
package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/silence"
)

// ErrUpstreamTimeout is the cause of an attempt cancelled because upstream
// was silent for longer than the timeout.
var ErrUpstreamTimeout = errors.New("upstream timeout")

// StatusClientClosed is the code an attempt is reported with when the client
// went away before upstream answered (nginx's 499): neither the key's fault
// nor upstream's.
const StatusClientClosed = 499

// Observer learns what happens to upstream calls, for metrics and logs.
// Its methods are called on the hot path and must not block.
type Observer interface {
	// KeySelected: k was chosen for an attempt.
	KeySelected(k *keyring.Key, strategy string)
	// Upstream: an attempt on k got status code after d, the time to
	// response headers; code is 0 for a transport error and
	// StatusClientClosed when the client went away first, and a 200 is
	// reported as it was judged (judgedCode: an error object's code).
	Upstream(k *keyring.Key, model string, code int, d time.Duration)
	// Cooldown: k's answer v sends it (alone) to rest for rest.
	Cooldown(k *keyring.Key, v fault.Verdict, rest time.Duration)
	// AccountCooldown: k's answer v rests its whole account until until
	// (for free-model calls only, when v.FreeOnly).
	AccountCooldown(k *keyring.Key, v fault.Verdict, until time.Time)
	// Retry: a call goes on to another key after the fault v.
	Retry(v fault.Verdict)
	// Judged: k's answer was judged v (success included).
	Judged(k *keyring.Key, v fault.Verdict)
	// StreamFailover: a held stream went on to another key (reason
	// FailoverErrorEvent, FailoverClosedBeforeData or FailoverReadError),
	// or was committed at the hold timeout with only comments
	// (FailoverHoldTimeout).
	StreamFailover(reason string)
}

// Options configure a Relay.
type Options struct {
	// Transport sends the upstream requests. Default NewTransport.
	Transport http.RoundTripper
	// Timeout is the longest upstream silence: before the response
	// headers, and between body reads. The time the caller spends between
	// reads counts too, so a client that stops reading for this long is
	// cut off like a silent upstream. Default 120s. The silence is
	// watched at a sixteenth of it (at most 1s, silence.Tick): a call is
	// cut off after between Timeout and Timeout plus two of those ticks.
	Timeout time.Duration
	// Observer receives events; nil ignores them.
	Observer Observer
	// Confirmer checks long rests with the key's own GET /key; nil rests
	// at once.
	Confirmer Confirmer
	// ConfirmHold is how long a key is held while its fault is being
	// confirmed. Default 5s.
	ConfirmHold time.Duration
	// RestShare bounds the share of the pool one client's requests may
	// rest per RestWindow (unconfirmed rests only); 0 means 0.5, and at
	// least one key may always be rested.
	RestShare float64
	// RestWindow is the window of RestShare. Default 1m.
	RestWindow time.Duration
	// StreamHold is the longest a streamed answer is held back waiting
	// for its first data event (STREAM_HOLD_TIMEOUT), so that an error
	// there can still go to another key. Default 15s; negative holds
	// nothing.
	StreamHold time.Duration
}

// Relay runs calls over a pool. Safe for concurrent use.
//
// The pool is a snapshot swapped whole (Swap): the Relay New returns loads
// the snapshot in force once per call, and the call, its retries and its
// body stay on it, so that a call never sees half a reload and a pick takes
// no lock. A snapshot is itself a *Relay (Snapshot), pinned to its pool.
type Relay struct {
	// live is the snapshot in force, shared by the handle and every
	// snapshot.
	live *atomic.Pointer[Relay]
	// pinned is set on snapshots: their methods use their own pool, where
	// the handle's load the live one.
	pinned     bool
	restShare  float64
	restWindow time.Duration

	pool      *keyring.Pool
	breakers  *breaker.Set
	transport http.RoundTripper
	// watch cancels attempts silent for longer than Options.Timeout;
	// shared by the handle and every snapshot.
	watch *silence.Watch
	obs   Observer
	// keyHeader is the X-Keygate-Key value of each slot, shared by all
	// responses (read-only).
	keyHeader   [][]string
	confirm     Confirmer
	confirmHold time.Duration
	limiter     *restLimiter
	// hold is Options.StreamHold; 0 holds nothing.
	hold time.Duration
}

// New returns a relay over pool and its breakers.
func New(pool *keyring.Pool, breakers *breaker.Set, o Options) *Relay {
	if o.Transport == nil {
		o.Transport = NewTransport(0)
	}
	if o.Timeout <= 0 {
		o.Timeout = 120 * time.Second
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	if o.ConfirmHold <= 0 {
		o.ConfirmHold = 5 * time.Second
	}
	switch {
	case o.StreamHold == 0:
		o.StreamHold = 15 * time.Second
	case o.StreamHold < 0:
		o.StreamHold = 0
	}
	snap := &Relay{live: new(atomic.Pointer[Relay]), pinned: true, restShare: o.RestShare, restWindow: o.RestWindow,
		transport: o.Transport, watch: silence.New(o.Timeout), obs: o.Observer, confirmHold: o.ConfirmHold, hold: o.StreamHold}
	snap.setPool(pool, breakers, o.Confirmer)
	snap.live.Store(snap)
	return &Relay{live: snap.live}
}

// Lease is a key picked and allowed by its breaker for one attempt.
type Lease struct {
	Key   *keyring.Key
	trial breaker.Trial
	// snap is the snapshot Key belongs to.
	snap *Relay
}

// Acquire picks a key with st outside ex and asks its breaker. Keys whose
// breaker refuses (a trial already out, or just sent to rest) are skipped
// for this pick only. It returns a *NoKeyError when none is left.
func (r *Relay) Acquire(st keyring.Strategy, ex *keyring.Exclude) (Lease, error) {
	return r.cur().acquire(st, ex)
}

func (r *Relay) acquire(st keyring.Strategy, ex *keyring.Exclude) (Lease, error) {
	// skip is ex plus the keys refused, copied only on a refusal: a
	// pick that is let through, the rule, allocates nothing.
	skip := ex
	for {
		now := r.breakers.Now().UnixNano()
		k := st.Pick(r.pool, skip, now)
		if k == nil {
			return Lease{}, r.noKey(now)
		}
		t, err := r.breakers.For(k).Allow()
		if err != nil {
			if skip == ex {
				skip = new(keyring.Exclude)
				if ex != nil {
					skip.CopyFrom(ex)
				}
			}
			skip.Add(k.Slot())
			continue
		}
		return Lease{Key: k, trial: t, snap: r}, nil
	}
}

// Release gives back a lease that was never used for an attempt.
func (r *Relay) Release(l Lease) {
	if l.Key != nil {
		l.trial.Abandon()
	}
}

func (r *Relay) noKey(now int64) error {
	back := r.pool.NextAvailable(now)
	wait := time.Duration(0)
	if !back.IsZero() {
		wait = time.Duration(back.UnixNano() - now)
	}
	return &NoKeyError{RetryAfter: wait, Disabled: back.IsZero() && r.pool.AllDisabled()}
}

// Call is one logical upstream call.
type Call struct {
	// Strategy picks the keys.
	Strategy keyring.Strategy
	// Model names the model for metrics; may be empty.
	Model string
	// First, when its Key is set, is the lease for the first attempt.
	First Lease
	// Tried collects the slots of the keys attempted; keys already in it
	// are not used.
	Tried keyring.Exclude
	// Key is the key of the last attempt, nil when none was made.
	Key *keyring.Key
	// OnRetry, if set, learns the key of each attempt after the first.
	OnRetry func(k *keyring.Key)
	// Blind marks a call whose answers teach nothing about a key: not an
	// inference endpoint (/models, /key, an unknown path), so that its
	// 401 or 429 neither rests the key nor is retried.
	Blind bool
	// Owned marks a call about something one account made (OpenRouter's
	// GET /generation?id=): in a pool of several accounts the id may be
	// another account's, and upstream answers 404 for it. A 404 goes on
	// to a key of an account not yet asked; nothing rests, and it is no
	// fault (keygate_retries_total does not count it).
	Owned bool
	// Free marks a call to a free model variant (":free"): it is not sent
	// to an account whose free requests for the day are used up.
	Free bool
	// MaxTokens is the most tokens the request asks for (max_tokens), 0
	// when it does not say; read only while some key is noted as able to
	// afford little (Breakers().AffordNoted()).
	MaxTokens int
	// Client names who sent the call (a token digest, or an address), for
	// the bound on the rests one client may cause.
	Client string
	// Spread, when set, holds the keys the other calls of the same client
	// request went out on (/run's models, in random mode): a retry goes
	// outside them while another key can take it, so that the models keep
	// distinct keys past a key's fault. Read only; it must not change
	// while the call runs.
	Spread *keyring.Exclude
	// Verdict is the fault judgement of the last attempt's answer.
	Verdict fault.Verdict
	// skip is Tried plus the keys of accounts the call must not use.
	skip keyring.Exclude
	// large: the call's body is of fault.LargeRequest bytes or more, set
	// by Do; the notes of what keys afford that are about large requests
	// (fault.Verdict.Large) bind it only then.
	large bool
	// snap is the snapshot the call runs on, from its first Do (or its
	// First lease) on.
	snap *Relay
}

// Do sends req, whose body is body (nil for none), on pool keys until an
// answer is not a key fault or no key is left, and returns that answer. On
// the last key's fault the fault itself is returned, as is. The response
// body must be closed; it cancels the call if upstream falls silent for
// longer than the timeout. req's header is modified (Authorization).
func (r *Relay) Do(req *http.Request, body []byte, c *Call) (*http.Response, error) {
	if c.snap == nil {
		c.snap = c.First.snap
		if c.snap == nil {
			c.snap = r.cur()
		}
	}
	return c.snap.do(req, body, c)
}

func (r *Relay) do(req *http.Request, body []byte, c *Call) (*http.Response, error) {
	parent := req.Context()
	lease := c.First
	c.First = Lease{}
	c.skip.CopyFrom(&c.Tried)
	c.large = len(body) >= fault.LargeRequest
	// poor: the keys left out as noted unable to afford the call, kept
	// apart from skip so that they can be let back (pick).
	var poor keyring.Exclude
	r.avoid(c, &c.skip, &poor)
	if lease.Key != nil && (c.skip.Has(lease.Key.Slot()) || poor.Has(lease.Key.Slot())) {
		r.Release(lease)
		lease = Lease{}
	}
	// prev is the last attempt's answer while the call goes on to
	// another key; closed the error of a last attempt whose stream ended
	// before any data.
	var prev *http.Response
	var closed error
	closedWhy := FailoverClosedBeforeData
	// elsewhere: prev is an Owned call's 404, no fault of its key.
	elsewhere := false
	for {
		if lease.Key == nil {
			var err error
			lease, err = r.pick(c, &poor)
			if err != nil {
				switch {
				case prev != nil:
					return r.final(prev, c)
				case closed != nil:
					return nil, closed
				}
				var nk *NoKeyError
				if c.Free && errors.As(err, &nk) {
					// Keys may be in rotation yet none may take a free
					// call: the wait is until an account's block ends.
					now := r.breakers.Now()
					if back := r.breakers.NextFreeAvailable(now.UnixNano()); back.After(now) {
						nk.RetryAfter = max(nk.RetryAfter, back.Sub(now))
						// Keys it has not tried are in rotation: the
						// free-model blocks are why none took it.
						var none keyring.Exclude
						nk.FreeQuota = r.anyOutside(&c.Tried, &none, now.UnixNano())
					}
				}
				return nil, err
			}
		}
		if prev != nil || closed != nil {
			// Counted only now that another key was found for it.
			if prev != nil {
				if !elsewhere {
					r.obs.Retry(c.Verdict)
					if wb, ok := prev.Body.(*watchedBody); ok && wb.hold == holdError {
						r.obs.StreamFailover(FailoverErrorEvent)
					}
				}
				discard(prev)
			} else {
				r.obs.StreamFailover(closedWhy)
			}
			if c.OnRetry != nil {
				c.OnRetry(lease.Key)
			}
			prev, closed, elsewhere = nil, nil, false
			req = req.Clone(parent)
		}
		c.Key = lease.Key
		c.Tried.Add(lease.Key.Slot())
		c.skip.Add(lease.Key.Slot())
		resp, err := r.attempt(parent, req, body, lease, c)
		lease = Lease{}
		if err != nil {
			return nil, err
		}
		l := c.leaseOf(resp)
		if wb, ok := resp.Body.(*watchedBody); ok && (wb.hold == holdClosed || wb.hold == holdBroken) {
			// A network error of this attempt: nobody rests, and another
			// key may answer.
			l.trial.Abandon()
			r.obs.Judged(l.Key, c.Verdict)
			_ = resp.Body.Close()
			ae := &AttemptError{Key: l.Key, Err: ErrClosedBeforeData}
			closed, closedWhy = ae, FailoverClosedBeforeData
			if wb.hold == holdBroken {
				closedWhy = FailoverReadError
				if errors.Is(context.Cause(wb.ctx), ErrUpstreamTimeout) {
					// Silent past the timeout: the attempt timed out.
					ae.Err = fmt.Errorf("%w: %w", ErrUpstreamTimeout, ErrClosedBeforeData)
				}
			}
			if c.skip.Len() >= r.pool.Len() {
				return nil, closed
			}
			continue
		}
		if !r.settle(l, c.Verdict, c) {
			if c.Owned && resp.StatusCode == http.StatusNotFound {
				// Not this account's: every key of it would say the
				// same, another account's key may know the id.
				r.breakers.Siblings(l.Key, &c.skip)
				if c.skip.Len() < r.pool.Len() {
					prev, elsewhere = resp, true
					continue
				}
			}
			return r.final(resp, c)
		}
		prev = resp
		if c.skip.Len() >= r.pool.Len() {
			return r.final(prev, c)
		}
	}
}

// final is the call's answer resp, its last attempt's: as asErrorAnswer
// gives it, or, when upstream broke its body off before a byte of it went
// to the client (watchedBody.cut), that attempt's error.
func (r *Relay) final(resp *http.Response, c *Call) (*http.Response, error) {
	if wb, ok := resp.Body.(*watchedBody); ok && wb.cut != nil {
		err := wb.cut
		_ = resp.Body.Close()
		return nil, &AttemptError{Key: wb.key, Err: err}
	}
	return asErrorAnswer(resp, c.Verdict, r.breakers.Now()), nil
}

// Avoid adds to ex the keys c would not go out on now: while another key
// outside ex can take it, those noted as unable to afford its tokens; for
// a free model, those of accounts whose free requests are used up. A first
// lease taken outside them is the one Do sends on; /run leases so, or Do
// would give the lease back and pick again without the request's other
// models' keys in mind.
func (r *Relay) Avoid(c *Call, ex *keyring.Exclude) { r.cur().avoid(c, ex, nil) }

// avoid is Avoid, but the keys unable to afford the call go to poor
// instead of ex when poor is not nil.
func (r *Relay) avoid(c *Call, ex, poor *keyring.Exclude) {
	if r.breakers.AffordNoted() {
		now := r.breakers.Now().UnixNano()
		var noted keyring.Exclude
		r.breakers.SkipUnaffordable(&noted, c.MaxTokens, c.large, now)
		// Only while another key can take the call: a note is about one
		// model's price, and a cheaper call may still fit.
		if r.anyOutside(ex, &noted, now) {
			if poor == nil {
				poor = ex
			}
			for _, k := range r.pool.Keys() {
				if noted.Has(k.Slot()) && !ex.Has(k.Slot()) {
					poor.Add(k.Slot())
				}
			}
		}
	}
	if c.Free {
		r.breakers.FreeBlocked(ex, r.breakers.Now().UnixNano())
	}
}

// pick leases c's next key outside its skip set and outside poor, the keys
// noted unable to afford it, and first outside c.Spread, the keys of its
// request's other calls. When only poor's are left, poor is emptied
// and they are let back: they were left out for keys in rotation (avoid)
// whose breakers may then refuse the call (a trial out), and a note is
// about one call's price, so the call goes to them after all, as when no
// other key is in rotation.
func (r *Relay) pick(c *Call, poor *keyring.Exclude) (Lease, error) {
	if c.Spread != nil && c.Spread.Len() > 0 {
		var ex keyring.Exclude
		ex.CopyFrom(&c.skip)
		ex.Union(poor)
		ex.Union(c.Spread)
		if l, err := r.acquire(c.Strategy, &ex); err == nil {
			return l, nil
		}
	}
	if poor.Len() == 0 {
		return r.acquire(c.Strategy, &c.skip)
	}
	var ex keyring.Exclude
	ex.CopyFrom(&c.skip)
	ex.Union(poor)
	if l, err := r.acquire(c.Strategy, &ex); err == nil {
		return l, nil
	}
	poor.Reset()
	return r.acquire(c.Strategy, &c.skip)
}

// anyOutside reports whether a key in rotation at now is in neither a nor b.
func (r *Relay) anyOutside(a, b *keyring.Exclude, now int64) bool {
	for _, k := range r.pool.Keys() {
		if !a.Has(k.Slot()) && !b.Has(k.Slot()) && r.pool.Available(k, now) {
			return true
		}
	}
	return false
}

// Sized tells c, before Do, the size of the body Do will send it with, so
// that Avoid leaves out the keys noted unable to afford a request that
// large, as Do will: a first lease taken as for a small request was given
// back by Do and the call sent on another key. Do sets it again.
func (c *Call) Sized(n int) { c.large = n >= fault.LargeRequest }

// leaseOf is the lease of resp's attempt, kept on its watched body.
func (c *Call) leaseOf(resp *http.Response) Lease {
	if wb, ok := resp.Body.(*watchedBody); ok {
		return wb.lease
	}
	return Lease{}
}

// attempt sends req on one key; c.Verdict gets the fault verdict of its
// answer, for the caller to settle the key's trial with.
func (r *Relay) attempt(parent context.Context, req *http.Request, body []byte, l Lease, c *Call) (*http.Response, error) {
	k := l.Key
	model := c.Model
	ctx, cancel := context.WithCancelCause(parent)
	wb := &watchedBody{ctx: ctx, cancel: cancel, watch: r.watch, pool: r.pool, key: k, lease: l, rl: r,
		client: c.Client, blind: c.Blind}
	r.watch.Add(&wb.entry, wb)
	out := req.WithContext(ctx)
	k.Secret.SetAuthorization(out.Header)
	// The body is in memory with a known length: never chunked, whatever
	// the client's Transfer-Encoding was.
	out.TransferEncoding = nil
	if len(body) > 0 {
		wb.reqBody.Reset(body)
		out.Body = requestBody(&wb.reqBody)
		out.ContentLength = int64(len(body))
		if out.URL.Scheme == "http" {
			// HTTP/1 servers close idle keep-alive connections after a
			// few seconds (uvicorn's 5: vLLM, LiteLLM), and a call that
			// goes out on one just then fails with nothing processed.
			// Go's transport sends it again on a fresh connection when it
			// may: a request marked idempotent (X-Idempotency-Key, never
			// sent without a value), a reused connection, no byte of an
			// answer. GetBody lets it do so only within staleWindow of
			// the call going out, when no model can have answered or
			// billed it. Over TLS (OpenRouter's HTTP/2) Go's own rules
			// stand: it resends there only what upstream refused.
			// Once: the transport's loop would go on to each idle
			// connection in turn while upstream drops every one (a server
			// that reads a request and closes), and a stale connection is
			// one closing, not all of them.
			markResendable(out.Header)
			out.GetBody = func() (io.ReadCloser, error) {
				if wb.resent || time.Since(wb.sent) >= staleWindow {
					return nil, errNotResent
				}
				wb.resent = true
				return requestBody(bytes.NewReader(body)), nil
			}
		} else {
			out.GetBody = func() (io.ReadCloser, error) { return requestBody(bytes.NewReader(body)), nil }
		}
	} else {
		out.Body = http.NoBody
		out.ContentLength = 0
		out.GetBody = nil
	}
	// Counted here, not at the pick: a lease given back unused (a /run
	// over MAX_IN_FLIGHT, a key noted unable to afford the call) made no
	// call.
	r.obs.KeySelected(k, c.Strategy.Name())
	r.pool.Begin(k)
	start := time.Now()
	wb.sent = start
	resp, err := r.transport.RoundTrip(out)
	elapsed := time.Since(start)
	if err != nil {
		r.watch.Remove(&wb.entry)
		err = classifyTransportError(ctx, parent, err)
		cancel(err)
		r.pool.End(k)
		l.trial.Abandon()
		code := 0
		if errors.Is(err, context.Canceled) {
			code = StatusClientClosed
		}
		r.obs.Upstream(k, model, code, elapsed)
		return nil, &AttemptError{Key: k, Err: err}
	}
	resp.Header["X-Keygate-Key"] = r.keyHeader[k.Slot()]
	wb.rc = resp.Body
	resp.Body = wb
	c.Verdict = r.judge(resp, wb).Sized(len(body))
	c.Verdict.Model = model
	r.obs.Upstream(k, model, judgedCode(resp.StatusCode, c.Verdict, wb.hold), elapsed)
	r.watch.Touch(&wb.entry)
	switch wb.hold {
	case holdGone:
		_ = wb.Close()
		l.trial.Abandon()
		return nil, &AttemptError{Key: k, Err: fmt.Errorf("%w: %w", context.Canceled, errClientLeft)}
	case holdTimeout:
		r.obs.StreamFailover(FailoverHoldTimeout)
	}
	return resp, nil
}

// judgedCode is the status an attempt is reported with: the one its answer
// was judged by. A 200 whose body or first stream event is an error object
// is that error's code, a stream that ended before any data the 502 it
// counts as, a client gone during the hold StatusClientClosed; else the
// answer's own status.
func judgedCode(status int, v fault.Verdict, hold holdOutcome) int {
	switch {
	case hold == holdGone:
		return StatusClientClosed
	case status == http.StatusOK && v.Status > 0:
		return v.Status
	}
	return status
}

type nopObserver struct{}

func (nopObserver) KeySelected(*keyring.Key, string)                       {}
func (nopObserver) Upstream(*keyring.Key, string, int, time.Duration)      {}
func (nopObserver) Cooldown(*keyring.Key, fault.Verdict, time.Duration)    {}
func (nopObserver) AccountCooldown(*keyring.Key, fault.Verdict, time.Time) {}
func (nopObserver) Retry(fault.Verdict)                                    {}
func (nopObserver) Judged(*keyring.Key, fault.Verdict)                     {}
func (nopObserver) StreamFailover(string)                                  {}

// maxDrain is the largest failed answer read to its end so that its
// connection can carry the next call.
const maxDrain = 4 << 10

// discard drops a failed answer the client will not see. A short body of
// known length is read out, which keeps its connection for reuse; any other
// is closed unread, since an upstream that stalls mid-body would hold up
// the retry that is waiting on it.
func discard(resp *http.Response) {
	if resp.ContentLength >= 0 && resp.ContentLength <= maxDrain {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	}
	resp.Body.Close()
}
