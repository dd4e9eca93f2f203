package conncount

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestCounterFollowsTheServer: a connection counts from its accept, idle or
// serving, until the client closes it.
func TestCounterFollowsTheServer(t *testing.T) {
	var c Counter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ConnState = c.Track
	srv.Start()
	defer srv.Close()
	waitOpen := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); c.Open() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("%d open, want %d", c.Open(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	raw, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	waitOpen(1)
	client := srv.Client()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitOpen(2) // the client's kept-alive connection stays counted
	raw.Close()
	client.CloseIdleConnections()
	waitOpen(0)
}

// TestCounterTable: the states that open and close a connection, and the
// ones that do not move the count.
func TestCounterTable(t *testing.T) {
	for _, tc := range []struct {
		states []http.ConnState
		want   int64
	}{
		{[]http.ConnState{http.StateNew}, 1},
		{[]http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive}, 1},
		{[]http.ConnState{http.StateNew, http.StateActive, http.StateClosed}, 0},
		{[]http.ConnState{http.StateNew, http.StateActive, http.StateHijacked}, 0},
		{[]http.ConnState{http.StateNew, http.StateNew, http.StateIdle, http.StateClosed}, 1},
	} {
		var c Counter
		for _, s := range tc.states {
			c.Track(nil, s)
		}
		if got := c.Open(); got != tc.want {
			t.Errorf("%v: %d open, want %d", tc.states, got, tc.want)
		}
	}
}
