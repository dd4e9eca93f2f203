package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestTransportFaultsLeaveNothing: after resets, cut headers and bodies,
// silence, bad chunks and corrupt gzip, on plain and streamed calls and
// /run, no key rests (none is at fault), none is in flight, none shows in
// the log, and no goroutine is left.
func TestTransportFaultsLeaveNothing(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	big := `{"id":"x","pad":"` + strings.Repeat("p", 3000) + `"}`
	scripts := []func(c net.Conn, body []byte){
		func(c net.Conn, body []byte) { rawReset(c) },
		func(c net.Conn, body []byte) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Le"))
			rawReset(c)
		},
		func(c net.Conn, body []byte) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(big), big[:1500])
			time.Sleep(5 * time.Millisecond)
			rawReset(c)
		},
		func(c net.Conn, body []byte) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"))
			ev := rawEvent(0)
			fmt.Fprintf(c, "%x\r\n%s\r\n", len(ev), ev)
			time.Sleep(5 * time.Millisecond)
			rawReset(c)
		},
		func(c net.Conn, body []byte) { time.Sleep(400 * time.Millisecond) },
		func(c net.Conn, body []byte) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n: OPENROUTER PROCESSING\n\n"))
			time.Sleep(400 * time.Millisecond)
		},
		func(c net.Conn, body []byte) {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
		},
		func(c net.Conn, body []byte) {
			z := []byte("\x1f\x8b\x08\x00garbagegarbagegarbage")
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s", len(z), z)
		},
	}
	func() {
		up := rawListen(t, func(c net.Conn, _ *bufio.Reader, _ *http.Request, body []byte, n int) bool {
			scripts[n%len(scripts)](c, body)
			return false
		})
		g := hdStart(t, up.URL(), hdKeys(3), newClock(), "UPSTREAM_TIMEOUT=200ms", "STREAM_HOLD_TIMEOUT=300ms")
		for i := 0; i < 3*len(scripts); i++ {
			for _, stream := range []bool{false, true} {
				r := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", stream)))
				_ = r
			}
			_ = hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"x","models":["a/b","c/d"],"stream":`+fmt.Sprint(i%2 == 0)+`}`))
		}
		ptIdle(t, g.gateway)
		for id, k := range ptKeys(t, g.gateway) {
			if k.State != "closed" || k.CooldownUntil != nil {
				t.Errorf("key %d: %s until %v", id, k.State, k.CooldownUntil)
			}
		}
		if w, ok := hdLeak(g.Logs.String(), hdKeys(3)); ok {
			t.Errorf("key in logs: %s", w)
		}
		m := hdScrape(t, g)
		for _, s := range m["keygate_key_in_flight"] {
			if s.Value != 0 {
				t.Errorf("in flight %v", s)
			}
		}
		g.Close()
	}()
	time.Sleep(100 * time.Millisecond)
	if err := goleak.Find(leaks, goleak.IgnoreAnyFunction("github.com/keygate/keygate/e2e.rawListen.func1"), goleak.IgnoreAnyFunction("github.com/keygate/keygate/e2e.rawListen.func1.1")); err != nil {
		t.Error(err)
	}
}
