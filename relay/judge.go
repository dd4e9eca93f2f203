package relay

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
)

// AffordNote is how long a 402 "can only afford M" keeps calls that may ask
// for more off that key or account: credit may be added, caps reset.
const AffordNote = 5 * time.Minute

// errorBodyWait bounds the wait for an error answer's body.
const errorBodyWait = 2 * time.Second

// errStalledBody cancels an attempt whose error body stalled.
var errStalledBody = errors.New("upstream error body stalled")

// peekSize is how much of a 200 JSON answer is read before its headers go
// on, to see whether it is an error object.
const peekSize = 512

var peekBuffers = sync.Pool{New: func() any { b := make([]byte, peekSize); return &b }}

// judge reads what Classify needs of resp — the first fault.MaxBody bytes
// of an error answer, the first bytes of a 200 JSON answer — puts them back
// in front of the body, and returns the verdict. A streamed 200 is judged
// by its first event: see holdStream. The clock is read only for answers
// that may need it (the rule, a JSON 200, does not).
func (r *Relay) judge(resp *http.Response, wb *watchedBody) fault.Verdict {
	status := resp.StatusCode
	if status == http.StatusOK {
		decodeAhead(resp, wb)
	}
	switch {
	case status == http.StatusOK && r.hold > 0 && isEventStream(resp.Header):
		return r.holdStream(resp, wb, r.breakers.Now())
	case status >= 400:
		// An upstream that stalls mid-body must not hold up the retry:
		// past errorBodyWait the answer is judged by what came.
		stall := time.AfterFunc(errorBodyWait, func() { wb.cancel(errStalledBody) })
		head, err := io.ReadAll(io.LimitReader(wb.rc, fault.MaxBody))
		stall.Stop()
		wb.head = head
		if err != nil {
			wb.headErr = err
			if clientGone(wb) {
				// The body was cut by the client's leaving, not by
				// upstream: judged by its status alone, a provider's
				// 429 would rest the key as its own.
				wb.hold = holdGone
				return fault.Verdict{Status: status, Scope: fault.Upstream}
			}
			// Upstream broke the error answer off: it is judged by
			// what came, but cannot go to the client as it is.
			wb.cut = wb.readErr(err)
		}
		return fault.Classify(status, resp.Header, decoded(resp.Header, head), r.breakers.Now())
	case status == http.StatusOK && isJSON(resp.Header):
		bp := peekBuffers.Get().(*[]byte)
		peek := (*bp)[:peekSize]
		// One read may bring only a piece of the body's start (blanks,
		// a keep-alive while the model works; a lone "{"): the peek reads
		// on to its size or the body's end, unless an error shows first.
		// An answer read whole comes with its io.EOF, in one read.
		n, err := 0, error(nil)
		for err == nil && n < peekSize && (n == 0 || !fault.MaybeError(peek[:n])) {
			var m int
			m, err = wb.rc.Read(peek[n:])
			if m > 0 && n > 0 {
				r.watch.Touch(&wb.entry)
			}
			n += m
		}
		wb.head, wb.peek, wb.headErr = peek[:n], bp, err
		if err != nil && !errors.Is(err, io.EOF) && !clientGone(wb) {
			// The body broke off (a reset, short of its length, a bad
			// chunk or coding, silence) before a byte of it went to the
			// client: a network error of this attempt, as one before
			// the headers is, which the client gets as such. The attempt
			// is counted by the status upstream sent.
			wb.cut = wb.readErr(err)
			return fault.Verdict{Status: status, Scope: fault.Upstream}
		}
		if !fault.MaybeError(wb.head) || resp.Header.Get("Content-Encoding") != "" {
			return fault.Verdict{Status: status}
		}
		// Maybe an error object: read on, up to the bound.
		rest, _ := io.ReadAll(io.LimitReader(wb.rc, fault.MaxBody-int64(n)))
		wb.head = append(bytes.Clone(wb.head), rest...)
		peekBuffers.Put(bp)
		wb.peek = nil
		return judgeObject(resp.Header, wb.head, wb.blind, r.breakers.Now())
	}
	return fault.Verdict{Status: status}
}

