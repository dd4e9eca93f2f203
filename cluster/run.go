package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backoff of reconnects, doubling from the first to the last.
const (
	firstBackoff = 100 * time.Millisecond
	lastBackoff  = 5 * time.Second
)

// Run starts the writer, the subscriber and the re-read loop, and waits
// for ctx or Close. It never fails because Redis is away.
func (s *Redis) Run(ctx context.Context, apply func(Event)) error {
	s.mu.Lock()
	if s.running || s.closed {
		s.mu.Unlock()
		return ErrRunning
	}
	s.running = true
	ctx, s.stop = context.WithCancel(ctx)
	s.wg.Add(3)
	s.mu.Unlock()
	deliver := func(ev Event) {
		s.mu.Lock()
		// Another replica ended a rest this one published: it must not
		// be written again by a reconcile.
		s.forgetEnded(ev)
		s.mu.Unlock()
		s.applyMu.Lock()
		defer s.applyMu.Unlock()
		apply(ev)
	}
	go func() { defer s.wg.Done(); s.write(ctx) }()
	go func() { defer s.wg.Done(); s.subscribe(ctx, deliver) }()
	go func() { defer s.wg.Done(); s.tick(ctx, deliver) }()
	<-ctx.Done()
	s.wg.Wait()
	return nil
}

func (s *Redis) channel() string { return s.o.Prefix + "events" }
func (s *Redis) index() string   { return s.o.Prefix + "index" }
func (s *Redis) manual() string  { return s.o.Prefix + "manual" }

// newEpoch is a random value for the store's epoch key.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Redis) markDirty() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

// write drains the queue; events that wait in it together go out in one
// round trip. While Redis is down, events wait in s.mine and go out when
// it is back.
func (s *Redis) write(ctx context.Context) {
	var evs []Event
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-s.queue:
			evs = append(evs[:0], ev)
		}
		for more := true; more && len(evs) < cap(s.queue); {
			select {
			case ev := <-s.queue:
				evs = append(evs, ev)
			default:
				more = false
			}
		}
		if !s.health.isUp() || len(s.putAll(ctx, evs)) > 0 {
			s.markDirty()
		}
	}
}

// put writes one fact and pushes it, in one round trip.
func (s *Redis) put(ctx context.Context, ev Event) error {
	c, ok := s.command(ev)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.IOTimeout)
	defer cancel()
	return s.result(c.script.Run(ctx, s.client, c.keys, c.args...).Err())
}

// putAll writes facts in one round trip (a pipeline) and answers those
// that did not go out. When Redis does not hold a script (a restarted or
// flushed server), the scripts are loaded and the calls they failed sent
// again in one more pipeline: a fleet that reconnects after a restart
// writes everything in a few round trips, however many facts it holds.
func (s *Redis) putAll(ctx context.Context, evs []Event) (failed []Event) {
	if len(evs) == 1 {
		if s.put(ctx, evs[0]) != nil {
			return evs
		}
		s.wrote(evs[0])
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.IOTimeout)
	defer cancel()
	calls := make([]call, 0, len(evs))
	for _, ev := range evs {
		if c, ok := s.command(ev); ok {
			calls = append(calls, call{ev: ev, c: c})
		}
	}
	if len(calls) == 0 {
		return nil
	}
	s.pipeline(ctx, calls)
	var retry []*call
	var first error
	fail := func(c *call, err error) {
		failed = append(failed, c.ev)
		c.failed = true
		first = cmp.Or(first, err)
	}
	for i := range calls {
		c := &calls[i]
		switch err := c.cmd.Err(); {
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			retry = append(retry, c)
		case err != nil && !errors.Is(err, redis.Nil):
			fail(c, err)
		}
	}
	if len(retry) > 0 {
		// A script that does not load fails its calls without resending
		// them: they would only be refused again.
		loaded := map[*redis.Script]error{}
		var resend []call
		var again []*call
		for _, c := range retry {
			err, ok := loaded[c.c.script]
			if !ok {
				err = c.c.script.Load(ctx, s.client).Err()
				loaded[c.c.script] = err
			}
			if err != nil {
				fail(c, err)
				continue
			}
			resend = append(resend, *c)
			again = append(again, c)
		}
		if len(resend) > 0 {
			s.pipeline(ctx, resend)
		}
		for i := range resend {
			if err := resend[i].cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
				fail(again[i], err)
			}
		}
	}
	_ = s.result(first)
	for i := range calls {
		if !calls[i].failed {
			s.wrote(calls[i].ev)
		}
	}
	return failed
}

