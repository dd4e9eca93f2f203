package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a raw TCP upstream: each request read off a connection is
// handed to script, which writes whatever bytes it likes (or none).
type rawUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	keys  []string
	conns atomic.Int64
	reqs  atomic.Int64
	wg    sync.WaitGroup
	stop  chan struct{}
}

// rawScript answers request n (0-based over the server's life) of the
// connection c. It returns false to close the connection.
type rawScript func(c net.Conn, br *bufio.Reader, req *http.Request, body []byte, n int) bool

func rawListen(t testing.TB, script rawScript) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawUpstream{ln: ln, stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if script == nil {
					rawReset(c)
					return
				}
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(req.Body)
					s.mu.Lock()
					s.keys = append(s.keys, strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer "))
					s.mu.Unlock()
					n := int(s.reqs.Add(1) - 1)
					if !script(c, br, req, body, n) {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(s.stop)
		ln.Close()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	return s
}

func (s *rawUpstream) URL() string { return "http://" + s.ln.Addr().String() }

func (s *rawUpstream) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.keys...)
}

// rawJSON is a whole chat completion.
const rawJSON = `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

// rawEvent is the i-th chunk of a chat stream.
func rawEvent(i int) string {
	return fmt.Sprintf("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d \"}}]}\n\n", i)
}

// rawReset closes c with an RST (linger 0).
func rawReset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
