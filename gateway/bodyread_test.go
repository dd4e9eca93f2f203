package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestReadBodyCutsStall sends headers and part of a body that never ends,
// over HTTP/1.1 and over HTTP/2 with TLS: READ_BODY_TIMEOUT's read
// deadline must end the server's read, which gets errBodyTimeout, and the
// client its 408.
func TestReadBodyCutsStall(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			limits := bodyLimits{max: 1 << 20, timeout: 20 * time.Millisecond}
			got := make(chan error, 1)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := readBody(w, r, limits)
				got <- err
				w.WriteHeader(http.StatusRequestTimeout)
			}))
			srv.EnableHTTP2 = h2
			if h2 {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() { _, _ = pw.Write([]byte(`{"model":`)) }()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			// A client stuck writing the body would not see ctx end.
			defer context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = 1000
			resp, err := srv.Client().Do(req)
			if err != nil {
				// The handler may still be reading: close its connection,
				// or srv.Close waits for it.
				srv.CloseClientConnections()
				t.Fatalf("the stalled request got no answer: %v", err)
			}
			resp.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want || resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("%s %d, want HTTP/%d 408", resp.Proto, resp.StatusCode, want)
			}
			select {
			case err := <-got:
				if !errors.Is(err, errBodyTimeout) {
					t.Fatalf("readBody = %v, want %v", err, errBodyTimeout)
				}
			case <-ctx.Done():
				srv.CloseClientConnections()
				t.Fatal("the stalled body was never cut")
			}
		})
	}
}
