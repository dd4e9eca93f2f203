package relay_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keygate/keygate/relay"
)

// TestTransportSpeaksHTTP2AndSharesConnections: against a TLS upstream
// that offers h2, as OpenRouter does, keygate's one transport (with its own
// dialer) negotiates HTTP/2 and, once a connection is up, carries concurrent
// calls, streams included, over it. (Calls that all start before any
// connection exists dial one each, which Go's transport then keeps pooled.)
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
