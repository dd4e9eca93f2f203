package relay_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/relay"
)

// TestTransportSpeaksHTTP2AndSharesConnections: against a TLS upstream
// that offers h2, as OpenRouter does, keygate's one transport (with its own
// dialer) negotiates HTTP/2 and, once a connection is up, carries concurrent
// calls, streams included, over it. (Calls that all start before any
// connection exists: TestTransportColdBurst.)
func TestTransportSpeaksHTTP2AndSharesConnections(t *testing.T) {
	var conns atomic.Int32
	release := make(chan struct{})
	var arrived sync.WaitGroup
	const calls = 20
	arrived.Add(calls)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: {\"proto\":\"" + r.Proto + "\"}\n\n"))
		w.(http.Flusher).Flush()
		if r.URL.Path == "/warm" {
			return
		}
		arrived.Done()
		<-release // every call is open at once
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()

	tr := relay.NewTransport(0)
	defer tr.CloseIdleConnections()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	tr.TLSClientConfig = &tls.Config{RootCAs: roots}

	warm, err := tr.RoundTrip(mustGet(t, srv.URL+"/warm"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, warm.Body)
	warm.Body.Close()
	if warm.ProtoMajor != 2 {
		t.Fatalf("HTTP/%d, want 2", warm.ProtoMajor)
	}

	protos := make(chan int, calls)
	errs := make(chan error, calls)
	var done sync.WaitGroup
	for range calls {
		done.Add(1)
		go func() {
			defer done.Done()
			resp, err := tr.RoundTrip(mustGet(t, srv.URL+"/chat/completions"))
			if err != nil {
				errs <- err
				arrived.Done()
				return
			}
			protos <- resp.ProtoMajor
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	arrived.Wait()
	close(release)
	done.Wait()
	close(protos)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for p := range protos {
		if p != 2 {
			t.Fatalf("a call went over HTTP/%d, want 2", p)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d calls open at once used %d connections, want 1", calls, n)
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestTransportColdBurst: calls that all start at once on a cold transport
// open the connections they need, not one each. Every call is held in the
// handler until all have arrived, so they are all open at once: over
// HTTP/2 with 100 streams a connection, 300 calls need 3 connections (and
// the transport must open more when one is full); over HTTP/1.1, with TLS
// or without, each call needs a connection of its own, all at the same
// time (a dialer that held HTTP/1.1 dials one behind the other would never
// get them all in).
func TestTransportColdBurst(t *testing.T) {
	tests := []struct {
		name  string
		tls   bool
		h2    bool
		calls int
		// most is the most connections the upstream may accept, least
		// the fewest that must carry a call.
		most, least int
		proto       int
	}{
		// One handshake at a time to an h2 address: 3 rounds, plus at
		// most 2 for a call that dialled after a round's handshake ended
		// but was handed that round's connection anyway.
		{name: "TLS HTTP/2", tls: true, h2: true, calls: 300, most: 5, least: 3, proto: 2},
		{name: "TLS HTTP/1.1", tls: true, calls: 50, most: 50, least: 50, proto: 1},
		{name: "plain HTTP/1.1", calls: 50, most: 50, least: 50, proto: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaks := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
			u := startCounted(t, tt.tls, tt.h2, tt.calls, 0)
			res := u.burst(t, tt.calls)
			for _, err := range res.errs {
				t.Errorf("call failed: %v", err)
			}
			for _, p := range res.protos {
				if p != tt.proto {
					t.Fatalf("a call went over HTTP/%d, want %d", p, tt.proto)
				}
			}
			accepted, carried := u.accepted.Load(), u.carried()
			t.Logf("%d calls: %d connections accepted, %d carried calls", tt.calls, accepted, carried)
			if accepted > int64(tt.most) {
				t.Errorf("%d calls open at once made the upstream accept %d connections, want at most %d",
					tt.calls, accepted, tt.most)
			}
			if carried < tt.least {
				t.Errorf("%d calls open at once came over %d connections, want at least %d", tt.calls, carried, tt.least)
			}
		})
	}
}

// TestTransportColdBurstFailedDial: when the one handshake the others wait
// for fails, its call gets the real error and the waiting calls dial
// themselves, none hangs and none gets an error of the gate's own.
func TestTransportColdBurstFailedDial(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	const calls = 20
	u := startCounted(t, true, true, calls-1, 1)
	res := u.burst(t, calls)
	if len(res.errs) != 1 {
		t.Fatalf("%d calls failed (%v), want the one whose connection was cut", len(res.errs), res.errs)
	}
	if msg := res.errs[0].Error(); !strings.Contains(msg, "TLS handshake") {
		t.Errorf("failed call: %q, want the handshake's error", msg)
	}
	if len(res.protos) != calls-1 {
		t.Errorf("%d calls answered, want %d", len(res.protos), calls-1)
	}
	t.Logf("%d calls: %d connections accepted (1 cut), %d carried calls", calls, u.accepted.Load(), u.carried())
}

// counted is a test upstream that counts the connections it accepts and
// those its calls came over, and holds every call until want have arrived.
type counted struct {
	srv      *httptest.Server
	tr       *http.Transport
	accepted atomic.Int64
	arrived  sync.WaitGroup
	release  chan struct{}
	mu       sync.Mutex
	remotes  map[string]bool
}

// startCounted starts the upstream, over TLS (offering h2 when h2) or
// plain HTTP, whose first cut accepted connections are closed at once,
// and a cold transport trusting it. want calls must arrive before any is
// answered.
func startCounted(t *testing.T, useTLS, h2 bool, want, cut int) *counted {
	u := &counted{release: make(chan struct{}), remotes: map[string]bool{}}
	u.arrived.Add(want)
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.remotes[r.RemoteAddr] = true
		u.mu.Unlock()
		u.arrived.Done()
		<-u.release
		w.Write([]byte("ok"))
	}))
	u.srv.Listener = &cuttingListener{Listener: u.srv.Listener, n: &u.accepted, cut: int64(cut)}
	u.srv.EnableHTTP2 = h2
	u.srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 100}
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		u.srv.StartTLS()
	} else {
		u.srv.Start()
	}
	t.Cleanup(u.srv.Close)
	u.tr = relay.NewTransport(0)
	t.Cleanup(u.tr.CloseIdleConnections)
	if useTLS {
		roots := x509.NewCertPool()
		roots.AddCert(u.srv.Certificate())
		u.tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return u
}

