package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/keygate/keygate/app"
	"github.com/keygate/keygate/bench/internal/floorproxy"
	"github.com/keygate/keygate/config"
	"github.com/keygate/keygate/console"
)

// cannedReply is what the stub upstream answers to every call.
var cannedReply = []byte(`{"id":"gen-1","object":"chat.completion","created":1,"model":"openai/gpt-4o-mini",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)

// stubUpstream answers every round trip with cannedReply, without a network.
type stubUpstream struct{}

func (stubUpstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(cannedReply)),
		ContentLength: int64(len(cannedReply)),
		Request:       req,
	}, nil
}

// benchHandler runs h like a client posting tinyChat to /v1/chat/completions.
func benchHandler(b *testing.B, h http.Handler) { benchPost(b, h, "/v1/chat/completions", tinyChat) }

// benchPost runs h like clients posting body to path, in parallel.
func benchPost(b *testing.B, h http.Handler, path string, body []byte) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}

// BenchmarkPassthrough is keygate's /v1 handler, in process, in front of a
// stub upstream: the gateway's own CPU and allocations per request, with
// neither network nor simulator. Profile it with
// go test -run XXX -bench Passthrough -cpuprofile cpu.out -memprofile mem.out ./bench
func BenchmarkPassthrough(b *testing.B) {
	benchHandler(b, benchApp(b).Handler)
}

// BenchmarkRun is POST /run of four models, in process, in front of the
// same stub: what a /run costs keygate itself (its console lines were 14 %
// of it, 4 % once they skipped the runtime's caller lookup).
func BenchmarkRun(b *testing.B) {
	benchPost(b, benchApp(b).Handler, "/run",
		[]byte(`{"prompt":"hi","models":["openai/gpt-4o-mini","anthropic/claude-3-haiku","google/gemini-flash","meta/llama-3"]}`))
}

// benchApp is keygate with four keys over the stub upstream, logging to
// nowhere at its default level.
func benchApp(b *testing.B) *app.App {
	// httptest.NewRequest's Host is example.com, which keygate refuses
	// without GATEWAY_API_KEYS (against DNS rebinding) unless allowed.
	environ := []string{"OPENROUTER_BASE_URL=http://upstream.invalid/api/v1", "ALLOWED_HOSTS=example.com"}
	for i := range 4 {
		// Random-looking: keygate refuses keys that look like placeholders.
		sum := sha256.Sum256([]byte("keygate bench key " + strconv.Itoa(i+1)))
		environ = append(environ, "OPENROUTER_API_KEY_"+strconv.Itoa(i+1)+"=sk-or-v1-"+hex.EncodeToString(sum[:]))
	}
	cfg, err := config.Load(environ, nil, true)
	if err != nil {
		b.Fatal(err)
	}
	log := console.New(io.Discard, cfg.LogFormat, cfg.LogLevelValue())
	a, err := app.New(cfg, log, app.Options{Transport: stubUpstream{}})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// BenchmarkFloorHandler is the floor's proxy in front of the same stub,
// the yardstick for BenchmarkPassthrough.
func BenchmarkFloorHandler(b *testing.B) {
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	benchHandler(b, floorproxy.New(base, "sk-or-v1-bench0123456789abcdef", stubUpstream{}))
}

// BenchmarkFloorHandlerPooled is the floor with pooled copy buffers, the
// stricter yardstick.
func BenchmarkFloorHandlerPooled(b *testing.B) {
	base, _ := url.Parse("http://upstream.invalid/api/v1")
	benchHandler(b, floorproxy.WithPool(floorproxy.New(base, "sk-or-v1-bench0123456789abcdef", stubUpstream{})))
}
