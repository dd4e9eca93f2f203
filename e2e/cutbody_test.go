package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestBodyBrokenBeforeAnyByte: a non-streamed answer whose body breaks
// (reset, short of its Content-Length, a bad chunk, silence past
// UPSTREAM_TIMEOUT) while keygate reads it ahead of the client, before a
// byte of it went out, is a network error or timeout of the call (CONTRACT
// "5xx, timeout, network error ... passthrough: returned as is"; an
// upstream that does not answer in time gets 504, a network error 502): the
// client must get the JSON error shape with X-Keygate-Key, not a dropped
// connection or a 200 cut short, and the metrics must not count a 200.
func TestBodyBrokenBeforeAnyByte(t *testing.T) {
	cases := []struct {
		name   string
		script rawScript
		code   int
		typ    string
	}{
		{"reset mid JSON", func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ []byte, _ int) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(rawJSON), rawJSON[:60])
			time.Sleep(20 * time.Millisecond)
			rawReset(c)
			return false
		}, http.StatusBadGateway, "upstream_error"},
		{"Content-Length longer than the body", func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ []byte, _ int) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(rawJSON)+50, rawJSON)
			return false
		}, http.StatusBadGateway, "upstream_error"},
		{"bad chunk", func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ []byte, _ int) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
			return false
		}, http.StatusBadGateway, "upstream_error"},
		{"headers then silence", func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ []byte, _ int) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(rawJSON))
			time.Sleep(time.Second)
			return false
		}, http.StatusGatewayTimeout, "upstream_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := rawListen(t, tc.script)
			gw := startGateway(t, up.URL(), testKeys(2), "UPSTREAM_TIMEOUT=300ms")
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(hdChat("a/b", false)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("client got no answer at all: %v (want %d %s)", err, tc.code, tc.typ)
			}
			body, rerr := readAllErr(resp)
			if rerr != nil {
				t.Fatalf("client got %d and a body cut short (%q, %v); want %d %s", resp.StatusCode, body, rerr, tc.code, tc.typ)
			}
			ptAPIError(t, resp, body, tc.code, tc.typ)
			if id := resp.Header.Get("X-Keygate-Key"); id != "1" && id != "2" {
				t.Errorf("X-Keygate-Key %q, want the key tried", id)
			}
			if n := up.reqs.Load(); n != 1 {
				t.Errorf("upstream got %d requests, want 1 (a non-streamed call that upstream began to answer is not sent again)", n)
			}
			ptIdle(t, gw)
			for id, k := range ptKeys(t, gw) {
				if k.State != "closed" || k.CooldownUntil != nil {
					t.Errorf("key %d: %s until %v, want closed", id, k.State, k.CooldownUntil)
				}
			}
			_, mfs := mtScrape(t, gw)
			s := mtSeries(t, mfs)
			if v := s[`keygate_requests_total{code="200",route="passthrough"}`]; v != 0 {
				t.Errorf("keygate_requests_total{code=200,route=passthrough} = %v, want 0", v)
			}
			if v := s[fmt.Sprintf(`keygate_requests_total{code="%d",route="passthrough"}`, tc.code)]; v != 1 {
				t.Errorf("keygate_requests_total{code=%d,route=passthrough} = %v, want 1", tc.code, v)
			}
		})
	}
}

func readAllErr(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			if err.Error() == "EOF" {
				return b, nil
			}
			return b, err
		}
	}
}

// TestErrorBodyBrokenOff: an error answer (here a 503, upstream's own
// fault, not retried) whose body upstream breaks off reaches the client as
// a dropped connection with no status at all; it must get an answer with
// the JSON error shape and X-Keygate-Key.
func TestErrorBodyBrokenOff(t *testing.T) {
	up := rawListen(t, func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ []byte, _ int) bool {
		e := `{"error":{"message":"overloaded","code":503}}`
		fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(e)+40, e[:20])
		time.Sleep(20 * time.Millisecond)
		rawReset(c)
		return false
	})
	gw := startGateway(t, up.URL(), testKeys(2))
	resp, err := http.DefaultClient.Do(newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(hdChat("a/b", false))))
	if err != nil {
		t.Fatalf("client got no answer at all: %v", err)
	}
	body, rerr := readAllErr(resp)
	if rerr != nil {
		t.Fatalf("client got %d and a body cut short (%q, %v)", resp.StatusCode, body, rerr)
	}
	ptAPIError(t, resp, body, http.StatusBadGateway, "upstream_error")
	if id := resp.Header.Get("X-Keygate-Key"); id != "1" && id != "2" {
		t.Errorf("X-Keygate-Key %q, want the key tried", id)
	}
}

// TestSilentHeldStreamIs504: a stream whose headers came but no byte
// after, for longer than UPSTREAM_TIMEOUT (here shorter than the hold), is
// a timeout on every key tried: the client gets 504 upstream_timeout, as
// for an upstream that sends no headers, not 502.
func TestSilentHeldStreamIs504(t *testing.T) {
	up := rawListen(t, func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ []byte, _ int) bool {
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"))
		time.Sleep(time.Second)
		return false
	})
	gw := startGateway(t, up.URL(), testKeys(1), "UPSTREAM_TIMEOUT=200ms", "STREAM_HOLD_TIMEOUT=5s")
	resp, body := do(t, newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(hdChat("a/b", true))))
	ptAPIError(t, resp, body, http.StatusGatewayTimeout, "upstream_timeout")
}
