package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keygate/keygate/simulator"
)

// headerStream names a measured stream. The upstream records when it
// flushed each chunk of a request carrying it; the proxies pass it on like
// any client header.
const headerStream = "X-Bench-Stream"

// upstream is the simulated upstream, served in the bench process so that
// it can time-stamp each chunk it sends.
type upstream struct {
	sim  *simulator.Server
	srv  *http.Server
	base string // OPENROUTER_BASE_URL
	keys []string

	mu      sync.Mutex
	flushes map[string][]time.Time
	done    chan struct{}
	// streams numbers the streams whose flushes are recorded.
	streams atomic.Int64
	// conns counts the connections accepted; h2 and h1 the requests
	// served over HTTP/2 and HTTP/1.x (r.ProtoMajor).
	conns, h2, h1 atomic.Int64
}

// countingListener counts the connections it accepts into n.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// newStreamID names a stream so that its flushes can be taken back.
func (u *upstream) newStreamID() string { return strconv.FormatInt(u.streams.Add(1), 10) }

// benchCap is each bench key's daily credit cap and its account's balance,
// in USD: far more than any run spends, so that keygate with budgets on
// keeps a cap's figures on every answer (GET /key shows a limit) and never
// sees one run out.
const benchCap = 1_000_000

// startUpstream serves a simulator with n healthy keys on loopback, each
// the only key of an account with ample credit and a daily cap of benchCap.
func startUpstream(n int) (*upstream, error) { return startUpstreamTLS(n, nil, 0) }

// startUpstreamTLS is startUpstream over TLS with cert, HTTP/2 offered
// (ServeTLS adds h2 to the protocols), when cert is not nil. h2Streams,
// when not 0, is how many streams one HTTP/2 connection may carry (Go's
// default is 250).
func startUpstreamTLS(n int, cert *testCert, h2Streams int) (*upstream, error) {
	keys := make([]string, n)
	accounts := make([]simulator.Account, n)
	for i := range keys {
		keys[i] = benchKey("upstream", i+1)
		accounts[i] = simulator.Account{ID: "user_bench" + strconv.Itoa(i+1), Balance: benchCap, Purchased: benchCap,
			Keys: []simulator.KeySpec{{Secret: keys[i], Limit: benchCap, LimitReset: "daily"}}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	scheme := "http://"
	if cert != nil {
		scheme = "https://"
	}
	u := &upstream{
		sim:     simulator.New(simulator.Options{Accounts: accounts, Seed: 1}),
		base:    scheme + ln.Addr().String() + simulator.PathPrefix,
		keys:    keys,
		flushes: make(map[string][]time.Time),
		done:    make(chan struct{}),
	}
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second}
	if h2Streams > 0 {
		u.srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: h2Streams}
	}
	cl := countingListener{Listener: ln, n: &u.conns}
	go func() {
		defer close(u.done)
		if cert != nil {
			u.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.cert}, NextProtos: []string{"h2", "http/1.1"}}
			_ = u.srv.ServeTLS(cl, "", "")
			return
		}
		_ = u.srv.Serve(cl)
	}()
	return u, nil
}

// ServeHTTP passes requests to the simulator; for a measured stream it
// records the time each flush returned, that is when the chunk was handed
// to the kernel.
func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 {
		u.h2.Add(1)
	} else {
		u.h1.Add(1)
	}
	id := r.Header.Get(headerStream)
	if id == "" {
		u.sim.ServeHTTP(w, r)
		return
	}
	fr := &flushRecorder{ResponseWriter: w, rc: http.NewResponseController(w)}
	u.sim.ServeHTTP(fr, r)
	u.mu.Lock()
	u.flushes[id] = fr.times
	u.mu.Unlock()
}

// takeFlushes returns and forgets the flush times of stream id.
func (u *upstream) takeFlushes(id string) []time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := u.flushes[id]
	delete(u.flushes, id)
	return t
}

// close stops the server and the simulator's pending streams.
func (u *upstream) close() error {
	err := u.srv.Close()
	<-u.done
	return errors.Join(err, u.sim.Close())
}

// flushRecorder notes the time of every flush of a response.
type flushRecorder struct {
	http.ResponseWriter
	rc    *http.ResponseController
	times []time.Time
}

// FlushError flushes and records the time; http.ResponseController, which
// the simulator flushes with, prefers it to Flush.
func (f *flushRecorder) FlushError() error {
	err := f.rc.Flush()
	f.times = append(f.times, time.Now())
	return err
}

// Unwrap gives http.ResponseController the connection for everything else.
func (f *flushRecorder) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// benchKey is the bench's key number i of a set named tag: random-looking,
// since keygate refuses keys that look like placeholders (keys that differ
// only in a counter, say).
func benchKey(tag string, i int) string {
	sum := sha256.Sum256([]byte("keygate bench key " + tag + " " + strconv.Itoa(i)))
	return "sk-or-v1-" + hex.EncodeToString(sum[:])
}
