package cluster

import (
	"testing"
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
