package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keygate/keygate/breaker"
	"github.com/keygate/keygate/keyring"
	"github.com/keygate/keygate/relay"
	"github.com/keygate/keygate/secret"
)

// fakeSpender records what a Server charges.
type fakeSpender struct {
	mu    sync.Mutex
	spent float64
	free  int
	polls int
}

func (f *fakeSpender) Spend(_ *keyring.Key, _ string, usd float64) {
	f.mu.Lock()
	f.spent += usd
	f.mu.Unlock()
}

func (f *fakeSpender) UseFree(*keyring.Key) {
	f.mu.Lock()
	f.free++
	f.mu.Unlock()
}

func (f *fakeSpender) PollSoon(*keyring.Key) {
	f.mu.Lock()
	f.polls++
	f.mu.Unlock()
}

// chargeTransport answers every call with one body of one content type.
type chargeTransport struct{ ctype, body string }

func (c chargeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {c.ctype}},
		Body: io.NopCloser(strings.NewReader(c.body)), Request: r}, nil
}

// TestRunChargesEveryAnswer: a /run model's 2xx answer is charged as the
// passthrough charges one, whether or not /run found a message in it: its
// usage.cost off the key's budget, a free model's request off its
// account's quota, and an answer without usage (cut short, or upstream
// left it out) brings the key's budget poll forward, since upstream may
// charge it all the same. A tool call's answer (content null) costs what
// any other does.
func TestRunChargesEveryAnswer(t *testing.T) {
	const (
		toolCall  = `{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14,"cost":0.25}}`
		noUsage   = `{"choices":[{"message":{"role":"assistant","content":"hi"}}]}`
		plain     = `{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10,"cost":0.5}}`
		toolDelta = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n" +
			"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,\"total_tokens\":14,\"cost\":0.25}}\n\ndata: [DONE]\n\n"
		cutStream = "data: {\"choices\":[{\"delta\":{\"content\":\"hel\"}}]}\n\n"
	)
	for _, tc := range []struct {
		name, model, ctype, body string
		stream                   bool
		spent                    float64
		free, polls              int
	}{
		{"plain answer", "a/b", "application/json", plain, false, 0.5, 0, 0},
		{"tool call", "a/b", "application/json", toolCall, false, 0.25, 0, 0},
		{"tool call of a free model", "a/b:free", "application/json", toolCall, false, 0.25, 1, 0},
		{"answer without usage", "a/b", "application/json", noUsage, false, 0, 0, 1},
		{"streamed tool call", "a/b", "text/event-stream", toolDelta, true, 0.25, 0, 0},
		{"stream cut before its usage", "a/b:free", "text/event-stream", cutStream, true, 0, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &fakeSpender{}
			s := newChargeServer(t, chargeTransport{ctype: tc.ctype, body: tc.body}, sp)
			body := `{"prompt":"hi","models":["` + tc.model + `"],"stream":` + map[bool]string{true: "true", false: "false"}[tc.stream] + `}`
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(body)))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			sp.mu.Lock()
			defer sp.mu.Unlock()
			if sp.spent != tc.spent || sp.free != tc.free || sp.polls != tc.polls {
				t.Errorf("charged $%v, %d free requests, %d polls soon; want $%v, %d, %d (answer %s)",
					sp.spent, sp.free, sp.polls, tc.spent, tc.free, tc.polls, w.Body)
			}
		})
	}
}

// newChargeServer is a gateway over one key whose upstream is tr and
// whose answers are charged to sp.
func newChargeServer(t testing.TB, tr http.RoundTripper, sp Spender) *Server {
	t.Helper()
	pool, err := keyring.New([]keyring.Entry{{ID: 1, Secret: secret.New("sk-or-v1-charge00000000000000000001")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := keyring.ByName(keyring.NameRandom, nil)
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	rl := relay.New(pool, breaker.NewSet(pool, breaker.Settings{}), relay.Options{Transport: tr})
	return New(Options{
		Relay: rl, Strategy: st, BaseURL: base, MaxBodyBytes: 1 << 20, Spender: sp,
		Logger:       slog.New(slog.DiscardHandler),
		AllowedHosts: []string{"example.com"},
	})
}
