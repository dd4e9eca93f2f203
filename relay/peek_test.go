package relay_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/relay"
)

// TestJSONErrorInPieces: a 200 JSON answer whose error object comes in
// several reads (blanks first, a keep-alive while the model works; a lone
// "{") is judged by the whole of its first bytes, not by its first read:
// key 1's 401 goes on to key 2.
func TestJSONErrorInPieces(t *testing.T) {
	const auth = `"error":{"code":401,"message":"User not found."}}`
	for _, pieces := range [][]string{
		{"\n", "{" + auth},
		{" \n\n", "{" + auth},
		{strings.Repeat(" ", 100), "{" + auth},
		{"{", auth},
		{`{"err`, `or":{"code":401,"message":"User not found."}}`},
		{`{"id":"gen-1",`, auth},
	} {
		h := func(w http.ResponseWriter, r *http.Request, id int) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			if id != 1 {
				w.Write([]byte(`{"ok":2}`))
				return
			}
			for _, p := range pieces {
				w.Write([]byte(p))
				w.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
		}
		e := newEnv(t, envOptions{keys: 2}, h)
		resp, err := e.do(t, nil, &relay.Call{})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != 200 || got != `{"ok":2}` {
			t.Errorf("%q: %d %q, want the retry's 200 from key 2", pieces, resp.StatusCode, got)
		}
		if e.pool.Available(e.key(1), e.clock.ns.Load()) {
			t.Errorf("%q: key 1 not rested after its 401", pieces)
		}
	}
}
