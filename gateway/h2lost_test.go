package gateway

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// TestH2LostConnectionNotResent: over HTTP/2 (OpenRouter's protocol) every
// call after the first goes out on a reused connection. Upstream received
// and started a POST when the connection is lost (a load balancer's
// reset): the POST is not sent again, as it may be generating and billed.
func TestH2LostConnectionNotResent(t *testing.T) {
	var served atomic.Int64
	kill := make(chan struct{}, 1)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/generate") {
			served.Add(1)
			kill <- struct{}{}
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[]}`))
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	defer up.Close()
	// A TCP proxy in front, whose connections a kill resets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", up.Listener.Addr().String())
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, b)
			mu.Unlock()
			go func() { _, _ = io.Copy(b, c) }()
			go func() { _, _ = io.Copy(c, b) }()
		}
	}()
	go func() {
		for range kill {
			mu.Lock()
			for _, c := range conns {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				_ = c.Close()
			}
			conns = nil
			mu.Unlock()
		}
	}()
	tr := relay.NewTransport(0)
	tr.TLSClientConfig = &tls.Config{RootCAs: up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"}
	defer tr.CloseIdleConnections()
	pool, err := keyring.New([]keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-" + strings.Repeat("1", 64))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := keyring.ByName(keyring.NameRandom, nil)
	base, _ := url.Parse("https://" + ln.Addr().String() + "/api/v1")
	rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}), relay.Options{Transport: tr})
	s := New(Options{Relay: rl, Strategy: st, BaseURL: base, MaxBodyBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler),
		AllowedHosts: []string{"example.com"}})
	call := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"model":"m"}`))
		s.ServeHTTP(w, r)
		return w
	}
	if w := call("/v1/chat/completions"); w.Code != 200 {
		t.Fatalf("warm-up: %d %s", w.Code, w.Body)
	}
	w := call("/v1/generate")
	t.Logf("status %d, upstream received the POST %d times", w.Code, served.Load())
	if served.Load() != 1 {
		t.Errorf("upstream received the POST %d times, want once: it was received, so it may have been processed", served.Load())
	}
}
