package cluster

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// downAfter is how many failures in a row take Redis for gone; one slow
// answer is not an outage.
const downAfter = 3

// States of health.
const (
	unknown int32 = iota // not yet heard from
	up
	down
)

// health is the tiny breaker around Redis: it says whether Redis is up, and
// logs each change once, never per request.
type health struct {
	log   *slog.Logger
	state atomic.Int32 // read on the pick path (TryTrial) without the mutex

	mu    sync.Mutex
	fails int
}

func (h *health) isUp() bool   { return h.state.Load() == up }
func (h *health) isDown() bool { return h.state.Load() == down }

// ok notes an answer from Redis.
func (h *health) ok() {
	if h.state.Load() == up {
		h.mu.Lock()
		h.fails = 0
		h.mu.Unlock()
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails = 0
	switch h.state.Swap(up) {
	case down:
		h.log.Info("redis is back: sharing key state again", "event", "redis_back")
	case unknown:
		h.log.Info("redis connected: sharing key state with other replicas", "event", "redis_connected")
	}
}

// fail notes a call Redis did not answer in time.
func (h *health) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	st := h.state.Load()
	if st == down || (st == up && h.fails < downAfter) {
		return
	}
	h.state.Store(down)
	// The text console prints an event's message alone: the cause goes in
	// it (a wrong host, port or password in REDIS_URL).
	h.log.Warn("redis unreachable ("+err.Error()+"): going on with what this replica knows", "event", "redis_unreachable", "err", err)
}
