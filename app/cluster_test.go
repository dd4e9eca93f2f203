package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/cluster"
	"github.com/keygate/keygate/cluster/redistest"
)

// TestDisableSharedOverRedis: two replicas on one Redis; a key disabled on
// one is disabled on the other, and enabled again, within a bounded wait;
// the status page says Redis is up.
func TestDisableSharedOverRedis(t *testing.T) {
	noLeak(t)
	rs := redistest.Start(t)
	up := newUpstream(t)
	serve := func() *App {
		a, _ := newLiveApp(t, up.URL, []int{1, 2}, Options{}, "REDIS_URL="+rs.URL())
		serveLoopback(t, a)
		return a
	}
	a, b := serve(), serve()
	disabledOn := func(x *App, id int) bool {
		snap := x.Relay.Snapshot()
		return snap.Breakers().Disabled(snap.Pool().ByID(id))
	}
	waitFor(t, "both replicas on Redis", func() bool { return a.Store.Up() && b.Store.Up() })
	if err := a.Live.Disable(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "key 2 disabled on the other replica", func() bool { return disabledOn(b, 2) })
	if disabledOn(b, 1) {
		t.Fatal("key 1 disabled too")
	}
	// An older toggle arriving late changes nothing.
	b.Live.ApplyEvent(cluster.Event{Kind: cluster.Enable, Key: RefOf(b.Relay.Pool().ByID(2)), At: time.Now().Add(-time.Hour)})
	if !disabledOn(b, 2) {
		t.Fatal("an older enable undid a newer disable")
	}
	if err := a.Live.Enable(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "key 2 enabled on the other replica", func() bool { return !disabledOn(b, 2) })
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, localRequest(http.MethodGet, "/status.json", ""))
	if !strings.Contains(rec.Body.String(), `"redis_up":true`) {
		t.Errorf("status.json does not say Redis is up: %s", rec.Body)
	}
}
