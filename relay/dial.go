package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// tlsDialer is the transport's DialTLSContext: TCP, then the TLS handshake
// the transport would make itself, with one handshake at a time to an
// address that speaks HTTP/2 or has not said yet.
//
// Why: the transport dials for every call that finds no free connection,
// so a burst on a cold pool starts a handshake per call (and closes the
// surplus after), although HTTP/2 carries them on a connection or a few.
// A dial that arrives while another to the same address is in flight
// waits for it. When that one negotiated h2, every dial of its round (the
// waiters, and those that arrive until the connection is in the
// transport's HTTP/2 pool) returns the same connection, which the
// transport takes for the surplus dial it is: upgrade, the transport's
// TLSNextProto["h2"] wrapped, sets the connection up once and gives each
// of them that one HTTP/2 client. So every call waiting gets the
// connection, whether the transport's hand-out or its own dial reaches it
// first, and none sees an error made up by the gate (the transport would
// pass a dial's error to a call still waiting for it). A call the
// connection cannot take, its streams full, asks again and its dial starts
// the next round. When the address answers HTTP/1.1, the waiters dial at
// once, side by side, and later dials there are not held (remembered per
// address until a handshake there negotiates h2), since HTTP/1.1 needs a
// connection per call; when the handshake fails, its call gets the error
// and the waiters dial themselves. A MaxConnsPerHost would serialise h2
// dials too, but cap HTTP/1.1 as well.
//
// The transport dials only when it has no usable connection, so none of
// this runs for a call that finds one. An http:// proxy is dialled with
// DialContext and not held; an https:// one is dialled here, and one that
// negotiated h2 would see its connection shared, which no proxy can use
// anyway (the transport speaks HTTP/1.1 CONNECT on it). Transport.Clone
// and Transport.NewClientConn bypass the wrapped upgrade, so neither is
// for this transport.
type tlsDialer struct {
	tr  *http.Transport // TLSClientConfig and TLSHandshakeTimeout, read at each dial
	tcp *net.Dialer
	// up is the transport's own HTTP/2 upgrade, nil without HTTP/2.
	up func(authority string, c *tls.Conn) http.RoundTripper

	mu sync.Mutex
	// rounds is the held handshake in flight per address, until its
	// connection is upgraded when it negotiated h2.
	rounds map[string]*round
	// h1 are the addresses whose last handshake negotiated no h2.
	h1 map[string]bool
	// shared are h2 connections handed to more than one dial, until every
	// one of those dials has been through upgrade.
	shared map[*tls.Conn]*share
}

// round is one held handshake and the dials waiting for it.
type round struct {
	done    chan struct{} // closed when the handshake ended
	waiters int           // dials waiting; counted into share.refs at the end
	// set before done is closed:
	conn *tls.Conn // the h2 connection the round's dials share; nil otherwise
}

// share is an h2 connection given to refs dials, upgraded once for all.
type share struct {
	addr  string
	round *round // the round that made it, open until the upgrade
	refs  int    // dials given it that have not been through upgrade
	// started: a dial's upgrade is under way; upgraded: rt is set.
	started, upgraded bool
	done              chan struct{} // closed once rt is set
	rt                http.RoundTripper
}

func newTLSDialer(tr *http.Transport, tcp *net.Dialer) *tlsDialer {
	return &tlsDialer{tr: tr, tcp: tcp, rounds: map[string]*round{}, h1: map[string]bool{},
		shared: map[*tls.Conn]*share{}}
}

