package share

import (
	"testing"

	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/cluster/redistest"
)

// BenchmarkSpent is the adapter's part of a successful answer with
// REDIS_URL set: a lock-free name lookup and the store's in-process sum.
func BenchmarkSpent(b *testing.B) {
	rs := redistest.Start(b)
	store, err := cluster.NewRedis(cluster.Options{URL: rs.URL()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	s := newSide(b, &bus{}, New(store, nil))
	k := s.pool.Keys()[0]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.ad.Spent(k, 0.0001)
		}
	})
}