// call is one fact of putAll, its script call and, once sent, its reply;
// failed when it did not go out.
type call struct {
	ev     Event
	c      command
	cmd    *redis.Cmd
	failed bool
}

// pipeline sends calls by their scripts' digests in one round trip; each
// call's cmd holds its reply or error.
func (s *Redis) pipeline(ctx context.Context, calls []call) {
	pipe := s.client.Pipeline()
	for i := range calls {
		c := &calls[i]
		c.cmd = c.c.script.EvalSha(ctx, pipe, c.c.keys, c.c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command holds its own error
}

// command is one fact's script call.
type command struct {
	script *redis.Script
	keys   []string
	args   []any
}

// command is the script call that writes ev and pushes it; false when
// there is nothing to write (a rest already over, an event that does not
// encode, which Publish checked).
func (s *Redis) command(ev Event) (command, bool) {
	val, err := encode(ev, s.origin)
	if err != nil {
		return command{}, false
	}
	key := s.factKey(ev)
	switch ev.Kind {
	case KeyRest, AccountRest:
		if !ev.Until.After(s.o.Now()) {
			return command{}, false
		}
		u := ev.Until.UnixMilli()
		// A rest learned after an early end of one with the same deadline
		// (a cap spent again before the reset the lifted rest awaited, a
		// day's free requests used up again) supersedes that end: read
		// again, the end would end the new rest too.
		return command{factScript, []string{key, s.index(), s.endOf(ev)}, []any{u, val, "PXAT", u, s.channel(), "u"}}, true
	case TrialResult, AccountBack:
		keys := []string{key, s.index()}
		if ev.Kind == AccountBack {
			// A free block's end (Reason free_quota) supersedes the
			// free block only, a rest's end the rest only.
			keys = append(keys, s.factKey(Event{Kind: AccountRest, Account: ev.Account, Reason: ev.Reason}))
		} else if ev.OK {
			keys = append(keys, s.factKey(Event{Kind: KeyRest, Key: ev.Key}))
		}
		return command{factScript, keys, []any{ev.Until.UnixMilli(), val, "PX", trialResultTTL.Milliseconds(), s.channel(), "u"}}, true
	case Budget:
		spend := s.factKey(Event{Kind: Spend, Key: ev.Key})
		return command{factScript, []string{key, s.index(), spend}, []any{ev.At.UnixMilli(), val, "PX", s.o.BudgetTTL.Milliseconds(), s.channel(), "at"}}, true
	case Member:
		return command{factScript, []string{key, s.index()}, []any{ev.At.UnixMilli(), val, "PX", s.o.MemberTTL.Milliseconds(), s.channel(), "at"}}, true
	case Disable, Enable:
		return command{manualScript, []string{s.manual()}, []any{ev.Key.Digest(), val, ev.At.UnixMilli(), s.channel()}}, true
	case Spend:
		return command{spendScript, []string{key, s.index()}, []any{strconv.FormatFloat(ev.USD, 'f', -1, 64), s.o.BudgetTTL.Milliseconds(), s.channel(), val}}, true
	case FreeUse:
		return command{pushScript, nil, []any{s.channel(), val}}, true
	}
	return command{}, false
}

// result feeds err to the health breaker. Any error counts, an error
// reply too (a wrong password, a Redis out of memory): Redis is not doing
// what the fleet needs, and this replica must not wait for it.
func (s *Redis) result(err error) error {
	if err == nil || errors.Is(err, redis.Nil) {
		s.health.ok()
		return nil
	}
	s.health.fail(err)
	return err
}

// flushEvery is how often spend goes out (and the longest tick).
const flushEvery = time.Second

// tick flushes spend every second and re-reads all facts every
// HealInterval while Redis is up, and probes it with backoff while it is
// down; on its return it writes this replica's facts again, so both sides
// catch up.
func (s *Redis) tick(ctx context.Context, deliver func(Event)) {
	backoff := firstBackoff
	var healed time.Time
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.health.isUp() {
			pctx, cancel := context.WithTimeout(ctx, s.o.IOTimeout)
			err := s.result(s.client.Ping(pctx).Err())
			cancel()
			if err != nil {
				t.Reset(backoff)
				backoff = min(2*backoff, lastBackoff)
				continue
			}
			backoff = firstBackoff
			healed = time.Time{}
			s.markDirty()
		}
		if time.Since(healed) >= s.o.HealInterval {
			// Read before writing: what other replicas ended while this
			// one was cut off leaves mine before a reconcile that does
			// not trust held (a new server run) would write it back.
			healed = time.Now()
			s.prune(s.o.Now())
			s.heal(ctx, deliver)
		}
		// A Redis that lost its data gets this replica's facts now.
		s.reconcile(ctx)
		s.flush(ctx)
		t.Reset(min(s.o.HealInterval, flushEvery))
	}
}

// reconcile writes every live fact this replica published, when a write
// may have been lost. The scripts keep the later fact, so this is safe.
func (s *Redis) reconcile(ctx context.Context) {
	now := s.o.Now()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return
	}
	s.dirty = false
	s.mu.Unlock()
	// A Redis restarted from a snapshot keeps an old epoch but not the
	// facts written since: held facts count only on the same server run.
	run := s.runID(ctx)
	s.mu.Lock()
	// A server that does not say (INFO denied by an ACL such as
	// -@dangerous, or not answered in time) is no new one: clearing held
	// then would write back every rest another replica ended meanwhile.
	if run != "" && run != s.run {
		clear(s.held)
		s.run = run
	}
	evs := make([]Event, 0, len(s.mine))
	for k, ev := range s.mine {
		if s.expired(ev, now) {
			delete(s.mine, k)
			delete(s.held, k)
			continue
		}
		if e, ok := s.held[k]; ok && e != "" && e == s.epoch {
			continue // Redis has it, or another replica ended it
		}
		evs = append(evs, ev)
	}
	s.mu.Unlock()
	if len(evs) > 0 && (ctx.Err() != nil || len(s.putAll(ctx, evs)) > 0) {
		s.markDirty()
	}
}

