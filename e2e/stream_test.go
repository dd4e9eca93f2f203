package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// ptFlushed writes s and flushes it to the gateway.
func ptFlushed(w http.ResponseWriter, s string) {
	_, _ = io.WriteString(w, s)
	w.(http.Flusher).Flush()
}

// TestStreamFlushedWhileUpstreamBlocks checks that a response of unknown
// length reaches the client as it arrives: upstream sends its first part and
// then blocks until the client has it, so the test passes only if the
// gateway flushed it.
func TestStreamFlushedWhileUpstreamBlocks(t *testing.T) {
	for _, tc := range []struct{ name, contentType, first, rest string }{
		{"sse", "text/event-stream", "data: {\"n\":1}\n\n", "data: {\"n\":2}\n\ndata: [DONE]\n\n"},
		{"chunked octets", "application/octet-stream", "\x00\x01first part\n\n", "\xffthe rest\n"},
		{"chunked ndjson", "application/x-ndjson", "{\"n\":1}\n\n", "{\"n\":2}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, _ ptSeen) {
				w.Header().Set("Content-Type", tc.contentType)
				w.Header().Set("X-Upstream", "stream")
				ptFlushed(w, tc.first)
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				ptFlushed(w, tc.rest)
			})
			gw := startGateway(t, up.URL, testKeys(2))
			resp := ptStart(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"stream":true}`)))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType ||
				resp.Header.Get("X-Upstream") != "stream" || resp.Header.Get("X-Keygate-Key") == "" || resp.ContentLength != -1 {
				t.Fatalf("got %d %v, want 200 with upstream's headers, unknown length", resp.StatusCode, resp.Header)
			}
			rd := bufio.NewReader(resp.Body)
			if ev := ptNextEvent(t, rd, "the first part while upstream blocks (not flushed?)"); ev != tc.first {
				t.Fatalf("first part %q, want %q", ev, tc.first)
			}
			close(release)
			rest, err := io.ReadAll(rd)
			if err != nil || string(rest) != tc.rest {
				t.Fatalf("rest %q (%v), want %q", rest, err, tc.rest)
			}
			resp.Body.Close()
			ptIdle(t, gw)
		})
	}
}

// TestStreamEventsInOrder checks that spaced-out events each arrive, in
// order, before upstream sends the next: upstream waits for the client's
// acknowledgement of each.
func TestStreamEventsInOrder(t *testing.T) {
	const n = 6
	ack := make(chan int)
	up, _ := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, _ ptSeen) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range n {
			ptFlushed(w, fmt.Sprintf("id: %d\nevent: chunk\ndata: {\"i\":%d}\n\n", i, i))
			select {
			case got := <-ack:
				if got != i {
					t.Errorf("client acknowledged %d after event %d", got, i)
				}
			case <-r.Context().Done():
				return
			}
		}
		ptFlushed(w, "data: [DONE]\n\n")
	})
	gw := startGateway(t, up.URL, testKeys(1))
	resp := ptStart(t, newRequest(t, http.MethodGet, gw.URL+"/v1/events", nil))
	rd := bufio.NewReader(resp.Body)
	for i := range n {
		ev := ptNextEvent(t, rd, fmt.Sprintf("event %d", i))
		if want := fmt.Sprintf("id: %d\nevent: chunk\ndata: {\"i\":%d}\n\n", i, i); ev != want {
			t.Fatalf("event %d: %q, want %q", i, ev, want)
		}
		ptWait(t, sendOn(ack, i), "upstream to take the acknowledgement")
	}
	if rest, err := io.ReadAll(rd); err != nil || string(rest) != "data: [DONE]\n\n" {
		t.Fatalf("end of stream %q (%v)", rest, err)
	}
}

// ptStart sends req, bound to the test's context, and returns the response
// once its headers arrive, failing the test when they do not come. The body
// is closed at the end of the test.
func ptStart(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req.WithContext(t.Context()))
		done <- result{resp, err}
	}()
	r := ptWait(t, done, "response headers of "+req.URL.Path)
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.resp.Body.Close() })
	return r.resp
}

// ptNextEvent reads the next event (or part up to a blank line), failing
// the test when it does not come.
func ptNextEvent(t testing.TB, rd *bufio.Reader, what string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() { ev, _ := ptReadEvent(rd); got <- ev }()
	return ptWait(t, got, what)
}

// sendOn sends v on ch in the background and reports when it was taken.
func sendOn[T any](ch chan<- T, v T) <-chan struct{} {
	done := make(chan struct{})
	go func() { ch <- v; close(done) }()
	return done
}

// TestClientGoneCancelsUpstream checks that a client that goes away cancels
// the upstream call, before the answer and mid-stream, and that the key is
// neither rested nor left in flight.
func TestClientGoneCancelsUpstream(t *testing.T) {
	for _, midStream := range []bool{false, true} {
		t.Run(fmt.Sprintf("midStream=%v", midStream), func(t *testing.T) {
			entered, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
			up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, _ ptSeen) {
				if midStream {
					w.Header().Set("Content-Type", "text/event-stream")
					ptFlushed(w, "data: 1\n\n")
				}
				entered <- struct{}{}
				<-r.Context().Done()
				cancelled <- struct{}{}
			})
			gw := startGateway(t, up.URL, testKeys(2))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{"stream":true}`)).WithContext(ctx)
			errc := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				errc <- err
			}()
			ptWait(t, entered, "the upstream call")
			cancel()
			if err := ptWait(t, errc, "the client to give up"); err == nil {
				t.Error("client request ended without error after cancel")
			}
			ptWait(t, cancelled, "upstream's request context to be cancelled")
			ptIdle(t, gw)
			for id, k := range ptKeys(t, gw) {
				if k.State != "closed" || k.CooldownUntil != nil {
					t.Errorf("key %d after a client left: %s until %v, want closed", id, k.State, k.CooldownUntil)
				}
			}
			if n := seen.len(); n != 1 {
				t.Errorf("upstream got %d requests, want 1", n)
			}
		})
	}
}

