package cluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// trialResultTTL is how long a trial's result stays readable, so that a
// replica that missed its push still learns it on the next re-read.
const trialResultTTL = time.Minute

// Redis is the Store of replicas sharing one Redis server. Nothing here is
// read on a pick: Publish queues, and Run applies what others learned.
type Redis struct {
	o      Options
	client *redis.Client
	origin string
	health health

	queue chan Event

	mu      sync.Mutex
	mine    map[string]Event   // the latest fact this replica published, per Redis key
	held    map[string]string  // of mine, those Redis took: the epoch it held then
	epoch   string             // the store's epoch at the last re-read
	run     string             // the server's run_id when held was last trusted
	pending map[KeyRef]pending // spend and free use not yet written
	dirty   bool               // a write failed or an event was dropped: write mine again
	running bool
	closed  bool

	stop    context.CancelFunc
	wg      sync.WaitGroup
	applyMu sync.Mutex
}

// pending is spend and free-model use waiting for the next flush.
type pending struct {
	account string
	usd     float64
	free    int
}

// NewRedis connects lazily to o.URL (see ParseURL): a Redis that is down at
// start is no error, only a bad URL is. The client fails fast instead of
// waiting: no retries, short timeouts that honour each call's context.
func NewRedis(o Options) (*Redis, error) {
	o.defaults()
	ro, err := ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if ro.TLSConfig != nil && o.TLSConfig != nil {
		ro.TLSConfig = o.TLSConfig
	}
	ro.Protocol = 3
	ro.MaxRetries = -1
	ro.DialTimeout = o.IOTimeout
	ro.DialerRetries = 1
	ro.ReadTimeout = o.IOTimeout
	ro.WriteTimeout = o.IOTimeout
	ro.PoolTimeout = o.IOTimeout
	ro.ContextTimeoutEnabled = true
	ro.MinIdleConns = 1
	ro.DisableIdentity = true
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &Redis{
		o:       o,
		client:  redis.NewClient(ro),
		origin:  hex.EncodeToString(id[:]),
		queue:   make(chan Event, o.QueueSize),
		mine:    map[string]Event{},
		held:    map[string]string{},
		pending: map[KeyRef]pending{},
	}
	s.health.log = o.Logger
	if o.Registerer != nil {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keygate_redis_up",
			Help: "1 while the shared Redis (REDIS_URL) answers, 0 while this replica goes on alone.",
		}, func() float64 {
			if s.Up() {
				return 1
			}
			return 0
		})
		if err := o.Registerer.Register(g); err != nil {
			_ = s.client.Close()
			return nil, fmt.Errorf("registering keygate_redis_up: %w", err)
		}
	}
	return s, nil
}

// Up reports whether Redis answered lately.
func (s *Redis) Up() bool { return s.health.isUp() }

// Publish queues ev for the writer, dropping the oldest queued event when
// the queue is full (the dropped fact is written again later, from the
// replica's own record). Spend and FreeUse only add to a local sum; a
// Budget drops the spend of its key.
func (s *Redis) Publish(ev Event) {
	if (ev.Kind == Disable || ev.Kind == Enable || ev.Kind == Member) && ev.At.IsZero() {
		ev.At = s.o.Now()
	}
	if err := check(ev); err != nil {
		s.o.Logger.Warn("cluster: event not shared", "err", err)
		return
	}
	s.mu.Lock()
	if ev.Kind == Spend || ev.Kind == FreeUse {
		p := s.pending[ev.Key]
		p.account, p.usd, p.free = cmp.Or(ev.Account, p.account), p.usd+ev.USD, p.free+ev.N
		s.pending[ev.Key] = p
		s.mu.Unlock()
		return
	}
	if ev.Kind == Budget {
		// The poll's figures hold this replica's spend from before it,
		// and its USD what was spent while it was out: written after the
		// poll, that spend would count twice. So with the free-model
		// requests of its account, on any of the account's keys: the
		// figures hold the account's quota, N what was used since.
		for ref, p := range s.pending {
			// The key's, under whichever id this replica spent it.
			if ref.Digest() == ev.Key.Digest() {
				p.usd, p.free = 0, 0
				s.pending[ref] = p
			}
		}
		if ev.Account != "" {
			for ref, p := range s.pending {
				if p.account == ev.Account && p.free != 0 {
					p.free = 0
					s.pending[ref] = p
				}
			}
		}
	}
	s.remember(ev)
	s.mu.Unlock()
	for {
		select {
		case s.queue <- ev:
			return
		default:
		}
		select {
		case <-s.queue:
			s.mu.Lock()
			s.dirty = true
			s.mu.Unlock()
		default:
		}
	}
}

