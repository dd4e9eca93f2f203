package cluster

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"log/slog"
)

func TestMain(m *testing.M) {
	RouteClientLog(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// recorder collects what Run applies.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) apply(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

// find returns the last applied event that match accepts.
func (r *recorder) find(match func(Event) bool) (Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.evs) - 1; i >= 0; i-- {
		if match(r.evs[i]) {
			return r.evs[i], true
		}
	}
	return Event{}, false
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

// eventually polls cond for up to 5s (a liveness bound, not a speed claim).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
	}
}

// newStore makes a Redis store on url, closed at cleanup.
func newStore(t *testing.T, url string, o Options) *Redis {
	t.Helper()
	o.URL = url
	s, err := NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// connect pings Redis once, so that a store that is not running counts
// Redis up, as Run's first tick would make it.
func connect(tb testing.TB, s *Redis) {
	tb.Helper()
	if err := s.result(s.client.Ping(ctx).Err()); err != nil {
		tb.Fatal(err)
	}
}

// running makes a store and runs it into rec, waiting until it is up.
func running(t *testing.T, url string, o Options) (*Redis, *recorder, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	s := newStore(t, url, o)
	rec := &recorder{}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), rec.apply) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	eventually(t, "store up", s.Up)
	return s, rec, logs
}

// direct is a plain client on url for looking at what the store wrote.
func direct(t *testing.T, url string) *redis.Client {
	t.Helper()
	o, err := ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var ctx = context.Background()

func slogTo(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