// burstResult is what the calls of a burst got.
type burstResult struct {
	protos []int
	errs   []error
}

// burst starts calls at once, lets them be answered once all are in (or
// failed), and waits for every one.
func (u *counted) burst(t *testing.T, calls int) burstResult {
	var mu sync.Mutex
	var res burstResult
	var done sync.WaitGroup
	for range calls {
		done.Add(1)
		go func() {
			defer done.Done()
			resp, err := u.tr.RoundTrip(mustGet(t, u.srv.URL+"/chat/completions"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.errs = append(res.errs, err)
				return
			}
			res.protos = append(res.protos, resp.ProtoMajor)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	u.arrived.Wait()
	close(u.release)
	done.Wait()
	return res
}

// carried is how many connections calls came over.
func (u *counted) carried() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.remotes)
}

// cuttingListener counts the connections it accepts into n and closes the
// first cut of them at once.
type cuttingListener struct {
	net.Listener
	n   *atomic.Int64
	cut int64
}

func (l *cuttingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.n.Add(1) <= l.cut {
			c.Close()
			continue
		}
		return c, nil
	}
}

// TestTransportHeldDialsEnd: calls that leave while their dials wait on a
// handshake that never completes return at once, their dials still held,
// and CloseIdleConnections (which cancels the dials of calls no longer
// waiting) ends the held dials and the handshake: nothing is left running.
func TestTransportHeldDialsEnd(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	first := make(chan struct{})
	var conns sync.WaitGroup
	conns.Add(1)
	go func() { // accepts and never answers
		defer conns.Done()
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			held = append(held, c)
			if accepted.Add(1) == 1 {
				close(first)
			}
		}
		for _, c := range held {
			c.Close()
		}
	}()
	tr := relay.NewTransport(0)

	const calls = 20
	ctx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		done.Add(1)
		go func() {
			defer done.Done()
			req := mustGet(t, "https://"+ln.Addr().String()+"/chat/completions").WithContext(ctx)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	<-first
	cancel()
	done.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("call: %v, want context.Canceled", err)
		}
	}
	// The calls are gone but their dials, detached, go on: all held
	// behind the one handshake.
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d calls made %d connections to an address whose handshake never completed, want 1", calls, n)
	}
	tr.CloseIdleConnections()
	// Everything ended but the upstream's accept loop. (A held dial may
	// connect once the handshake has failed, before its own cancel.)
	goleak.VerifyNone(t, leaks, goleak.IgnoreAnyFunction("github.com/keygate/keygate/relay_test.TestTransportHeldDialsEnd.func2"))
	ln.Close()
	conns.Wait()
}
