package relay

import (
	"net"
	"net/http"
	"time"
)

// NewTransport returns the transport shared by every upstream call: keep-alive
// connections sized for a busy gateway talking to few hosts, HTTP/2 to TLS
// upstreams, and no transparent compression (bodies pass through as upstream
// encoded them). Every connection keeps its read and write buffers, idle or
// streaming, so they are 2 KiB rather than Go's 4 KiB: a request's headers
// and a short body fit in one write, a stream's chunk in one read, and
// reads and writes larger than a buffer bypass it anyway. maxIdlePerHost 0
// means 512.
//
// TLS connections come from a tlsDialer, so that a burst of calls on a cold
// pool to an HTTP/2 upstream (OpenRouter is one) opens the connections its
// streams need, not one per call: Go's transport dials for every call that
// finds no free connection and only then closes the surplus. The
// transport's TLSClientConfig may still be set after NewTransport; the
// dialer reads it at each dial.
func NewTransport(maxIdlePerHost int) *http.Transport {
	if maxIdlePerHost <= 0 {
		maxIdlePerHost = 512
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxIdlePerHost * 2,
		MaxIdleConnsPerHost:   maxIdlePerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ReadBufferSize:        2 << 10,
		WriteBufferSize:       2 << 10,
	}
	tls := newTLSDialer(tr, d)
	tr.DialTLSContext = tls.DialTLSContext
	// The transport sets up its bundled HTTP/2 on first use, which
	// CloseIdleConnections is (with nothing idle yet); the dialer then
	// wraps its upgrade, so that a connection shared by several dials is
	// upgraded once.
	tr.CloseIdleConnections()
	if up := tr.TLSNextProto["h2"]; up != nil {
		tls.up = up
		tr.TLSNextProto["h2"] = tls.upgrade
	}
	return tr
}
