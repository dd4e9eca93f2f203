package relay_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/relay"
)

// TestJSONErrorAfterBlanks: an upstream that sends blanks before a 200's
// JSON body (a keep-alive while the model works) is judged by the body
// that follows them: the first read may bring the blanks alone.
func TestJSONErrorAfterBlanks(t *testing.T) {
	const rl = `{"error":{"code":429,"message":"Rate limit exceeded: limit_rpm/google/gemini-2.0-flash-exp/123"}}`
	for _, pad := range []string{"\n", " \n\n", strings.Repeat(" ", 100)} {
		h := func(w http.ResponseWriter, r *http.Request, id int) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			body := `{"ok":2}`
			if id == 1 {
				body = rl
				w.Write([]byte(pad))
				w.(http.Flusher).Flush()
				time.Sleep(30 * time.Millisecond)
			}
			w.Write([]byte(body))
		}
		e := newEnv(t, envOptions{keys: 2}, h)
		resp, err := e.do(t, nil, &relay.Call{})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != 200 || got != `{"ok":2}` {
			t.Errorf("%q then a 429 object: %d %q, want the retry's 200 from key 2", pad, resp.StatusCode, got)
		}
	}
}