// remember keeps ev as this replica's latest fact of its Redis key, so that
// it can be written again after an outage. Called with s.mu held.
func (s *Redis) remember(ev Event) {
	s.forgetEnded(ev)
	k := s.factKey(ev)
	if old, ok := s.mine[k]; ok && later(old, ev) {
		return
	}
	s.mine[k] = ev
	delete(s.held, k)
}

// wrote notes that Redis took ev (or kept a later fact of its key), if ev
// is still this replica's latest fact of that key: reconcile does not
// write it again while Redis keeps the epoch it has now. Gone from such a
// Redis, the fact was ended by another replica (whose push this one may
// have missed, cut off): written again, it would outlive its end.
func (s *Redis) wrote(ev Event) {
	k := s.factKey(ev)
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.mine[k]; ok && m.Kind == ev.Kind && m.Until.Equal(ev.Until) && m.At.Equal(ev.At) {
		s.held[k] = s.epoch
	}
}

// forgetEnded drops from mine the rests that ev (a key back from rest, an
// account back) ended, and the disable or enable that a later one undid,
// so that a reconcile does not bring them back.
// Called with s.mu held.
func (s *Redis) forgetEnded(ev Event) {
	if ev.Kind == KeyRest || ev.Kind == AccountRest {
		// A rest supersedes the end of an earlier one with its deadline.
		delete(s.mine, s.endOf(ev))
		return
	}
	if ev.Kind == Disable || ev.Kind == Enable {
		// Another replica's later disable or enable of the key undid
		// this replica's: written again after Redis lost its data, the
		// older one would come back in the replicas that did not hold
		// the later one (a replica since restarted).
		k := s.factKey(ev)
		if m, ok := s.mine[k]; ok && m.At.UnixMilli() < ev.At.UnixMilli() {
			delete(s.mine, k)
		}
		return
	}
	var ended []string
	switch {
	case ev.Kind == TrialResult && ev.OK:
		ended = []string{s.factKey(Event{Kind: KeyRest, Key: ev.Key})}
	case ev.Kind == AccountBack:
		ended = []string{s.factKey(Event{Kind: AccountRest, Account: ev.Account, Reason: ev.Reason})}
	}
	for _, k := range ended {
		// In milliseconds, as facts travel.
		if rest, ok := s.mine[k]; ok && rest.Until.UnixMilli() <= ev.Until.UnixMilli() {
			delete(s.mine, k)
			delete(s.held, k)
		}
	}
}

// endOf is the Redis key of the early end (TrialResult, AccountBack) of a
// rest (KeyRest, AccountRest) with ev's deadline.
func (s *Redis) endOf(ev Event) string {
	if ev.Kind == AccountRest {
		return s.factKey(Event{Kind: AccountBack, Account: ev.Account, Reason: ev.Reason, Until: ev.Until})
	}
	return s.factKey(Event{Kind: TrialResult, Key: ev.Key, Until: ev.Until})
}

// later reports whether a is later than b by their kind's order.
func later(a, b Event) bool {
	switch b.Kind {
	case KeyRest, AccountRest, TrialResult, AccountBack:
		return a.Kind == b.Kind && !a.Until.Before(b.Until)
	}
	return !a.At.Before(b.At)
}

