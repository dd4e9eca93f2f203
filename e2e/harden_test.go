package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hnUpstream answers every call with h, on a test server closed at the end.
func hnUpstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHardenBrowser: an open gateway refuses browser requests from other
// origins and Host names that are not this machine, before any upstream
// call; an allowed origin gets CORS answers; health stays open to any Host.
func TestHardenBrowser(t *testing.T) {
	var calls atomic.Int64
	up := hnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"hi"}}]}`)
	})
	g := hdStart(t, up, hdKeys(1), newClock(), "CORS_ORIGINS=https://app.example")
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		want               int
		wantCalls          int64
	}{
		{"other origin", "POST", "/v1/chat/completions", []string{"Origin", "https://evil.example", "Content-Type", "text/plain"}, 403, 0},
		{"cross-site fetch without Origin", "POST", "/run", []string{"Sec-Fetch-Site", "cross-site"}, 403, 0},
		{"rebound Host", "POST", "/v1/chat/completions", []string{"Host", "evil.example:4000"}, 403, 0},
		{"health on any Host", "GET", "/healthz", []string{"Host", "keygate:4000"}, 200, 0},
		{"TRACE", "TRACE", "/v1/models", nil, 405, 0},
		{"allowed origin", "POST", "/v1/chat/completions", []string{"Origin", "https://app.example"}, 200, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			req := hdRequest(t, tc.method, g.URL+tc.path, hdChat("m/a", false))
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				if tc.hdr[i] == "Host" {
					req.Host = tc.hdr[i+1]
					continue
				}
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			r := hdDo(g.Client, req)
			if r.Status != tc.want || calls.Load() != tc.wantCalls {
				t.Fatalf("%d %s with %d upstream calls; want %d with %d", r.Status, r.Body, calls.Load(), tc.want, tc.wantCalls)
			}
		})
	}
	req := hdRequest(t, http.MethodOptions, g.URL+"/v1/chat/completions", "")
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
	resp, err := g.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// X-Keygate-Key is on every /v1 answer, a preflight's included.
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "x-stainless-os") || resp.Header.Get("X-Keygate-Key") != "none" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestHardenNonReaderIsCut: a client that stops reading a large answer is
// cut after WRITE_TIMEOUT: its upstream call is cancelled and its one
// MAX_IN_FLIGHT slot serves the next client. A slow but steady reader of
// the same answer gets all of it.
func TestHardenNonReaderIsCut(t *testing.T) {
	const size = 8 << 20
	cancelled := make(chan struct{}, 4)
	up := hnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "small") {
			_, _ = io.WriteString(w, `{"ok":true}`)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := make([]byte, 32<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				break
			}
		}
		<-r.Context().Done()
		cancelled <- struct{}{}
	})
	g := hdStart(t, up, hdKeys(1), newClock(), "MAX_IN_FLIGHT=1", "WRITE_TIMEOUT=2s")

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/big HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing more. Its call is cancelled upstream.
	ptWait(t, cancelled, "the non-reader's upstream call cancelled")
	ptEventually(t, "the slot freed", func() bool {
		return hdDo(g.Client, hdRequest(t, http.MethodGet, g.URL+"/v1/small", "")).Status == http.StatusOK
	})

	// A steady reader: 64 KiB every 20ms, far slower than the answer
	// could go, never 300ms without taking bytes.
	resp, err := g.Client.Get(g.URL + "/v1/big-steady")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	buf := make([]byte, 64<<10)
	got := 0
	for got < size {
		n, err := io.ReadFull(br, buf[:min(len(buf), size-got)])
		got += n
		if err != nil {
			t.Fatalf("steady reader cut after %d of %d bytes: %v\n%s", got, size, err, g.Logs.String())
		}
		time.Sleep(20 * time.Millisecond) // the reader's pace, not a wait for a condition
	}
}

// TestHardenKeysNeverLeave: an upstream that puts the key in a 2xx body
// (plain, JSON-escaped, cut across writes), a header value, a header name
// and a trailer gets every one masked.
func TestHardenKeysNeverLeave(t *testing.T) {
	keys := hdKeys(1)
	key := keys[0]
	up := hnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Echo")
		w.Header().Set("Location", "https://x.example/?k="+key)
		w.Header().Set("X-"+key, "1")
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		_, _ = io.WriteString(w, "data: "+key[:20])
		f.Flush()
		_, _ = io.WriteString(w, key[20:]+"\n\ndata: "+strings.ReplaceAll(key, "-", `\u002d`)+"\n\n")
		w.Header().Set("X-Echo", "Bearer "+key)
	})
	g := hdStart(t, up, keys, newClock())
	resp, err := g.Client.Get(g.URL + "/v1/echo")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	all.Write(body)
	_ = resp.Header.Write(&all)
	_ = resp.Trailer.Write(&all)
	text := strings.ReplaceAll(all.String(), `\u002d`, "-")
	if w, ok := hdLeak(text, keys); ok {
		t.Fatalf("key piece %q got out:\n%s", w, text)
	}
	if !strings.Contains(string(body), "sk-or-v1-") || resp.Trailer.Get("X-Echo") == "" {
		t.Fatalf("answer lost its masked parts: %s %v", body, resp.Trailer)
	}
}

// TestHardenRunCallsCountInFlight: each of a /run's model calls, plain or
// streamed, takes a MAX_IN_FLIGHT slot; models past the free slots are
// answered as overloaded, without an upstream call.
func TestHardenRunCallsCountInFlight(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "streamed"}[stream], func(t *testing.T) {
			var calls atomic.Int64
			release := make(chan struct{})
			up := hnUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				<-release
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"ok"}}]}`)
			})
			g := hdStart(t, up, hdKeys(8), newClock(), "MAX_IN_FLIGHT=5")
			done := make(chan hdResult, 1)
			go func() {
				done <- hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run",
					`{"prompt":"hi","stream":`+strconv.FormatBool(stream)+`,"models":["a/1","a/2","a/3","a/4","a/5","a/6","a/7","a/8"]}`))
			}()
			ptEventually(t, "4 model calls upstream", func() bool { return calls.Load() == 4 })
			close(release)
			r := ptWait(t, done, "the /run answer")
			doc := string(r.Body)
			if stream {
				// The last event, done, holds the whole document.
				doc = doc[strings.LastIndex(doc, "data: "):]
			}
			if r.Status != http.StatusOK || strings.Count(doc, `"status":"success"`) != 4 || strings.Count(doc, "MAX_IN_FLIGHT") != 4 || calls.Load() != 4 {
				t.Fatalf("%d %s with %d upstream calls; want 4 successes and 4 overloaded", r.Status, r.Body, calls.Load())
			}
		})
	}
}