// judgeObject is the verdict on a 200 whose body is (or opens with) the
// JSON object b, as Classify gives it, except on a blind call: there an
// error object without an HTTP error status for a code is the fetched
// resource's own field (a failed response fetched by id, a failed
// fine-tuning job), and the 200 stands.
func judgeObject(h http.Header, b []byte, blind bool, now time.Time) fault.Verdict {
	v := fault.Classify(http.StatusOK, h, b, now)
	if blind && v.Uncoded {
		return fault.Verdict{Status: http.StatusOK}
	}
	return v
}

// clientGone reports whether wb's attempt was cancelled because its client
// went away, rather than for upstream's silence or a stalled body.
func clientGone(wb *watchedBody) bool {
	cause := context.Cause(wb.ctx)
	return wb.ctx.Err() != nil && !errors.Is(cause, ErrUpstreamTimeout) && !errors.Is(cause, errStalledBody)
}

func isJSON(h http.Header) bool {
	ct := h.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "application/json")
}

// decoded is an error body's text for the classifier: gzip and deflate are
// undone, bounded; other encodings are left as they are (and do not parse).
func decoded(h http.Header, body []byte) []byte {
	var zr io.Reader
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "", "identity":
		return body
	case "gzip":
		g, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil
		}
		zr = g
	case "deflate":
		zr = flate.NewReader(bytes.NewReader(body))
	default:
		return nil
	}
	out, _ := io.ReadAll(io.LimitReader(zr, fault.MaxBody))
	return out
}

// settle acts on an attempt's verdict: it reports the key's trial, rests
// the key or its account, adds the keys the call must not try next to c's
// skip set, and says whether the call goes on to another key.
func (r *Relay) settle(l Lease, v fault.Verdict, c *Call) (retry bool) {
	k := l.Key
	// Counted once the branches below know whether anything rests.
	defer func() { r.obs.Judged(k, v) }()
	if v.Learns() {
		if lr, nk := r.inForce(k); lr != nil {
			// A reload put another pool in force since the call began,
			// and kept this key: that pool learns the fault (this one
			// only finishes its calls). The call goes on here.
			l.trial.Abandon()
			if v.UserID != "" {
				lr.breakers.SetAccount(nk, v.UserID)
			}
			if !lr.learn(nk, v, c.Client, c.Blind) {
				v.Spared = true
				return false
			}
			v.Spared = c.Blind
			if !c.Blind && (v.Scope == fault.Account || v.FreeOnly) {
				r.breakers.Siblings(k, &c.skip)
			}
			return v.Retry
		}
	}
	if v.UserID != "" {
		r.breakers.SetAccount(k, v.UserID)
	}
	if c.Blind && (v.Scope == fault.Key || v.Scope == fault.Account) {
		// Not an inference endpoint: its 401 or 429 says nothing sure of
		// the key, and a client must not be able to rest keys with it.
		// Another key may still answer it. A 401 is worth asking the
		// key's own GET /key about: only its answer can rest the key.
		v.Spared = true
		l.trial.Abandon()
		if r.confirm != nil && v.Reason == fault.Auth {
			r.confirm.Confirm(k, v)
		}
		return v.Retry
	}
	switch v.Scope {
	case fault.Upstream:
		l.trial.Abandon()
		return false
	case fault.Key, fault.Account:
		if c.Client != "" && r.bounded(v) && !r.limiter.allow(c.Client, r.restSlots(k, v), r.breakers.Now(), r.resting) {
			// This client caused its share of rests for now: the answer
			// goes back as it is, and nobody rests.
			v.Spared = true
			l.trial.Success()
			return false
		}
		if r.confirm != nil && needsConfirm(v) {
			// A long rest is confirmed by the key's own GET /key first;
			// until then the key alone is held for a few seconds.
			// The hold is no rest yet: the confirmation counts and tells
			// the rest, or that the key is back, once.
			l.trial.Hold(v.Reason, v.Status, r.breakers.Now().Add(r.confirmHold))
			r.confirm.Confirm(k, v)
		} else {
			r.rest(l, v)
			if r.confirm != nil && (v.Status == http.StatusPaymentRequired || v.Status == http.StatusTooManyRequests) {
				r.confirm.PollNow(k)
			}
		}
		if v.Scope == fault.Account || v.FreeOnly {
			r.breakers.Siblings(k, &c.skip)
		}
		return v.Retry
	case fault.Request:
		l.trial.Success()
		if v.Afford > 0 {
			// This account (or this key's cap) cannot afford the
			// request's size: try one that can, and send the calls that
			// may ask for as much elsewhere for a while.
			if !v.OnKey {
				r.breakers.Siblings(k, &c.skip)
			}
			r.breakers.NoteAfford(k, v.Afford, v.OnKey, v.Large, r.breakers.Now().Add(AffordNote))
			if r.confirm != nil {
				// What the key and its account have left is read now,
				// as after any other 402 of the key.
				r.confirm.PollNow(k)
			}
			return v.Retry
		}
		return false
	default:
		l.trial.Success()
		return false
	}
}

