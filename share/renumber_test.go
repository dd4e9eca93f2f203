package share

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keygate/keygate/budget"
	"github.com/keygate/keygate/cluster/redistest"
	"github.com/keygate/keygate/fault"
)

// TestCapLiftAcrossIds: the same key numbered 1 on replica a and 2 on
// replica b (mid rolling reload, or a's own rest written before a reload
// renumbered it). a rests it until its cap's monthly reset; b's budget poll
// shows the cap raised and lifts it. The lift must end the rest on both
// replicas and stay ended: the README says facts follow the key (its
// digest), not its id.
func TestCapLiftAcrossIds(t *testing.T) {
	rs := redistest.Start(t)
	keyAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data":{"limit":10,"limit_remaining":4,"limit_reset":"monthly","creator_user_id":"user_A"}}`))
	}))
	defer keyAPI.Close()
	a := backReplicaAt(t, rs.URL(), keyAPI.URL+"/key", 1)
	b := backReplicaAt(t, rs.URL(), keyAPI.URL+"/key", otherID)
	now := time.Now()
	a.set.RestKey(a.key, fault.KeyLimit, http.StatusPaymentRequired, budget.NextReset("monthly", now))
	waitBack(t, "cap rest reaches b", func() bool { r, _, _ := b.set.Rest(b.key); return r == fault.KeyLimit })
	b.poller.PollNow(b.key) // the cap was raised: credit left
	waitBack(t, "the poll lifts the cap rest on b", func() bool { r, _, _ := b.set.Rest(b.key); return r == fault.NoReason })
	time.Sleep(200 * time.Millisecond)
	rested := map[string]int{}
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		for name, x := range map[string]*backReplica{"a (id 1)": a, "b (id 2, polled)": b} {
			if r, _, _ := x.set.Rest(x.key); r != fault.NoReason {
				rested[name]++
			}
		}
	}
	for name, n := range rested {
		t.Errorf("replica %s: the lifted cap rest came back (key out of rotation) in %d samples over 1.5s", name, n)
	}
	out, _ := rs.Do("KEYS", "*")
	t.Logf("redis keys: %s", out)
}

// otherID is the key's id on the second replica.
const otherID = 2
