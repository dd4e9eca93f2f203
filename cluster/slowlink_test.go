package cluster

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// slowLink forwards a unix socket to target with delay added to every
// chunk each way: a Redis a few milliseconds away (another zone, a
// managed service over the internet).
func slowLink(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slow.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				time.Sleep(delay)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		_ = dst.Close()
		_ = src.Close()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return "unix://" + path
}

// TestSlowLinkLeaseAndTrial: a Redis a few milliseconds away (8 ms round
// trip: another zone, a managed Redis) answers every write, re-read and
// push well within their 500 ms. A budget lease, asked from a poll's
// goroutine (never a pick), was bound by the pick's 5 ms too: each ask
// failed (every replica polled every key) and three in a row took Redis
// for gone, logged as unreachable and back again, sharing stopped
// meanwhile. A trial's token that misses its 5 ms is sent without it (as
// documented), but is no outage either.
func TestSlowLinkLeaseAndTrial(t *testing.T) {
	srv := redistest.Start(t)
	url := slowLink(t, srv.Socket(), 4*time.Millisecond)
	s, _, logs := running(t, url, Options{})
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if !s.TryLease(ctx, "budget:k"+string(rune('a'+i)), time.Minute) {
			t.Fatalf("lease %d refused", i)
		}
		s.TryTrial(ctx, KeyRef("1:k"+string(rune('a'+i))), time.Now())
	}
	if n := logs.count("redis unreachable"); n != 0 || !s.Up() {
		t.Errorf("a Redis 8 ms away taken for gone (up=%v), logged unreachable %d times", s.Up(), n)
	}
	c := direct(t, srv.URL())
	if n, _ := c.Keys(ctx, "keygate:lease:*").Result(); len(n) != 5 {
		t.Errorf("%d of 5 budget leases taken in Redis (%v): the others polled without one", len(n), n)
	}
	if s.TryLease(ctx, "budget:ka", time.Minute) {
		t.Errorf("a lease held is given again")
	}
}