// prune drops from mine the facts that expired (renewing Member facts), and
// from held what mine no longer has: each ended rest has a Redis key, and a fact, of its own, and
// a replica that never needs a reconcile would keep them all.
func (s *Redis) prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, ev := range s.mine {
		if ev.Kind == Member && now.Sub(ev.At) >= s.o.MemberTTL/2 {
			// Learned once in the replica's life (the breaker tells a
			// key's account when it changes): renewed while the replica
			// runs, by the next reconcile.
			ev.At = now
			s.mine[k] = ev
			delete(s.held, k)
			s.dirty = true
			continue
		}
		if s.expired(ev, now) {
			delete(s.mine, k)
		}
	}
	for k := range s.held {
		if _, ok := s.mine[k]; !ok {
			delete(s.held, k)
		}
	}
}

// runID is the Redis server's run_id (new at each start), "" when it does
// not say.
func (s *Redis) runID(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, s.o.IOTimeout)
	defer cancel()
	info, err := s.client.Info(ctx, "server").Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return v
		}
	}
	return ""
}

func (s *Redis) expired(ev Event, now time.Time) bool {
	switch ev.Kind {
	case KeyRest, AccountRest:
		return !ev.Until.After(now)
	case TrialResult, AccountBack:
		return now.After(ev.Until.Add(s.o.TrialTTL + trialResultTTL))
	case Budget:
		return now.After(ev.At.Add(s.o.BudgetTTL))
	case Member:
		return now.After(ev.At.Add(s.o.MemberTTL))
	}
	return false
}

// flush writes the spend and pushes the free use summed since the last
// flush; what fails to go out is kept for the next.
func (s *Redis) flush(ctx context.Context) {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	out := s.pending
	s.pending = make(map[KeyRef]pending, len(out))
	s.mu.Unlock()
	evs := make([]Event, 0, len(out))
	for ref, p := range out {
		if p.usd > 0 {
			evs = append(evs, Event{Kind: Spend, Key: ref, Account: p.account, USD: p.usd})
		}
		if p.free > 0 {
			evs = append(evs, Event{Kind: FreeUse, Key: ref, Account: p.account, N: p.free})
		}
	}
	if ctx.Err() == nil && s.health.isUp() {
		evs = s.putAll(ctx, evs)
	}
	if len(evs) == 0 {
		return
	}
	s.mu.Lock()
	for _, ev := range evs {
		q := s.pending[ev.Key]
		q.account, q.usd, q.free = ev.Account, q.usd+ev.USD, q.free+ev.N
		s.pending[ev.Key] = q
	}
	s.mu.Unlock()
}

