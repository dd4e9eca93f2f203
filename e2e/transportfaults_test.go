package e2e

import (
	"bufio"
	"net"
	"net/http"
	"testing"
)

// TestEchoedKeyInTransportError: an upstream whose malformed answer
// quotes the Authorization header makes Go's transport quote it in its
// error; the client's answers (/v1, /run, /run streamed) and the log, text
// and JSON, show the key masked.
func TestEchoedKeyInTransportError(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		up := rawListen(t, func(c net.Conn, _ *bufio.Reader, req *http.Request, _ []byte, _ int) bool {
			a := req.Header.Get("Authorization")
			c.Write([]byte("HTTP/1.1 200 OK\r\n" + a + "\r\n\r\n"))
			return false
		})
		keys := hdKeys(2)
		g := hdStart(t, up.URL(), keys, newClock(), "LOG_FORMAT="+format)
		r1 := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/v1/chat/completions", hdChat("a/b", false)))
		r2 := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"x","models":["a/b"]}`))
		r3 := hdDo(g.Client, hdRequest(t, http.MethodPost, g.URL+"/run", `{"prompt":"x","models":["a/b"],"stream":true}`))
		for i, b := range [][]byte{r1.Body, r2.Body, r3.Body, []byte(g.Logs.String())} {
			if w, ok := hdLeak(string(b), keys); ok {
				t.Errorf("%s: output %d leaks %q", format, i, w)
			}
		}
		t.Logf("%s", r2.Body)
	}
}
