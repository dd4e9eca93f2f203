package e2e

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestResetAfterReadNotResent: an upstream that read the whole request (and
// so may be generating and billing it) and then drops a fresh connection
// at once: no keep-alive connection went stale, and the POST is not sent
// again (only one on a reused connection may be: TestStaleKeepAlive).
func TestResetAfterReadNotResent(t *testing.T) {
	up := rawListen(t, func(c net.Conn, br *bufio.Reader, req *http.Request, body []byte, n int) bool {
		rawReset(c)
		return false
	})
	clk := newClock()
	g := hdStart(t, up.URL(), hdKeys(1), clk)
	r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false)))
	t.Logf("status %d, upstream connections %d, requests read %d", r.Status, up.conns.Load(), up.reqs.Load())
	if got := up.reqs.Load(); got != 1 {
		t.Errorf("upstream read the POST %d times on %d connections, want once", got, up.conns.Load())
	}
}

// TestLateLossNotResent: on a reused keep-alive connection, an upstream
// that holds a POST past relay's resend window (a model generating) and
// then drops the connection before answering: Go's transport would send
// it again, as the first on a connection closed while idle is; past the
// window it is not, as upstream may have generated and billed it.
func TestLateLossNotResent(t *testing.T) {
	up := rawListen(t, func(c net.Conn, br *bufio.Reader, req *http.Request, body []byte, n int) bool {
		if n == 0 {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(rawJSON)) + "\r\n\r\n" + rawJSON))
			return true // kept alive: the next call reuses it
		}
		time.Sleep(200 * time.Millisecond)
		rawReset(c)
		return false
	})
	g := hdStart(t, up.URL(), hdKeys(1), newClock())
	if r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false))); r.Status != 200 {
		t.Fatalf("first call %d %s", r.Status, r.Body)
	}
	r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false)))
	if r.Status != http.StatusBadGateway || up.reqs.Load() != 2 || up.conns.Load() != 1 {
		t.Fatalf("%d %s; upstream read %d requests on %d connections, want 502 and 2 on 1", r.Status, r.Body, up.reqs.Load(), up.conns.Load())
	}
}

// TestResetOnEveryConnSentTwiceAtMost: an upstream that reads each POST
// and drops its connection at once, with several keep-alive connections
// idle in the pool. The first drop may be a stale connection and is sent
// again once; Go's transport would go on to every idle connection in
// turn, each read by upstream (and billable), and did: 4 to 7 times.
func TestResetOnEveryConnSentTwiceAtMost(t *testing.T) {
	const idle = 6
	var arrived sync.WaitGroup
	arrived.Add(idle)
	up := rawListen(t, func(c net.Conn, br *bufio.Reader, req *http.Request, body []byte, n int) bool {
		if n < idle {
			arrived.Done()
			arrived.Wait() // each on a connection of its own
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(rawJSON)) + "\r\n\r\n" + rawJSON))
			return true
		}
		rawReset(c)
		return false
	})
	g := hdStart(t, up.URL(), hdKeys(1), newClock())
	var wg sync.WaitGroup
	for range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false))); r.Status != 200 {
				t.Errorf("warm-up call %d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if up.conns.Load() != idle {
		t.Fatalf("%d upstream connections after the warm-up, want %d", up.conns.Load(), idle)
	}
	r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false)))
	if got := up.reqs.Load() - idle; r.Status != http.StatusBadGateway || got > 2 {
		t.Errorf("%d %s; upstream read the POST %d times, want a 502 after at most 2", r.Status, r.Body, got)
	}
}
