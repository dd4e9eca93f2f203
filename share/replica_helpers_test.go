package share

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/secret"
)

// redisReplica is one replica on the Redis at o.URL (o's re-read every
// 100 ms unless set) with the keys of entries, sharing through an Adapter,
// running until the test ends.
func redisReplica(t *testing.T, o cluster.Options, entries []keyring.Entry) (*breaker.Set, []*keyring.Key) {
	t.Helper()
	if o.HealInterval == 0 {
		o.HealInterval = 100 * time.Millisecond
	}
	store, err := cluster.NewRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	ad := New(store, nil)
	pool, err := keyring.New(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := breaker.NewSet(pool, breaker.Settings{Sink: ad, Trials: ad})
	ad.Attach(set, nil, pool.Keys())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ad.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = store.Close() })
	waitBack(t, "redis up", store.Up)
	return set, pool.Keys()
}

// numbered is n entries, ids 1..n, with secrets made from seed.
func numbered(n, seed int) []keyring.Entry {
	var entries []keyring.Entry
	for i := 1; i <= n; i++ {
		entries = append(entries, keyring.Entry{ID: i, Secret: secret.New(fmt.Sprintf("sk-or-v1-%064d", seed+i))})
	}
	return entries
}