// DialTLSContext dials addr and makes the TLS handshake, or waits for the
// handshake in flight to addr and shares its h2 connection.
func (d *tlsDialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	if d.up == nil || d.h1[addr] {
		d.mu.Unlock()
		return d.dialFree(ctx, network, addr)
	}
	if r := d.rounds[addr]; r != nil {
		if r.conn != nil {
			// Handshaken, not yet upgraded: the call waiting for this
			// dial will be handed that connection too.
			d.shared[r.conn].refs++
			d.mu.Unlock()
			return r.conn, nil
		}
		r.waiters++
		d.mu.Unlock()
		return d.wait(ctx, network, addr, r)
	}
	r := &round{done: make(chan struct{})}
	d.rounds[addr] = r
	d.mu.Unlock()

	c, err := d.handshake(ctx, network, addr)
	d.mu.Lock()
	if err == nil && d.learn(addr, c) {
		// The round stays open until upgrade has put the connection in
		// the transport's HTTP/2 pool.
		r.conn = c
		d.shared[c] = &share{addr: addr, round: r, refs: r.waiters + 1, done: make(chan struct{})}
	} else {
		// Failed or HTTP/1.1: the waiters dial themselves.
		delete(d.rounds, addr)
	}
	close(r.done)
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// wait waits for round r to addr to end, then takes its h2 connection or,
// when there is none, dials.
func (d *tlsDialer) wait(ctx context.Context, network, addr string, r *round) (net.Conn, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		// The transport cancels a dial only once its call is served
		// another way (CloseIdleConnections). Whether r ended meanwhile
		// is read under mu, where it is ended: if it has, this dial was
		// counted into the share and takes its part below.
		d.mu.Lock()
		select {
		case <-r.done:
		default:
			r.waiters--
			d.mu.Unlock()
			return nil, ctx.Err()
		}
		d.mu.Unlock()
	}
	if r.conn != nil {
		return r.conn, nil
	}
	return d.dialFree(ctx, network, addr)
}

// dialFree dials without waiting for anyone, and learns the protocol.
func (d *tlsDialer) dialFree(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.handshake(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.learn(addr, c)
	d.mu.Unlock()
	return c, nil
}

// learn records whether c to addr negotiated h2, as the transport reads it
// (the ALPN protocol, which it has a TLSNextProto for), and reports it.
// d.mu must be held.
func (d *tlsDialer) learn(addr string, c *tls.Conn) bool {
	s := c.ConnectionState()
	if d.up != nil && s.NegotiatedProtocol == "h2" {
		delete(d.h1, addr)
		return true
	}
	d.h1[addr] = true
	return false
}

// upgrade is the transport's TLSNextProto["h2"]: the transport's own
// upgrade, made once for a shared connection, whose every dial then gets
// the same HTTP/2 client (or the same error). Once it is made, the round
// that made the connection closes: a dial after that is a call the pool
// could not take.
func (d *tlsDialer) upgrade(authority string, c *tls.Conn) http.RoundTripper {
	d.mu.Lock()
	s := d.shared[c]
	if s == nil {
		d.mu.Unlock()
		return d.up(authority, c)
	}
	s.refs--
	if s.refs == 0 && s.upgraded {
		delete(d.shared, c)
	}
	first := !s.started
	s.started = true
	d.mu.Unlock()
	if !first {
		<-s.done
		return s.rt
	}
	rt := d.up(authority, c)
	d.mu.Lock()
	s.rt, s.upgraded = rt, true
	if d.rounds[s.addr] == s.round {
		delete(d.rounds, s.addr)
	}
	if s.refs == 0 {
		delete(d.shared, c)
	}
	d.mu.Unlock()
	close(s.done)
	return rt
}

// handshake dials addr over TCP and makes the TLS handshake as the
// transport does: its TLSClientConfig (system roots by default, so
// SSL_CERT_FILE is honoured), the server name from addr, h2 and http/1.1
// offered unless the config names protocols, within TLSHandshakeTimeout.
func (d *tlsDialer) handshake(ctx context.Context, network, addr string) (*tls.Conn, error) {
	if err := ctx.Err(); err != nil {
		// A held dial whose call was served (the transport cancelled
		// it): on loopback a connect would still go through.
		return nil, err
	}
	raw, err := d.tcp.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.tr.TLSClientConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			raw.Close()
			return nil, err
		}
		cfg.ServerName = host
	}
	if len(cfg.NextProtos) == 0 && d.up != nil {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	c := tls.Client(raw, cfg)
	hctx := ctx
	if t := d.tr.TLSHandshakeTimeout; t > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeoutCause(ctx, t, errHandshakeTimeout)
		defer cancel()
	}
	if err := c.HandshakeContext(hctx); err != nil {
		raw.Close()
		if context.Cause(hctx) == errHandshakeTimeout && ctx.Err() == nil {
			err = errHandshakeTimeout
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return c, nil
}

// errHandshakeTimeout is a handshake cut off at TLSHandshakeTimeout: a
// net.Error that timed out, as the transport's own is.
var errHandshakeTimeout error = handshakeTimeout{}

type handshakeTimeout struct{}

func (handshakeTimeout) Error() string   { return "TLS handshake timeout" }
func (handshakeTimeout) Timeout() bool   { return true }
func (handshakeTimeout) Temporary() bool { return true }
