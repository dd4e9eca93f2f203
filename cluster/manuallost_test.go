package cluster

import (
	"testing"
	"time"

	"github.com/keygate/keygate/cluster/redistest"
)

// TestEnableOutlivesLostData: replica A disables a key by hand, then an
// operator enables it on replica B. B is replaced (a rolling restart),
// and Redis restarts without its data (the compose file's Redis keeps
// none). A writes its facts again, as it should, but not the disable that
// B's later enable undid: written back, the key is disabled on every
// replica, the new ones included, though the operator enabled it.
func TestEnableOutlivesLostData(t *testing.T) {
	srv := redistest.Start(t)
	o := Options{IOTimeout: 100 * time.Millisecond, HealInterval: 100 * time.Millisecond}
	a, _, _ := running(t, srv.URL(), o)
	b, recB, _ := running(t, srv.URL(), o)
	c := direct(t, srv.URL())
	a.Publish(Event{Kind: Disable, Key: "1:ab"})
	eventually(t, "B hears of the disable", func() bool {
		_, ok := recB.find(func(ev Event) bool { return ev.Kind == Disable })
		return ok
	})
	time.Sleep(5 * time.Millisecond)
	b.Publish(Event{Kind: Enable, Key: "1:ab"})
	eventually(t, "the enable is in Redis", func() bool {
		v, _ := c.HGet(ctx, "keygate:manual", "ab").Result()
		ev, _, err := decode([]byte(v))
		return err == nil && ev.Kind == Enable
	})
	time.Sleep(300 * time.Millisecond) // A has the push
	_ = b.Close()

	srv.Restart()
	time.Sleep(1500 * time.Millisecond) // A is back and writes its facts again
	if v, err := c.HGet(ctx, "keygate:manual", "ab").Result(); err == nil {
		if ev, _, err := decode([]byte(v)); err == nil && ev.Kind == Disable {
			t.Errorf("after Redis lost its data, A wrote back the disable that B's later enable undid: the key is disabled by hand again on every replica")
		}
	}

	// A replica started now learns the key disabled.
	_, recL, _ := running(t, srv.URL(), o)
	time.Sleep(300 * time.Millisecond)
	if ev, ok := recL.find(func(ev Event) bool { return ev.Key == "1:ab" }); ok && ev.Kind == Disable {
		t.Errorf("a replica started after it applies the disable")
	}
}
