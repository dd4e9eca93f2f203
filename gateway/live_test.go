package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/fault"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
	"github.com/keygate/keygate/webui"
)

func livePool(t *testing.T, ids ...int) *keyring.Pool {
	t.Helper()
	var es []keyring.Entry
	for _, id := range ids {
		es = append(es, keyring.Entry{ID: id, Secret: secret.New("sk-or-v1-gateway-live-test-00000000" + string(rune('0'+id)))})
	}
	p, err := keyring.New(es, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestObserverFollow: counts follow a kept key into a new pool (and a call
// still on the old snapshot counts on), start at zero for a new key, and a
// removed key's count nowhere.
func TestObserverFollow(t *testing.T) {
	old := livePool(t, 1, 2)
	o := NewObserver(nil, slog.New(slog.DiscardHandler), old.Len())
	o.Follow(old)
	v := fault.Verdict{Status: 401, Scope: fault.Key}
	o.Judged(old.ByID(1), v)
	o.Upstream(old.ByID(1), "m", 200, 100*time.Millisecond)
	next := livePool(t, 3, 1)
	o.Follow(next)
	o.Judged(old.ByID(1), v) // in flight on the old snapshot
	o.Judged(old.ByID(2), v) // removed
	tests := []struct {
		name string
		k    *keyring.Key
		want uint64
		lat  bool
	}{
		{"kept", next.ByID(1), 2, true},
		{"new", next.ByID(3), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, _ := o.Failures(tt.k)
			classes, lat := o.Stats(tt.k)
			if keys["401"] != tt.want || classes["key"] != tt.want || (lat > 0) != tt.lat {
				t.Errorf("failures %v, classes %v, latency %v", keys, classes, lat)
			}
		})
	}
	if keys, _ := o.Failures(old.ByID(2)); len(keys) != 0 {
		t.Errorf("removed key counted: %v", keys)
	}
}

// TestObserverSpared: a key's fault that rested nothing (a blind call, a
// client over CLIENT_REST_SHARE) is one of the key's other errors in /keys
// and of class "spared" on the status page, not one of its failures; one
// that rested is a failure of class "key".
func TestObserverSpared(t *testing.T) {
	pool := livePool(t, 1)
	o := NewObserver(nil, slog.New(slog.DiscardHandler), pool.Len())
	o.Follow(pool)
	k := pool.ByID(1)
	for _, tt := range []struct {
		v                     fault.Verdict
		keys429, other, class uint64 // counts so far: failures "429", other errors of v's status, class "spared"
	}{
		{fault.Verdict{Status: 429, Scope: fault.Key}, 1, 0, 0},
		{fault.Verdict{Status: 429, Scope: fault.Key, Spared: true}, 1, 1, 1},
		{fault.Verdict{Status: 401, Scope: fault.Key, Spared: true}, 1, 1, 2},
	} {
		o.Judged(k, tt.v)
		keys, other := o.Failures(k)
		if keys["429"] != tt.keys429 || other[strconv.Itoa(tt.v.Status)] != tt.other {
			t.Errorf("after %+v: failures %v, other errors %v", tt.v, keys, other)
		}
		if classes, _ := o.Stats(k); classes["key"] != 1 || classes["spared"] != tt.class {
			t.Errorf("after %+v: classes %v", tt.v, classes)
		}
	}
}

// TestStatusSource: the page's rows follow the snapshot in force, with the
// state mapped from breakers and the manual disable.
func TestStatusSource(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	pool := livePool(t, 1, 2, 3)
	set := breaker.NewSet(pool, breaker.Settings{Now: clock})
	r := relay.New(pool, set, relay.Options{})
	set.Confirmed(pool.ByID(2), fault.Verdict{Status: 401, Scope: fault.Key, Reason: fault.Auth})
	set.SetDisabled(pool.ByID(3), true)
	set.BlockFree(pool.ByID(1), now.Add(58*time.Minute))
	src := &StatusSource{Relay: r, Strategy: "random", Replica: "r1"}
	s := src.Snapshot(context.Background())
	want := map[int]webui.State{1: webui.StateActive, 2: webui.StateResting, 3: webui.StateDisabled}
	if len(s.Keys) != 3 || s.Replica != "r1" || s.RedisUp != nil {
		t.Fatalf("snapshot %+v", s)
	}
	for _, k := range s.Keys {
		if k.State != want[k.ID] {
			t.Errorf("key %d: %s, want %s", k.ID, k.State, want[k.ID])
		}
	}
	if k := s.Keys[1]; k.RestReason != "auth" || time.Duration(k.RestLeft) != 10*time.Minute {
		t.Errorf("key 2 rest %q %v", k.RestReason, time.Duration(k.RestLeft))
	}
	// A free-model block stops :free calls only: the key stays active.
	for i, want := range []time.Duration{58 * time.Minute, 0, 0} {
		if got := time.Duration(s.Keys[i].FreeBlockedLeft); got != want {
			t.Errorf("key %d free models blocked for %v, want %v", s.Keys[i].ID, got, want)
		}
	}
	np := livePool(t, 4)
	r.Swap(np, breaker.NewSet(np, breaker.Settings{Now: clock}), nil)
	if s := src.Snapshot(context.Background()); len(s.Keys) != 1 || s.Keys[0].ID != 4 {
		t.Errorf("after a swap: %+v", s.Keys)
	}
}
