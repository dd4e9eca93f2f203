package floorproxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestFullDuplexKeepsStreamWhole forces the ordering behind golang/go#40747
// instead of waiting for it to happen by chance: the transport's last read
// of the request body (the one that checks for its end) is held until the
// first streamed chunk has been flushed to the client. Without FullDuplex
// the server has closed the body by then, the read fails and the transport
// drops the upstream connection; the client's stream ends early. With it
// the stream arrives whole.
func TestFullDuplexKeepsStreamWhole(t *testing.T) {
	for _, tt := range []struct {
		name   string
		duplex bool
		whole  bool
	}{
		{"bare ReverseProxy", false, false},
		{"FullDuplex", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := streamThroughFloor(t, tt.duplex)
			want := "data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"
			if whole := got == want; whole != tt.whole {
				t.Fatalf("client read %q; whole stream %v, want %v", got, whole, tt.whole)
			}
		})
	}
}

// streamThroughFloor sends one streamed chat request through the floor and
// returns what the client read before the stream ended.
func streamThroughFloor(t *testing.T, duplex bool) string {
	t.Helper()
	var (
		once    sync.Once
		settled = make(chan struct{}) // the body's last read is over, one way or the other
	)
	settle := func() { once.Do(func() { close(settled) }) }

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		// The rest only once the floor's transport has either finished
		// the request or dropped the connection, so that nothing races.
		select {
		case <-settled:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: 2\n\ndata: [DONE]\n\n")
	}))
	defer up.Close()
	base, err := url.Parse(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{}
	rt := NewTransport()
	rt.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &closeNotingConn{Conn: c, closed: settle}, nil
	}
	defer rt.CloseIdleConnections()

	var h http.Handler = New(base, "sk-or-v1-floor-test-key-0123456789", rt)
	h = holdLastRead(h, settle)
	if duplex {
		h = FullDuplex(h)
	}
	floor := httptest.NewServer(h)
	defer floor.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, floor.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := floor.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var got bytes.Buffer
	_, _ = io.Copy(&got, resp.Body) // an early end is what is being looked for
	return got.String()
}

// holdLastRead wraps the request body so that a read after the body's last
// byte waits until the first flush of the answer, and calls settle when that
// read finds the body's end (ReverseProxy never passes on the transport's
// Close, so the end is the only sign the transport finished cleanly).
func holdLastRead(h http.Handler, settle func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := &flushSignal{ResponseWriter: w, flushed: make(chan struct{})}
		r.Body = &heldBody{ReadCloser: r.Body, left: r.ContentLength, flushed: fw.flushed, settle: settle}
		h.ServeHTTP(fw, r)
	})
}

type heldBody struct {
	io.ReadCloser
	left    int64
	flushed <-chan struct{}
	settle  func()
}

func (b *heldBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		select {
		case <-b.flushed:
		case <-time.After(5 * time.Second): // no flush came: do not hang the test
		}
	}
	held := b.left == 0
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if held && err == io.EOF {
		b.settle()
	}
	return n, err
}

// flushSignal closes flushed after the first flush reached the server.
type flushSignal struct {
	http.ResponseWriter
	flushed chan struct{}
	once    sync.Once
}

func (f *flushSignal) FlushError() error {
	err := http.NewResponseController(f.ResponseWriter).Flush()
	f.once.Do(func() { close(f.flushed) })
	return err
}

func (f *flushSignal) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// closeNotingConn calls closed once the connection is closed: after, not
// before, or the upstream's rest of the stream could reach the transport's
// read loop in between and make the bare proxy's stream whole by chance.
type closeNotingConn struct {
	net.Conn
	closed func()
}

func (c *closeNotingConn) Close() error {
	err := c.Conn.Close()
	c.closed()
	return err
}
