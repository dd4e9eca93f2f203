package relay_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// piecesBody yields its pieces one read each.
type piecesBody struct{ pieces []string }

func (b *piecesBody) Read(p []byte) (int, error) {
	for len(b.pieces) > 0 && b.pieces[0] == "" {
		b.pieces = b.pieces[1:]
	}
	if len(b.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.pieces[0])
	b.pieces[0] = b.pieces[0][n:]
	return n, nil
}

func (b *piecesBody) Close() error { return nil }

type piecesTransport struct{ pieces func() []string }

func (t piecesTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: &piecesBody{pieces: t.pieces()}, ContentLength: -1, Request: r}, nil
}

func split(rng *rand.Rand, s string) []string {
	var out []string
	for len(s) > 0 {
		n := 1 + rng.IntN(min(len(s), 9))
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func TestHoldAnySplit(t *testing.T) {
	const (
		role    = `{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
		content = `{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`
		rl      = `{"error":{"code":429,"message":"Rate limit exceeded"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}`
	)
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		ok := "\xEF\xBB\xBF: OPENROUTER PROCESSING" + eol + eol + "data: " + role + eol + eol + ": OPENROUTER PROCESSING" + eol + eol +
			"data: " + content + eol + eol + "data: [DONE]" + eol + eol
		bad := ": OPENROUTER PROCESSING" + eol + eol + "data: " + role + eol + eol + "data: " + rl + eol + eol
		for seed := range uint64(300) {
			rng := rand.New(rand.NewPCG(seed, 1))
			for _, tc := range []struct {
				stream string
				status int
			}{{ok, 200}, {bad, 429}} {
				pieces := split(rng, tc.stream)
				pool, _ := keyring.New([]keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-split0000000000000000000001")}}, nil)
				rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}), relay.Options{
					Transport: piecesTransport{func() []string { return append([]string(nil), pieces...) }}})
				req, _ := http.NewRequest(http.MethodPost, "http://up.invalid/chat/completions", nil)
				st, _ := keyring.ByName(keyring.NameRandom, nil)
				resp, err := rl.Do(req, []byte(`{}`), &relay.Call{Strategy: st})
				if err != nil {
					t.Fatalf("eol %q seed %d: %v", eol, seed, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("eol %q seed %d pieces %q: status %d, want %d", eol, seed, pieces, resp.StatusCode, tc.status)
				}
				if tc.status == 200 && (err != nil || !bytes.Equal(body, []byte(tc.stream))) {
					t.Fatalf("eol %q seed %d pieces %q: body %q (%v), want it as sent", eol, seed, pieces, body, err)
				}
				if tc.status != 200 && !strings.Contains(string(body), "Rate limit exceeded") {
					t.Fatalf("eol %q seed %d: body %q", eol, seed, body)
				}
				if n := pool.Ledger().InFlight(0); n != 0 {
					t.Fatalf("in flight %d after the body closed", n)
				}
			}
		}
	}
}