// heal reads every live fact and applies it: what a missed push, a late
// start or an outage kept from this replica.
func (s *Redis) heal(ctx context.Context, deliver func(Event)) {
	ctx, cancel := context.WithTimeout(ctx, s.o.IOTimeout)
	defer cancel()
	res, err := healScript.Run(ctx, s.client, []string{s.index(), s.manual(), s.o.Prefix + "epoch"}, newEpoch()).Slice()
	if s.result(err) != nil || len(res) != 3 {
		return
	}
	facts, _ := res[0].([]any)
	hash, _ := res[1].([]any)
	s.mu.Lock()
	was := s.epoch
	s.mu.Unlock()
	if epoch, _ := res[2].(string); epoch != was {
		// Redis lost what it held since the last read (or this is the
		// first): what this replica published goes out again.
		if was != "" {
			s.o.Logger.Info("redis lost its data: writing this replica's facts again", "event", "redis_data_lost")
		}
		s.mu.Lock()
		s.epoch = epoch
		clear(s.held)
		s.dirty = true
		s.mu.Unlock()
	}
	// A server restarted from an older snapshot (or a replica promoted
	// with one) keeps the epoch: a restart quicker than three failed calls
	// leaves nothing dirty, and only its run_id tells.
	if run := s.runID(ctx); run != "" {
		s.mu.Lock()
		if s.run != "" && run != s.run {
			clear(s.held)
			s.dirty = true
		}
		s.run = run
		s.mu.Unlock()
	}
	spent := map[string]float64{} // by the key's digest
	var evs []Event
	for i := 0; i+1 < len(facts); i += 2 {
		k, _ := facts[i].(string)
		v, _ := facts[i+1].(string)
		rest, ok := strings.CutPrefix(k, s.o.Prefix)
		if !ok {
			continue
		}
		if ref, ok := strings.CutPrefix(rest, "spend:"); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				spent[KeyRef(ref).Digest()] = f
			}
			continue
		}
		if ev, _, err := decode([]byte(v)); err == nil {
			evs = append(evs, ev)
		}
	}
	for i := 0; i+1 < len(hash); i += 2 {
		v, _ := hash[i+1].(string)
		if ev, _, err := decode([]byte(v)); err == nil && (ev.Kind == Disable || ev.Kind == Enable) {
			evs = append(evs, ev)
		}
	}
	s.mu.Lock()
	pend := make(map[string]float64, len(s.pending))
	for ref, p := range s.pending {
		pend[ref.Digest()] += p.usd
	}
	for i, ev := range evs {
		if ev.Kind == Budget {
			// The fact's own USD is what was spent while its poll was
			// out; the spend key, what was spent after it was written.
			d := ev.Key.Digest()
			evs[i].USD = ev.USD + spent[d] + pend[d]
		}
	}
	s.mu.Unlock()
	for _, ev := range evs {
		if ctx.Err() != nil {
			return
		}
		deliver(ev)
	}
}

// subscribe delivers pushes from other replicas, resubscribing with
// backoff when the connection breaks (heal covers what was missed).
func (s *Redis) subscribe(ctx context.Context, deliver func(Event)) {
	backoff := firstBackoff
	for {
		got := s.listen(ctx, deliver)
		if got {
			backoff = firstBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, lastBackoff)
	}
}

// listen holds one subscription until it breaks or ctx ends; it reports
// whether the subscription was confirmed. A silent connection is pinged
// once; silent again, it counts as broken (a frozen Redis).
func (s *Redis) listen(ctx context.Context, deliver func(Event)) bool {
	ps := s.client.Subscribe(ctx, s.channel())
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	confirmed, pinged := false, false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, s.o.HealInterval)
		if err != nil {
			if timeout(err) && !pinged {
				pinged = true
				if ps.Ping(ctx) == nil {
					continue
				}
			}
			return confirmed
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			confirmed = true
		case *redis.Message:
			if ev, origin, err := decode([]byte(m.Payload)); err == nil && origin != s.origin {
				deliver(ev)
			}
		}
	}
	return confirmed
}

func timeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
