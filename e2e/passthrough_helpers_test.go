package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// ptSeen is one request as the upstream received it.
type ptSeen struct {
	Method     string
	RequestURI string
	Key        string // the bearer token, "" when none
	Header     http.Header
	TE         []string // r.TransferEncoding
	Length     int64    // r.ContentLength
	Body       []byte
}

// ptLog records what reached an upstream, safe for concurrent use.
type ptLog struct {
	mu   sync.Mutex
	reqs []ptSeen
}

func (l *ptLog) all() []ptSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ptSeen(nil), l.reqs...)
}

func (l *ptLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// count is the number of requests that carried key.
func (l *ptLog) count(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if r.Key == key {
			n++
		}
	}
	return n
}

// ptHandler answers one upstream request; the body was already read into s.
type ptHandler func(w http.ResponseWriter, r *http.Request, s ptSeen)

// ptUpstream starts an upstream on loopback that records every request and
// then lets h answer it.
func ptUpstream(t testing.TB, h ptHandler) (*httptest.Server, *ptLog) {
	t.Helper()
	log := &ptLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream reading body: %v", err)
		}
		s := ptSeen{
			Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(),
			Key: strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
			TE:  r.TransferEncoding, Length: r.ContentLength, Body: body,
		}
		log.mu.Lock()
		log.reqs = append(log.reqs, s)
		log.mu.Unlock()
		h(w, r, s)
	}))
	t.Cleanup(srv.Close)
	return srv, log
}

// ptOK answers 200 with a small JSON body.
func ptOK(w http.ResponseWriter, _ *http.Request, _ ptSeen) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// ptKeyStatus is one entry of GET /keys.
type ptKeyStatus struct {
	ID            int               `json:"id"`
	Masked        string            `json:"masked"`
	State         string            `json:"state"`
	InFlight      int64             `json:"in_flight"`
	Requests      uint64            `json:"requests"`
	Failures      map[string]uint64 `json:"failures"`
	OtherErrors   map[string]uint64 `json:"other_errors"`
	CooldownUntil *time.Time        `json:"cooldown_until"`
	Disabled      bool              `json:"disabled"`
}

// ptKeys reads GET /keys, by key id.
func ptKeys(t testing.TB, gw *gateway) map[int]ptKeyStatus {
	t.Helper()
	req := newRequest(t, http.MethodGet, gw.URL+"/keys", nil)
	if tokens := gw.Config.GatewayAPIKeys; len(tokens) > 0 {
		tokens[0].SetAuthorization(req.Header)
	}
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /keys: %d %s", resp.StatusCode, body)
	}
	var doc struct {
		Keys []ptKeyStatus `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("GET /keys: %v in %s", err, body)
	}
	out := make(map[int]ptKeyStatus, len(doc.Keys))
	for _, k := range doc.Keys {
		out[k.ID] = k
	}
	return out
}

// ptWantRested checks that key id rests until exactly want (zero: not at all).
func ptWantRested(t testing.TB, gw *gateway, id int, want time.Time) {
	t.Helper()
	k := ptKeys(t, gw)[id]
	switch {
	case want.IsZero() && k.CooldownUntil != nil:
		t.Errorf("key %d: cooldown_until %v, want null", id, k.CooldownUntil)
	case want.IsZero() && k.State != "closed":
		t.Errorf("key %d: state %q, want closed", id, k.State)
	case !want.IsZero() && (k.CooldownUntil == nil || !k.CooldownUntil.Equal(want)):
		t.Errorf("key %d: cooldown_until %v, want %v", id, k.CooldownUntil, want)
	case !want.IsZero() && k.State != "open":
		t.Errorf("key %d: state %q, want open", id, k.State)
	}
}

// ptEventually waits for cond, failing the test after a generous deadline.
// It polls state that settles asynchronously (a handler finishing after
// its client left); it never measures time.
func ptEventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ptIdle waits until no key has a call in flight.
func ptIdle(t testing.TB, gw *gateway) {
	t.Helper()
	ptEventually(t, "in_flight 0 on every key", func() bool {
		for _, k := range ptKeys(t, gw) {
			if k.InFlight != 0 {
				return false
			}
		}
		return true
	})
}

// ptWait fails the test when ch does not yield within a generous deadline.
func ptWait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// ptAPIError decodes an OpenAI-style error body and checks its type and code.
func ptAPIError(t testing.TB, resp *http.Response, body []byte, code int, typ string) string {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, code, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    int    `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.Error.Type != typ || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("error body %s, want type %q code %d and a message", body, typ, code)
	}
	return e.Error.Message
}

// ptRandom returns n random bytes.
func ptRandom(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func ptSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ptReadEvent reads one server-sent event (up to its blank line).
func ptReadEvent(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\n" {
			return b.String(), nil
		}
	}
}
