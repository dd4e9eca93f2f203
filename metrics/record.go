package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Status codes outside [minCode, maxCode] cannot come from an HTTP/1 or
// HTTP/2 response, so they are recorded as "error" with the transport
// errors; this keeps the `code` label to at most 901 values.
const (
	minCode   = 100
	maxCode   = 999
	codeError = 0
)

// normCode maps code to itself or to codeError.
func normCode(code int) int {
	if code < minCode || code > maxCode {
		return codeError
	}
	return code
}

// codeLabel is the `code` label of a normalised code; it allocates, so it
// runs only when a child is first resolved.
func codeLabel(code int) string {
	if code == codeError {
		return "error"
	}
	return strconv.Itoa(code)
}

// routeCodeCache holds keygate_requests_total children per route and code,
// filled lazily so only codes that happened are exported. Index 0 is
// "error", index code-minCode+1 the status.
type routeCodeCache struct {
	c [numRoutes][maxCode - minCode + 2]atomic.Pointer[prometheus.Counter]
}

// childCache maps a per-key label tuple to its resolved child. A read is a
// lock-free sync.Map load, so recording from many cores contends on
// nothing; the map is bounded by the label bounds of its key type.
type childCache[K keyed] struct {
	m sync.Map // K -> prometheus.Counter
}

// keyed is a cache key that carries its key id, so DeleteKey can find it.
type keyed interface {
	comparable
	keyID() int
}

func (c *childCache[K]) get(k K) prometheus.Counter {
	if v, ok := c.m.Load(k); ok {
		return v.(prometheus.Counter)
	}
	return nil
}

// len counts the children cached (for tests).
func (c *childCache[K]) len() int {
	n := 0
	c.m.Range(func(any, any) bool { n++; return true })
	return n
}

// resolve returns k's child, making it with mk under km's lock unless km was
// deleted meanwhile (then nil: the call records nothing).
func (c *childCache[K]) resolve(km *keyMetrics, k K, mk func() prometheus.Counter) prometheus.Counter {
	km.mu.Lock()
	defer km.mu.Unlock()
	if km.deleted {
		return nil
	}
	if v := c.get(k); v != nil {
		return v
	}
	v := mk()
	c.m.Store(k, v)
	return v
}

// deleteKey forgets every child of key id.
func (c *childCache[K]) deleteKey(id int) {
	c.m.Range(func(k, _ any) bool {
		if k.(K).keyID() == id {
			c.m.Delete(k)
		}
		return true
	})
}

// upstreamKey identifies a keygate_upstream_requests_total child; model is
// already bounded by modelSet and code normalised.
type upstreamKey struct {
	id    int
	model string
	code  int
}

func (k upstreamKey) keyID() int { return k.id }

// tokenKey identifies a keygate_tokens_total child.
type tokenKey struct {
	id    int
	model string
	typ   uint8
}

func (k tokenKey) keyID() int { return k.id }

// spendKey identifies a keygate_key_spend_usd_total child.
type spendKey struct {
	id    int
	model string
}

func (k spendKey) keyID() int { return k.id }

const (
	tokenPrompt uint8 = iota
	tokenCompletion
)

var tokenTypes = [...]string{tokenPrompt: "prompt", tokenCompletion: "completion"}

// Request records one answered client request: keygate_requests_total and
// keygate_request_duration_seconds. code <= 0 is recorded as "error".
// An unknown route records nothing.
func (m *Metrics) Request(route Route, code int, d time.Duration) {
	if route >= numRoutes {
		return
	}
	code = normCode(code)
	i := 0
	if code != codeError {
		i = code - minCode + 1
	}
	slot := &m.routeCodes.c[route][i]
	p := slot.Load()
	if p == nil {
		c := m.requests.WithLabelValues(route.String(), codeLabel(code))
		slot.CompareAndSwap(nil, &c)
		p = slot.Load()
	}
	(*p).Inc()
	m.routeDur[route].Observe(d.Seconds())
}

// Upstream records one upstream call: keygate_upstream_requests_total and
// keygate_upstream_request_duration_seconds. code <= 0 means the call got no
// HTTP answer (timeout, network error) and is recorded as "error".
func (m *Metrics) Upstream(keyID int, model string, code int, d time.Duration) {
	km := m.key(keyID)
	if km == nil {
		return
	}
	// A kept model name is cached as itself, so a warm call is one lookup
	// by the caller's name; other names go through the bound first.
	k := upstreamKey{id: keyID, model: model, code: normCode(code)}
	c := m.upCache.get(k)
	if c == nil {
		k.model = m.models.label(model)
		if c = m.upCache.get(k); c == nil {
			c = m.upCache.resolve(km, k, func() prometheus.Counter {
				return m.upstream.WithLabelValues(km.label, k.model, codeLabel(k.code))
			})
			if c == nil {
				return
			}
		}
	}
	c.Inc()
	km.upDur.Observe(d.Seconds())
}

// KeySelected records that the rotation picked keyID under strategy, which
// is "random", "round-robin" or "least-busy"; any other strategy records
// nothing, so a typo cannot grow the label set.
func (m *Metrics) KeySelected(keyID int, strategy string) {
	km := m.key(keyID)
	if km == nil {
		return
	}
	s := -1
	switch strategy {
	case "random":
		s = 0
	case "round-robin":
		s = 1
	case "least-busy":
		s = 2
	}
	if s < 0 {
		return
	}
	km.selected[s].Inc()
}

// Cooldown records that keyID was taken out of rotation for r.
func (m *Metrics) Cooldown(keyID int, r Reason) {
	km := m.key(keyID)
	if km == nil || r >= numReasons {
		return
	}
	km.cooldowns[r].Inc()
}

// Retry records that a request was sent again on another key because of r.
func (m *Metrics) Retry(r Reason) {
	if r >= numRetryReasons {
		return
	}
	m.retryCount[r].Inc()
}

// Tokens adds the usage an upstream reported for one call. A count of zero
// or less is skipped, so calls without usage create no series.
func (m *Metrics) Tokens(keyID int, model string, prompt, completion int) {
	km := m.key(keyID)
	if km == nil || (prompt <= 0 && completion <= 0) {
		return
	}
	if prompt > 0 {
		if c := m.tokenCounter(km, tokenKey{id: keyID, model: model, typ: tokenPrompt}); c != nil {
			c.Add(float64(prompt))
		}
	}
	if completion > 0 {
		if c := m.tokenCounter(km, tokenKey{id: keyID, model: model, typ: tokenCompletion}); c != nil {
			c.Add(float64(completion))
		}
	}
}

// tokenCounter resolves a tokens child by the caller's model name, which
// is cached as itself when kept, as Upstream does; nil once km was deleted.
func (m *Metrics) tokenCounter(km *keyMetrics, k tokenKey) prometheus.Counter {
	if c := m.tokCache.get(k); c != nil {
		return c
	}
	k.model = m.models.label(k.model)
	if c := m.tokCache.get(k); c != nil {
		return c
	}
	return m.tokCache.resolve(km, k, func() prometheus.Counter {
		return m.tokens.WithLabelValues(km.label, k.model, tokenTypes[k.typ])
	})
}
