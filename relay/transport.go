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
func NewTransport(maxIdlePerHost int) *http.Transport {
	if maxIdlePerHost <= 0 {
		maxIdlePerHost = 512
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
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
}