// inForce is the snapshot in force and k in it, when a reload put that
// snapshot in force after r and kept k (the same secret); nil otherwise.
// Read on faults only.
func (r *Relay) inForce(k *keyring.Key) (*Relay, *keyring.Key) {
	live := r.live.Load()
	if live == r || live == nil {
		return nil, nil
	}
	if nk := live.pool.ByID(k.ID); nk != nil && nk.Secret.Equal(k.Secret) {
		return live, nk
	}
	for _, nk := range live.pool.Keys() {
		if nk.Secret.Equal(k.Secret) {
			return live, nk
		}
	}
	return nil, nil
}

// rest applies a fault without confirmation: the key's own rest, or its
// account's. A free-model limit blocks free-model calls only.
func (r *Relay) rest(l Lease, v fault.Verdict) {
	r.restFor(l.Key, v, func() time.Duration { return l.trial.Fail(v) }, l.trial.Success)
}

// restFor rests k, or its account, for v: keyRest rests the key itself and
// returns the rest in force (a call's trial failing, or Set.Confirmed once
// the answer was committed); a free-model limit (per day, or per minute:
// a client's own :free calls reach it) blocks the account's free-model
// calls only, until its reset (without a hint, the next UTC midnight or
// minute), and settles the key as fine with notFault (may be nil).
func (r *Relay) restFor(k *keyring.Key, v fault.Verdict, keyRest func() time.Duration, notFault func()) {
	now := r.breakers.Now()
	// The calls in flight on a key when it hits a limit each get the
	// fault, moments apart: a key (or account) resting for the same reason
	// until about as long is the same rest, told (one 🧊 line, one
	// cooldown counted) once.
	was, _, wasUntil := r.breakers.Rest(k)
	if v.Scope == fault.Account && !v.FreeOnly && v.Reason != fault.FreeQuota {
		// An account's rest is new while the account's own rest is not
		// as long, whatever k's own: it takes its other keys out too.
		was, wasUntil = r.breakers.AccountRest(k)
	}
	again := func(until time.Time) bool {
		return was == v.Reason && !wasUntil.Add(sameRest).Before(until)
	}
	switch {
	case v.FreeOnly || v.Reason == fault.FreeQuota:
		until := v.Until
		switch {
		case !until.IsZero():
		case v.Reason == fault.FreeQuota:
			until = NextUTCMidnight(now)
		default:
			until = now.Truncate(time.Minute).Add(time.Minute)
		}
		if notFault != nil {
			notFault()
		}
		// The same block, told once, as a rest is (again).
		blocked := r.breakers.FreeBlockedUntil(k)
		r.breakers.BlockFree(k, until)
		if blocked.IsZero() || blocked.Add(sameRest).Before(until) {
			r.obs.AccountCooldown(k, v, until)
		}
	case v.Scope == fault.Account:
		until := now.Add(keyRest())
		r.breakers.RestAccount(k, v.Reason, v.Status, until)
		if !again(until) {
			r.obs.AccountCooldown(k, v, until)
		}
	default:
		rest := keyRest()
		if !again(now.Add(rest)) {
			r.obs.Cooldown(k, v, rest)
		}
	}
}

// sameRest is how much later than a key's rest in force a fault of the
// same reason may end and still be that rest, not a new one.
const sameRest = time.Second

