package cluster

import (
	"strconv"
	"testing"

	"github.com/keygate/keygate/cluster/redistest"
)

// BenchmarkPublishSpend is the one call a successful answer makes: it must
// not touch the network nor allocate.
func BenchmarkPublishSpend(b *testing.B) {
	s, err := NewRedis(Options{URL: "unix:///nonexistent.sock"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ev := Event{Kind: Spend, Key: "1:0123456789abcdef", Account: "a1b2", USD: 0.0001}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Publish(ev)
		}
	})
}

// BenchmarkFlush is the once-a-second spend write of a replica whose keys
// all spent since the last one, on Debian's redis-server over a unix
// socket: its cost grows with the keys, and with Redis' round-trip time.
func BenchmarkFlush(b *testing.B) {
	srv := redistest.Start(b)
	for _, keys := range []int{1, 10, 100} {
		b.Run("keys="+strconv.Itoa(keys), func(b *testing.B) {
			s, err := NewRedis(Options{URL: srv.URL()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			connect(b, s)
			refs := make([]KeyRef, keys)
			for i := range refs {
				refs[i] = KeyRef(strconv.Itoa(i+1) + ":0123456789abcdef")
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, ref := range refs {
					s.Publish(Event{Kind: Spend, Key: ref, Account: "a1b2", USD: 0.0001})
				}
				s.flush(ctx)
				if n := len(s.pending); n != 0 {
					b.Fatalf("%d keys' spend not written", n)
				}
			}
		})
	}
}
