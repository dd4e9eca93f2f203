// Package conncount counts the connections a server has open, from its
// ConnState hook: net/http keeps its own count unexported.
package conncount

import (
	"net"
	"net/http"
	"sync/atomic"
)

// Counter counts open connections; its zero value is ready.
type Counter struct{ n atomic.Int64 }

// Track is an http.Server's ConnState hook: a connection counts from
// StateNew until it is closed or hijacked (then it is not the server's).
func (c *Counter) Track(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		c.n.Add(1)
	case http.StateHijacked, http.StateClosed:
		c.n.Add(-1)
	}
}

// Open is the number of connections open now.
func (c *Counter) Open() int64 { return c.n.Load() }