// needsConfirm: faults that would rest a key or an account for long, which
// a key that answers its own GET /key fine cannot have.
func needsConfirm(v fault.Verdict) bool {
	switch v.Reason {
	case fault.Auth, fault.KeyLimit, fault.Credits:
		return true
	}
	return false
}

// NextUTCMidnight is when OpenRouter's per-day free-model quotas reset.
func NextUTCMidnight(now time.Time) time.Time {
	return now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

// Confirmer checks a fault with the key's own GET /key and then rests the
// key or its account, or lifts the hold (the budget poller implements it).
type Confirmer interface {
	// Confirm must not block: the check runs on its own.
	Confirm(k *keyring.Key, v fault.Verdict)
	// PollNow reads k's budget soon: after a 402 or 429 it may have
	// changed. It must not block.
	PollNow(k *keyring.Key)
}

// restLimiter bounds the share of the pool one client's requests may rest:
// a client that makes upstream answer 429 for reasons of its own must not
// bench the pool. A rest the client caused counts against it for the
// window and after it while the key still rests, so that rests longer than
// the window (a Retry-After of minutes, a doubled rest) do not add up, a
// share per window, to the whole pool. An account's rest counts all its
// keys. Faults that GET /key confirms (a key's 401, its cap's 402) do not
// pass through it, and resting a key the client rested already costs
// nothing.
type restLimiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	// swept is when every client's record was last pruned.
	swept time.Time
	// rested holds, per client, when it last rested each slot.
	rested map[string]map[int]time.Time
}

func newRestLimiter(share float64, window time.Duration, poolLen int) *restLimiter {
	if share <= 0 {
		share = 0.5
	}
	if window <= 0 {
		window = time.Minute
	}
	limit := max(1, int(share*float64(poolLen)))
	return &restLimiter{limit: limit, window: window, rested: map[string]map[int]time.Time{}}
}

// allow counts the rest of slots (one key's, or an account's) caused by
// client and reports whether it is within the bound; resting reports
// whether a slot is still out of rotation. Called only on faults, never on
// a successful call.
func (l *restLimiter) allow(client string, slots []int, now time.Time, resting func(slot int) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= l.window || now.Before(l.swept) {
		// Clients that do not come back are forgotten.
		l.swept = now
		for c, m := range l.rested {
			if l.prune(m, now, resting); len(m) == 0 {
				delete(l.rested, c)
			}
		}
	}
	m := l.rested[client]
	if m == nil {
		m = map[int]time.Time{}
		l.rested[client] = m
	} else {
		l.prune(m, now, resting)
	}
	fresh := 0
	for _, slot := range slots {
		if _, ok := m[slot]; !ok {
			fresh++
		}
	}
	// A client's first rest is allowed even when it rests more keys than
	// the bound (an account of many keys), so that a spent account is
	// learned all the same.
	if fresh > 0 && len(m) > 0 && len(m)+fresh > l.limit {
		return false
	}
	for _, slot := range slots {
		m[slot] = now
	}
	return true
}

// restSlots are the slots a rest for v of k puts out of rotation: the
// account's for an account's fault, else k's alone.
func (r *Relay) restSlots(k *keyring.Key, v fault.Verdict) []int {
	if v.Scope == fault.Account && !v.FreeOnly {
		return r.breakers.SiblingSlots(k, make([]int, 0, 4))
	}
	return []int{k.Slot()}
}

// bounded reports whether a rest for v is bounded per client: all but those
// the key's GET /key confirms, which are facts. GET /key cannot show an
// account's balance, so a 402 for credits stays a client's word.
func (r *Relay) bounded(v fault.Verdict) bool {
	return r.confirm == nil || !needsConfirm(v) || v.Reason == fault.Credits
}

// prune drops from m the rests that no longer count at now: the window
// since them is over and their key is back in rotation.
func (l *restLimiter) prune(m map[int]time.Time, now time.Time, resting func(slot int) bool) {
	for slot, at := range m {
		if now.Before(at) || now.Sub(at) >= l.window && !resting(slot) {
			delete(m, slot)
		}
	}
}

// resting reports whether the key in slot is out of rotation now, for the
// limiter.
func (r *Relay) resting(slot int) bool {
	keys := r.pool.Keys()
	return slot < len(keys) && !r.pool.Available(keys[slot], r.breakers.Now().UnixNano())
}