// TestUpstreamTimeout checks UPSTREAM_TIMEOUT: an upstream that never
// answers gets 504, a stream that goes silent is cut, and neither rests the
// key.
func TestUpstreamTimeout(t *testing.T) {
	cancelled := make(chan struct{}, 2)
	up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, _ ptSeen) {
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			ptFlushed(w, "data: 1\n\n")
		}
		<-r.Context().Done()
		cancelled <- struct{}{}
	})
	gw := startGateway(t, up.URL, testKeys(2), "UPSTREAM_TIMEOUT=200ms")

	t.Run("no answer", func(t *testing.T) {
		resp, body := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{}`)))
		ptAPIError(t, resp, body, http.StatusGatewayTimeout, "upstream_timeout")
		if id := resp.Header.Get("X-Keygate-Key"); id != "1" && id != "2" {
			t.Errorf("X-Keygate-Key %q, want the key tried", id)
		}
		ptWait(t, cancelled, "upstream's request context to be cancelled")
	})
	t.Run("silent stream", func(t *testing.T) {
		resp := ptStart(t, newRequest(t, http.MethodGet, gw.URL+"/v1/stream", nil))
		rd := bufio.NewReader(resp.Body)
		if ev := ptNextEvent(t, rd, "the first event"); resp.StatusCode != 200 || ev != "data: 1\n\n" {
			t.Fatalf("got %d %q, want 200 and the first event", resp.StatusCode, ev)
		}
		done := make(chan string, 1)
		go func() { rest, err := io.ReadAll(rd); done <- fmt.Sprintf("%q %v", rest, err) }()
		if got := ptWait(t, done, "the silent stream to be cut"); !strings.HasPrefix(got, `"" `) {
			t.Errorf("after the silence the client read %s, want nothing more", got)
		}
		ptWait(t, cancelled, "upstream's request context to be cancelled")
	})
	ptIdle(t, gw)
	for id, k := range ptKeys(t, gw) {
		if k.State != "closed" || k.CooldownUntil != nil {
			t.Errorf("key %d after timeouts: %s until %v, want closed", id, k.State, k.CooldownUntil)
		}
	}
	if n := seen.len(); n != 2 {
		t.Errorf("upstream got %d requests, want 2 (timeouts are not retried)", n)
	}
}

// TestUpstreamDown checks that an upstream that refuses connections gets
// 502, on one key, which stays in rotation.
func TestUpstreamDown(t *testing.T) {
	up, _ := ptUpstream(t, ptOK)
	up.Close()
	gw := startGateway(t, up.URL, testKeys(3))
	resp, body := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{}`)))
	ptAPIError(t, resp, body, http.StatusBadGateway, "upstream_error")
	if id := resp.Header.Get("X-Keygate-Key"); id == "" || id == "none" {
		t.Errorf("X-Keygate-Key %q, want the key tried", id)
	}
	var tried uint64
	for id, k := range ptKeys(t, gw) {
		tried += k.Requests
		if k.State != "closed" || k.CooldownUntil != nil || k.InFlight != 0 {
			t.Errorf("key %d after a network error: %s until %v, %d in flight; want closed, idle", id, k.State, k.CooldownUntil, k.InFlight)
		}
	}
	if tried != 1 {
		t.Errorf("%d attempts, want 1 (network errors are not retried)", tried)
	}
}
