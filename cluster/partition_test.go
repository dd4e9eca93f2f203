package cluster

import (
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// cutProxy forwards a unix socket to Redis' and can cut one replica off
// (its connections closed, new ones refused) while the others still reach
// Redis: a network partition of that replica alone.
type cutProxy struct {
	path string
	mu   sync.Mutex
	cut  bool
	conn []net.Conn
	ln   net.Listener
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	p := &cutProxy{path: filepath.Join(t.TempDir(), "p.sock")}
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			up, err := net.Dial("unix", target)
			if err != nil {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			p.conn = append(p.conn, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.set(true); p.set(false) })
	return p
}

func (p *cutProxy) url() string { return "unix://" + p.path }

func (p *cutProxy) set(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conn {
			_ = c.Close()
		}
		p.conn = nil
	}
}

// TestEndedRestNotWrittenBack: replica A rests a key (10 minutes) and the
// fact is in Redis. A is cut off from Redis; meanwhile replica B lifts the
// rest (a budget poll showed credit: TrialResult OK naming that rest's
// deadline), which deletes it from Redis. A's push is missed. When A
// reaches Redis again it must not write the rest it published before the
// cut back: Redis held it (same epoch), and another replica ended it.
// Written back, every replica rests the key again until its old deadline
// (for a cap rest, until the month's end), and the rest's write deletes
// B's lift (KEYS[3]), so nothing ends it again.
//
// Also (helper-78) on a Redis whose ACL denies INFO (a user with
// -@dangerous, or a managed Redis that renames INFO: runID answers "",
// which once cleared held on every reconcile), and when the Redis A comes
// back to is another server run than the one it left (a failover to an
// up-to-date replica, which holds B's lift; modelled by A's record of the
// run it left): reconcile, run before the first re-read, wrote the rest
// B ended.
func TestEndedRestNotWrittenBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup runs on the server before the replicas start; whileCut
		// on A while it is cut off, after B's lift.
		setup    func(t *testing.T, srv *redistest.Server)
		whileCut func(a *Redis)
	}{
		{name: "partition"},
		{name: "INFO denied", setup: func(t *testing.T, srv *redistest.Server) {
			if r, err := srv.Do("ACL", "SETUSER", "default", "-@dangerous"); err != nil || r != "+OK" {
				t.Fatalf("ACL SETUSER: %q %v", r, err)
			}
		}},
		{name: "failover", whileCut: func(a *Redis) {
			a.mu.Lock()
			a.run = "the-old-primary"
			a.mu.Unlock()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			if tc.setup != nil {
				tc.setup(t, srv)
			}
			p := newCutProxy(t, srv.Socket())
			o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond}
			a, _, _ := running(t, p.url(), o)
			b, recB, _ := running(t, srv.URL(), o)
			c := direct(t, srv.URL())
			until := time.Now().Add(10 * time.Minute).Truncate(time.Millisecond)
			a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "key_limit", Status: 402})
			eventually(t, "the rest is in Redis", func() bool { return c.Exists(ctx, "keygate:rest:ab").Val() == 1 })
			eventually(t, "B has it", func() bool {
				_, ok := recB.find(func(ev Event) bool { return ev.Kind == KeyRest })
				return ok
			})
			if tc.whileCut != nil {
				eventually(t, "A knows the run", func() bool {
					a.mu.Lock()
					defer a.mu.Unlock()
					return a.run != ""
				})
			}

			p.set(true)
			eventually(t, "A takes Redis for gone", func() bool { return !a.Up() })
			b.Publish(Event{Kind: TrialResult, Key: "1:ab", Until: until, OK: true})
			eventually(t, "B's lift ends the rest in Redis", func() bool { return c.Exists(ctx, "keygate:rest:ab").Val() == 0 })
			recB.mu.Lock()
			recB.evs = nil
			recB.mu.Unlock()
			if tc.whileCut != nil {
				tc.whileCut(a)
			}

			p.set(false)
			eventually(t, "A is back", a.Up)
			time.Sleep(time.Second)
			if c.Exists(ctx, "keygate:rest:ab").Val() != 0 {
				t.Errorf("A wrote back the rest B ended while A was cut off: rest:ab in Redis for %v", c.PTTL(ctx, "keygate:rest:ab").Val())
			}
			if ev, ok := recB.find(func(ev Event) bool { return ev.Kind == KeyRest }); ok {
				t.Errorf("B was told the ended rest again (until %v): it rests the key again", ev.Until.Format(time.TimeOnly))
			}
		})
	}
}

// TestSnapshotRestoreGetsLaterFactsBack: a Redis restarted from an older
// snapshot (an RDB save, as a default redis.conf makes) keeps its epoch but
// not the facts written after the save: those go out again.
func TestSnapshotRestoreGetsLaterFactsBack(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond}
	a, _, _ := running(t, srv.URL(), o)
	c := direct(t, srv.URL())
	until := time.Now().Add(10 * time.Minute)
	a.Publish(Event{Kind: KeyRest, Key: "1:ab", Until: until, Reason: "auth", Status: 401})
	eventually(t, "first rest and epoch written", func() bool { return c.Exists(ctx, "keygate:rest:ab", "keygate:epoch").Val() == 2 })
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	a.Publish(Event{Kind: KeyRest, Key: "2:cd", Until: until, Reason: "auth", Status: 401})
	eventually(t, "second rest written", func() bool { return c.Exists(ctx, "keygate:rest:cd").Val() == 1 })
	srv.Kill()
	eventually(t, "A takes Redis for gone", func() bool { return !a.Up() })
	srv.Restart()
	eventually(t, "the snapshot is loaded", func() bool { return c.Exists(ctx, "keygate:rest:ab").Val() == 1 })
	eventually(t, "A writes the fact the snapshot lacks", func() bool { return c.Exists(ctx, "keygate:rest:cd").Val() == 1 })
}
