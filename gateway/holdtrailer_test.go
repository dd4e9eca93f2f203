package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// trailerStream is an upstream event stream that declares a trailer, sends
// one comment, stays silent past the hold, then ends: as net/http's
// transport does at a chunked body's end, the Read that meets the end fills
// in resp.Trailer's values.
type trailerStream struct {
	resp  *http.Response
	reads int
	wait  time.Duration
}

func (b *trailerStream) Read(p []byte) (int, error) {
	b.reads++
	if b.reads == 1 {
		return copy(p, ": OPENROUTER PROCESSING\n\n"), nil
	}
	time.Sleep(b.wait) // the hold's timeout commits meanwhile
	b.resp.Trailer["X-Body-Sha256"] = []string{"abc"}
	return 0, io.EOF
}

func (b *trailerStream) Close() error { return nil }

type trailerTransport struct{ wait time.Duration }

func (tt trailerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Trailer: http.Header{"X-Body-Sha256": nil}, ContentLength: -1, Request: r}
	resp.Body = &trailerStream{resp: resp, wait: tt.wait}
	return resp, nil
}

// TestHoldCommitLeavesTrailerToTheRead: at STREAM_HOLD_TIMEOUT the hold
// commits on the timer's goroutine (relay.Committer) while the call's
// goroutine is inside resp.Body.Read, where net/http writes the trailers
// into resp.Trailer. The commit announced them by ranging over that map: a
// data race under -race, in a plain build a rare "concurrent map iteration
// and map write" crash. It announces them from a copy taken before the read.
func TestHoldCommitLeavesTrailerToTheRead(t *testing.T) {
	pool, err := keyring.New([]keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-trailer000000000000000000001")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := keyring.ByName(keyring.NameRandom, nil)
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}),
		relay.Options{Transport: trailerTransport{wait: 60 * time.Millisecond}, StreamHold: 10 * time.Millisecond})
	s := New(Options{Relay: rl, Strategy: st, BaseURL: base, MaxBodyBytes: 1 << 20,
		Logger: slog.New(slog.DiscardHandler), AllowedHosts: []string{"example.com"}})
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"stream":true}`)))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "PROCESSING") {
		t.Fatalf("answer %d %q", w.Code, w.Body.String())
	}
	res := w.Result()
	if got := res.Header.Get("Trailer"); got != "X-Body-Sha256" {
		t.Errorf("Trailer announced %q, want X-Body-Sha256", got)
	}
	if got := res.Trailer.Get("X-Body-Sha256"); got != "abc" {
		t.Errorf("trailer X-Body-Sha256 = %q, want upstream's", got)
	}
}
