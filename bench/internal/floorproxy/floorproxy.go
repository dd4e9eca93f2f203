// Package floorproxy is the yardstick of keygate's benchmark: the least a
// key-injecting proxy can do. It is a bare httputil.ReverseProxy that maps
// /v1/<rest> onto the upstream base, as keygate does, and sets one key, over
// a tuned, shared http.Transport; no key pool, retries, metrics or logs.
package floorproxy

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// New returns the bare proxy in front of base, sending key. A nil rt uses
// NewTransport. Like any ReverseProxy without a BufferPool it allocates a
// 32 KiB copy buffer per request; WithPool gives it one.
func New(base *url.URL, key string, rt http.RoundTripper) *httputil.ReverseProxy {
	if rt == nil {
		rt = NewTransport()
	}
	bearer := []string{"Bearer " + key}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = base.Scheme
			pr.Out.URL.Host = base.Host
			pr.Out.URL.Path = base.Path + strings.TrimPrefix(pr.In.URL.Path, "/v1")
			pr.Out.URL.RawPath = ""
			pr.Out.Host = ""
			pr.Out.Header["Authorization"] = bearer
		},
		Transport: rt,
	}
}

// FullDuplex lets h read the request body after it started the answer,
// which a streaming proxy does: the transport reads the body once more to
// see its end while the upstream's first chunk may already be on its way
// back. Without it, an HTTP/1 server drains and closes the request body as
// the answer's headers go out; that late read then fails and the transport
// drops the upstream connection, cutting the stream (golang/go#40747; about
// one stream in 150 here). keygate reads the body before it calls upstream,
// so it never meets this.
func FullDuplex(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		h.ServeHTTP(w, r)
	})
}

// WithPool gives p a pool of 32 KiB copy buffers: the floor plus the one
// allocation saving every serious proxy makes, a stricter yardstick.
func WithPool(p *httputil.ReverseProxy) *httputil.ReverseProxy {
	p.BufferPool = &bufferPool{}
	return p
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// NewTransport is the floor's tuned transport: keep-alive connections
// sized for the benchmark's load, HTTP/2 to TLS upstreams, no compression.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}
