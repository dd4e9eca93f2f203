package app

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/internal/conncount"
)

// TestConnsAndCloseIdle: Conns counts the client connections open, idle or
// serving (a burst's buffers are theirs until they close), InFlight the
// requests, and CloseIdle closes the idle upstream connections of keygate's own
// transport, HTTP/1.1 and HTTP/2 over TLS alike, so that a burst's surplus
// does not wait out the idle timeout.
func TestConnsAndCloseIdle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tls   bool
		proto string // of the upstream calls
	}{{"HTTP/1.1", false, "HTTP/1.1"}, {"HTTP/2 over TLS", true, "HTTP/2.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			noLeak(t)
			u := unstartedUpstream()
			var proto atomic.Value // of the last upstream call
			u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				proto.Store(r.Proto)
				u.serve(w, r)
			}))
			var upConns conncount.Counter
			u.Config.ConnState = upConns.Track
			if tc.tls {
				u.EnableHTTP2 = true
				u.StartTLS()
			} else {
				u.Start()
			}
			t.Cleanup(u.Close)
			a, _ := newLiveApp(t, u.URL, []int{1}, Options{})
			if tc.tls {
				// keygate's own transport, told to trust the test
				// certificate: NewTransport's dialer reads it at each dial.
				a.transport.(*http.Transport).TLSClientConfig = u.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
			}
			addr := serveLoopback(t, a)

			// A connection open and no request on it is counted.
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the open connection counted", func() bool { return a.Conns() == 1 })
			if n := a.InFlight(); n != 0 {
				t.Fatalf("%d requests in flight before any", n)
			}

			client := &http.Client{Transport: &http.Transport{}}
			call := func() {
				resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json",
					strings.NewReader(`{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
				if err != nil {
					t.Error(err)
					return
				}
				// Read to the end, so that the connection is kept.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
			// A call held upstream is in flight, on a second connection.
			release := u.holdKey(1)
			done := make(chan struct{})
			go func() { defer close(done); call() }()
			<-u.started
			if n, c := a.InFlight(), a.Conns(); n != 1 || c != 2 {
				t.Errorf("a call held upstream: %d in flight over %d connections, want 1 over 2", n, c)
			}
			close(release)
			<-done
			for range 2 {
				call()
			}
			if proto.Load() != tc.proto {
				t.Fatalf("upstream calls over %v, want %s", proto.Load(), tc.proto)
			}
			// The client's idle keep-alive connection is still counted,
			// no request is, and the calls left one idle upstream
			// connection behind.
			waitFor(t, "two client connections counted", func() bool { return a.Conns() == 2 })
			if n := a.InFlight(); n != 0 {
				t.Fatalf("%d requests in flight after the calls", n)
			}
			if n := upConns.Open(); n != 1 {
				t.Fatalf("%d upstream connections open after three calls in turn, want 1", n)
			}
			a.CloseIdle()
			waitFor(t, "the idle upstream connection closed", func() bool { return upConns.Open() == 0 })

			raw.Close()
			client.CloseIdleConnections()
			waitFor(t, "no connection counted", func() bool { return a.Conns() == 0 })
		})
	}
}
