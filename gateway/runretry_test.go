package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// rateLimitFirst answers the first call of one model with a key's 429 (the
// key rests, the call goes on to another key) and every other call as
// chatTransport does.
type rateLimitFirst struct {
	model string
	mu    sync.Mutex
	done  bool
}

func (f *rateLimitFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	f.mu.Lock()
	first := !f.done && strings.Contains(string(body), `"model":"`+f.model+`"`)
	f.done = f.done || first
	f.mu.Unlock()
	if !first {
		return (&chatTransport{}).RoundTrip(r)
	}
	return &http.Response{StatusCode: http.StatusTooManyRequests, Request: r,
		Header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {"30"}},
		Body:   io.NopCloser(strings.NewReader(`{"error":{"message":"slow down","code":429}}`))}, nil
}

// TestRunRetryKeepsKeysDistinct: in random mode a model retried after its
// key's fault goes on a key none of the request's other models holds while
// one is left, as its first key did; it shared one with another model
// while a key stood idle in two runs out of three (3 keys, 2 models). With
// every other key held, it shares one rather than fail.
func TestRunRetryKeepsKeysDistinct(t *testing.T) {
	for _, tc := range []struct {
		name     string
		models   []string
		distinct int
	}{
		{"a key left", []string{"m/a", "m/b"}, 2},
		{"no key left", []string{"m/a", "m/b", "m/c"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			models, _ := json.Marshal(tc.models)
			for run := 0; run < 30; run++ {
				s := newRunServer(t, &rateLimitFirst{model: "m/a"})
				w := httptest.NewRecorder()
				s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/run",
					strings.NewReader(`{"prompt":"hi","random_key":true,"models":`+string(models)+`}`)))
				var out runResponse
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Successful != len(tc.models) {
					t.Fatalf("run %d: %d %s", run, w.Code, w.Body)
				}
				ids := map[int]bool{}
				for _, res := range out.Responses {
					ids[*res.KeyID] = true
				}
				if len(ids) != tc.distinct {
					t.Fatalf("run %d: the models ended on keys %v; want %d distinct: %s", run, ids, tc.distinct, w.Body)
				}
			}
		})
	}
}
