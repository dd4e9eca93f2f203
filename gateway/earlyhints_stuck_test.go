package gateway

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// stuckHints is a client that takes no bytes once upstream's 103 is to be
// written to it: its WriteHeader(103) blocks until release is closed.
type stuckHints struct {
	*httptest.ResponseRecorder
	release chan struct{}
	stuck   chan struct{}
}

func (w *stuckHints) WriteHeader(code int) {
	if code == http.StatusEarlyHints {
		close(w.stuck)
		<-w.release
		return
	}
	w.ResponseRecorder.WriteHeader(code)
}

// TestEarlyHintsToStuckClientStallsNoOther: upstream's 103 reaches the
// client through the transport's Got1xxResponse hook, which HTTP/2 runs on
// the upstream connection's one read loop. Written there, a client that
// takes no bytes of it held up every other call multiplexed on that
// connection (for up to WRITE_TIMEOUT); another call must finish while
// that client is still stuck.
func TestEarlyHintsToStuckClientStallsNoOther(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/hints") {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[]}`))
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	defer up.Close()
	tr := relay.NewTransport(0)
	tr.TLSClientConfig = &tls.Config{RootCAs: up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	defer tr.CloseIdleConnections()

	pool, err := keyring.New([]keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-" + strings.Repeat("1", 64))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := keyring.ByName(keyring.NameRandom, nil)
	base, _ := url.Parse(up.URL + "/api/v1")
	rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}), relay.Options{Transport: tr})
	s := New(Options{Relay: rl, Strategy: st, BaseURL: base, MaxBodyBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler),
		AllowedHosts: []string{"example.com"}})
	call := func(w http.ResponseWriter, path string) {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"model":"m"}`))
		s.ServeHTTP(w, r)
	}
	// Warm: one upstream HTTP/2 connection, which the calls below share.
	warm := httptest.NewRecorder()
	call(warm, "/v1/chat/completions")
	if warm.Code != http.StatusOK {
		t.Fatalf("warm-up: %d %s", warm.Code, warm.Body)
	}
	stuck := &stuckHints{ResponseRecorder: httptest.NewRecorder(), release: make(chan struct{}), stuck: make(chan struct{})}
	done := make(chan struct{})
	go func() { defer close(done); call(stuck, "/v1/hints") }()
	<-stuck.stuck
	other := httptest.NewRecorder()
	otherDone := make(chan struct{})
	go func() { defer close(otherDone); call(other, "/v1/chat/completions") }()
	finished := false
	select {
	case <-otherDone:
		finished = true
	case <-time.After(10 * time.Second): // far beyond a call's milliseconds
	}
	close(stuck.release)
	<-done
	<-otherDone
	if !finished {
		t.Fatal("another client's call did not finish while one client took no bytes of a 103: the 1xx is written on the upstream connection's read loop")
	}
	if other.Code != http.StatusOK {
		t.Fatalf("other call: %d", other.Code)
	}
}