// TryTrial takes the trial token of key's rest that ended at restUntil.
// The token is named by the key's digest: replicas that number the key
// differently for a while (one reloaded a renumbering keys file, the
// other not yet) still send one trial between them.
func (s *Redis) TryTrial(ctx context.Context, key KeyRef, restUntil time.Time) bool {
	ok, err := s.try(ctx, s.o.Prefix+"trial:"+key.Digest()+":"+strconv.FormatInt(restUntil.UnixMilli(), 10), s.o.TrialTTL, s.o.HotTimeout)
	if err != nil {
		// Each replica that asks now sends its own trial of this rest:
		// told, so that whoever counts a key's trials can tell them from
		// a token given twice.
		// The key by its id alone: a log line names no digest of a secret.
		id, _, _ := strings.Cut(string(key), ":")
		s.o.Logger.Debug("trial of API Key #"+id+" sent without its trial token, Redis did not give it ("+err.Error()+"): other replicas may send theirs",
			"event", "trial_unshared", "key_id", id, "rest_until", restUntil.UTC().Format(time.RFC3339Nano))
	}
	return ok
}

// TryLease takes the lease name for ttl. It is asked from a budget poll's
// goroutine, never a pick: it waits as long as a background write.
func (s *Redis) TryLease(ctx context.Context, name string, ttl time.Duration) bool {
	ok, _ := s.try(ctx, s.o.Prefix+"lease:"+name, ttl, s.o.IOTimeout)
	return ok
}

// errDown is why try answers true while Redis is taken for gone.
var errDown = errors.New("redis unreachable")

// try is SET NX PX within timeout; true whenever Redis cannot say, with
// the reason as err.
func (s *Redis) try(ctx context.Context, key string, ttl, timeout time.Duration) (bool, error) {
	if s.health.isDown() {
		return true, errDown
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok, err := s.client.SetNX(ctx, key, s.origin, ttl).Result()
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) || parent.Err() != nil {
			return true, err // the caller gave up; not Redis' fault
		}
		if timeout < s.o.IOTimeout && ctx.Err() != nil {
			// Missed the pick's few milliseconds: a Redis farther than
			// that is not gone. The background writes, which wait
			// IOTimeout, tell an outage.
			return true, err
		}
		s.health.fail(err)
		return true, err
	}
	s.health.ok()
	return ok, nil
}

// Close stops Run, waits for its goroutines and closes the connections.
func (s *Redis) Close() error {
	s.mu.Lock()
	s.closed = true
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
	if err := s.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// factKey is the Redis key that holds ev (for Disable/Enable: a name of
// their own; they live in the manual hash, under the key's digest). Facts
// of a key are named by its digest alone, as its trial token and lease
// are: a reload may renumber a key, and replicas may number it differently
// for a while, yet a rest ended, a poll's figures and the spend after them
// must meet the facts of the same key under its other id.
func (s *Redis) factKey(ev Event) string {
	switch ev.Kind {
	case KeyRest:
		return s.o.Prefix + "rest:" + ev.Key.Digest()
	case AccountRest:
		if ev.Reason == freeQuota {
			// A free-model block lives beside the account's rest, not
			// in its place: each has its own deadline.
			return s.o.Prefix + "afree:" + ev.Account
		}
		return s.o.Prefix + "arest:" + ev.Account
	case Budget:
		return s.o.Prefix + "budget:" + ev.Key.Digest()
	case TrialResult:
		// One key per rest ended: a back names the deadline of the rest
		// it ended, and a later one may end an earlier deadline (a short
		// rest's trial after a long rest's early lift); in one key, the
		// script would keep the first and never push the second.
		return s.o.Prefix + "trialres:" + ev.Key.Digest() + ":" + strconv.FormatInt(ev.Until.UnixMilli(), 10)
	case AccountBack:
		u := ":" + strconv.FormatInt(ev.Until.UnixMilli(), 10)
		if ev.Reason == freeQuota {
			// The end of a free-model block, kept apart from the end of
			// the account's rest: each ends only its own.
			return s.o.Prefix + "afreeback:" + ev.Account + u
		}
		return s.o.Prefix + "aback:" + ev.Account + u
	case Disable, Enable:
		return s.o.Prefix + "manual:" + ev.Key.Digest()
	case Member:
		return s.o.Prefix + "member:" + ev.Key.Digest()
	}
	return s.o.Prefix + "spend:" + ev.Key.Digest()
}
