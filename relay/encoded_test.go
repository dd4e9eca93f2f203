package relay_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"net/http"
	"testing"

	"github.com/keygate/keygate/relay"
)

// encode compresses s as enc (gzip, or raw deflate) says.
func encode(t *testing.T, enc, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	if enc == "gzip" {
		w = gzip.NewWriter(&b)
	} else {
		fw, err := flate.NewWriter(&b, flate.DefaultCompression)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	}
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestEncodedAnswerJudged: keygate asks for unencoded answers, but an
// upstream may compress a 200 all the same; its first stream event, or its
// JSON body, is judged as an unencoded one is, so that a key's fault there
// still goes on to another key.
func TestEncodedAnswerJudged(t *testing.T) {
	tests := []struct {
		name, ctype, enc, body string
		failovers              []string
	}{
		{"gzip stream", "text/event-stream", "gzip", processing + keyRL, []string{relay.FailoverErrorEvent}},
		{"deflate stream", "text/event-stream", "deflate", keyRL, []string{relay.FailoverErrorEvent}},
		{"gzip JSON", "application/json", "gzip", `{"error":{"code":429,"message":"Rate limit exceeded"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{keys: 2}, func(w http.ResponseWriter, r *http.Request, id int) {
				if id == 2 {
					w.Header().Set("Content-Type", tt.ctype)
					w.Write([]byte(okStream))
					return
				}
				w.Header().Set("Content-Type", tt.ctype)
				w.Header().Set("Content-Encoding", tt.enc)
				w.Write(encode(t, tt.enc, tt.body))
			})
			resp, err := e.do(t, nil, &relay.Call{})
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != 200 || body != okStream || resp.Header.Get("X-Keygate-Key") != "2" {
				t.Fatalf("answer %d %q from key %s, want key 2's", resp.StatusCode, body, resp.Header.Get("X-Keygate-Key"))
			}
			if got := e.hitsByKey(); got[0] != 1 || got[1] != 1 {
				t.Errorf("upstream calls by key %v, want [1 1]", got)
			}
			e.obs.mu.Lock()
			failovers := e.obs.failovers
			e.obs.mu.Unlock()
			equalEvents(t, "StreamFailover", failovers, tt.failovers)
			for id := 1; id <= 2; id++ {
				if n := e.inFlight(id); n != 0 {
					t.Errorf("key %d in flight %d after the call", id, n)
				}
			}
		})
	}
}
