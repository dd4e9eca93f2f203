package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPassthroughHeaders checks which client headers reach upstream, that
// upstream gets a pool key, and that its answer comes back unchanged.
func TestPassthroughHeaders(t *testing.T) {
	keys := testKeys(3)
	upBody := []byte(`{"id":"gen-1","object":"chat.completion"}`)
	up, seen := ptUpstream(t, func(w http.ResponseWriter, _ *http.Request, _ ptSeen) {
		h := w.Header()
		h.Set("Content-Type", "application/vnd.upstream+json; charset=utf-8")
		h.Set("X-Upstream-Custom", "u-1")
		h.Set("Cache-Control", "no-cache")
		h.Add("Set-Cookie", "a=1; Path=/")
		h.Add("Set-Cookie", "b=2; HttpOnly")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(upBody)
	})

	kept := map[string]string{
		"X-Foo":          "bar",
		"Http-Referer":   "https://app.example/page",
		"X-Title":        "My App",
		"Accept":         "application/json",
		"Content-Type":   "application/json",
		"User-Agent":     "keygate-e2e/1.0",
		"Openai-Beta":    "assistants=v2",
		"X-Request-Id":   "req-42",
		"Accept-Charset": "utf-8",
	}
	secrets := []string{"client-token", "client-api-key", "s3ssion", "proxy-secret"}
	dropped := map[string]string{
		"Authorization":       "Bearer client-token",
		"X-Api-Key":           "client-api-key",
		"Cookie":              "session=s3ssion; theme=dark",
		"Proxy-Authorization": "Basic proxy-secret",
		"Connection":          "X-Hop-Named, Upgrade, Keep-Alive",
		"X-Hop-Named":         "named-by-connection",
		"Keep-Alive":          "timeout=5, max=100",
		"Te":                  "trailers, deflate",
		"Upgrade":             "websocket",
		"Proxy-Connection":    "keep-alive",
	}
	// Host, Transfer-Encoding and Trailer cannot ride in Header; the
	// request is sent chunked with a declared trailer instead.
	goneUpstream := []string{"Transfer-Encoding", "Trailer", "X-Trail"}

	for _, tc := range []struct {
		name   string
		tokens string // GATEWAY_API_KEYS
	}{
		{"open gateway", ""},
		{"gateway token", "GATEWAY_API_KEYS=client-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.tokens != "" {
				env = append(env, tc.tokens)
			}
			gw := startGateway(t, up.URL+"/api/v1", keys, env...)
			before := seen.len()
			payload := []byte(`{"model":"a/b","messages":[]}`)
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", nil)
			req.Body = io.NopCloser(bytes.NewReader(payload))
			req.ContentLength = -1
			req.TransferEncoding = []string{"chunked"}
			req.Trailer = http.Header{"X-Trail": {"t"}}
			for k, v := range kept {
				req.Header.Set(k, v)
			}
			for k, v := range dropped {
				req.Header.Set(k, v)
			}
			resp, body := do(t, req)

			all := seen.all()[before:]
			if len(all) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(all))
			}
			s := all[0]
			id := slices.Index(keys, s.Key) + 1
			if id == 0 || s.Header.Get("Authorization") != "Bearer "+keys[id-1] {
				t.Errorf("upstream Authorization %q, want Bearer <pool key>", s.Header.Get("Authorization"))
			}
			for k, v := range kept {
				if got := s.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("upstream %s = %q, want %q", k, got, v)
				}
			}
			for k := range dropped {
				if k == "Authorization" {
					continue
				}
				if got, ok := s.Header[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("upstream got %s: %q", k, got)
				}
			}
			for _, k := range goneUpstream {
				if got, ok := s.Header[k]; ok {
					t.Errorf("upstream got %s: %q", k, got)
				}
			}
			if len(s.TE) != 0 || s.Length != int64(len(payload)) || !bytes.Equal(s.Body, payload) {
				t.Errorf("upstream body: transfer-encoding %q, length %d, %q; want identity, %d, %q",
					s.TE, s.Length, s.Body, len(payload), payload)
			}
			for k, vs := range s.Header {
				for _, v := range vs {
					for _, sec := range secrets {
						if strings.Contains(v, sec) {
							t.Errorf("client secret %q reached upstream in %s: %q", sec, k, v)
						}
					}
				}
			}

			if resp.StatusCode != http.StatusCreated || !bytes.Equal(body, upBody) {
				t.Errorf("client got %d %q, want 201 %q", resp.StatusCode, body, upBody)
			}
			want := map[string][]string{
				"Content-Type":      {"application/vnd.upstream+json; charset=utf-8"},
				"X-Upstream-Custom": {"u-1"},
				"Cache-Control":     {"no-cache"},
				"Set-Cookie":        {"a=1; Path=/", "b=2; HttpOnly"},
				"Content-Length":    {strconv.Itoa(len(upBody))},
				"X-Keygate-Key":     {strconv.Itoa(id)},
			}
			for k, v := range want {
				if got := resp.Header.Values(k); !slices.Equal(got, v) {
					t.Errorf("client header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestPassthroughMapping checks methods and the /v1/<rest>?<query> to
// <base>/<rest>?<query> mapping, escapes included.
func TestPassthroughMapping(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2))
	for _, tc := range []struct {
		method, path, want string
	}{
		{"GET", "/v1/models", "/api/v1/models"},
		{"GET", "/v1/models?limit=5&order=desc", "/api/v1/models?limit=5&order=desc"},
		{"POST", "/v1/chat/completions", "/api/v1/chat/completions"},
		{"PUT", "/v1/files/file-123", "/api/v1/files/file-123"},
		{"DELETE", "/v1/files/file-123?force=true", "/api/v1/files/file-123?force=true"},
		{"PATCH", "/v1/fine_tuning/jobs/ft-1", "/api/v1/fine_tuning/jobs/ft-1"},
		{"GET", "/v1/models/openai%2Fgpt-4o", "/api/v1/models/openai%2Fgpt-4o"},
		{"GET", "/v1/models/openai%2fgpt-4o:free", "/api/v1/models/openai%2fgpt-4o:free"},
		{"GET", "/v1/a%20b/%7Euser/%25", "/api/v1/a%20b/%7Euser/%25"},
		{"GET", "/v1/search?q=a%20b%26c&x=%2F&x=2&empty=", "/api/v1/search?q=a%20b%26c&x=%2F&x=2&empty="},
		{"GET", "/v1/dots/a..b/.hidden/...", "/api/v1/dots/a..b/.hidden/..."},
		{"GET", "/v1", "/api/v1"},
		{"GET", "/v1/", "/api/v1/"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			before := seen.len()
			var body []byte
			if tc.method != "GET" && tc.method != "DELETE" {
				body = []byte(`{"x":1}`)
			}
			resp, got := do(t, newRequest(t, tc.method, gw.URL+tc.path, body))
			if resp.StatusCode != 200 || string(got) != `{"ok":true}` {
				t.Fatalf("status %d body %s", resp.StatusCode, got)
			}
			all := seen.all()[before:]
			if len(all) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(all))
			}
			if all[0].Method != tc.method || all[0].RequestURI != tc.want {
				t.Errorf("upstream got %s %s, want %s %s", all[0].Method, all[0].RequestURI, tc.method, tc.want)
			}
			if !bytes.Equal(all[0].Body, body) {
				t.Errorf("upstream body %q, want %q", all[0].Body, body)
			}
		})
	}
}

// TestPassthroughDotSegments checks that paths that could climb out of the
// upstream base are refused without an upstream request.
func TestPassthroughDotSegments(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL+"/api/v1", testKeys(2))
	for _, path := range []string{
		"/v1/../keys",
		"/v1/a/../../admin",
		"/v1/./models",
		"/v1/models/.",
		"/v1/..",
		"/v1/%2e%2e/admin",
		"/v1/a/%2E%2E/%2e%2e/admin",
		"/v1/a/.%2e/b",
		"/v1/%2e/models",
		"/v1/a/..%2fb",
		"/v1/a%2f..%2f..%2fadmin",
		"/v1/a/..?x=1",
	} {
		t.Run(path, func(t *testing.T) {
			resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+path, nil))
			ptAPIError(t, resp, body, http.StatusBadRequest, "invalid_request_error")
			if got := resp.Header.Get("X-Keygate-Key"); got != "none" {
				t.Errorf("X-Keygate-Key %q, want none", got)
			}
			if n := seen.len(); n != 0 {
				t.Errorf("upstream got %d requests, want 0", n)
			}
		})
	}
}

// TestPassthroughBodies checks that request and response bodies cross the
// gateway byte for byte, fixed-length and chunked.
func TestPassthroughBodies(t *testing.T) {
	big := bytes.Repeat([]byte(`{"role":"user","content":"lorem ipsum \u00e9\u4e2d"},`), 3<<20/52)
	bigJSON := append(append([]byte(`{"model":"a/b","messages":[`), big[:len(big)-1]...), "]}"...)
	cases := []struct {
		name      string
		req, resp []byte
		chunked   bool
	}{
		{"binary", ptRandom(64 << 10), ptRandom(96 << 10), false},
		{"binary chunked", ptRandom(64 << 10), ptRandom(96 << 10), true},
		{"3MiB JSON", bigJSON, bigJSON, false},
		{"3MiB JSON chunked", bigJSON, ptRandom(3 << 20), true},
		{"empty", nil, nil, false},
	}
	byName := map[string][]byte{}
	for _, tc := range cases {
		byName[tc.name] = tc.resp
	}
	up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		w.Header().Set("X-Got-Sha256", ptSum(s.Body))
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(byName[r.URL.Query().Get("case")])
	})
	gw := startGateway(t, up.URL, testKeys(2))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := seen.len()
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/echo?case="+strings.ReplaceAll(tc.name, " ", "+"), tc.req)
			if tc.chunked {
				req.Body = io.NopCloser(bytes.NewReader(tc.req))
				req.ContentLength = -1
			}
			resp, body := do(t, req)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("X-Got-Sha256"); got != ptSum(tc.req) {
				t.Errorf("upstream got body sha256 %s, want %s", got, ptSum(tc.req))
			}
			if ptSum(body) != ptSum(tc.resp) {
				t.Errorf("client got %d bytes (sha256 %s), want %d (%s)", len(body), ptSum(body), len(tc.resp), ptSum(tc.resp))
			}
			all := seen.all()[before:]
			if len(all) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(all))
			}
			if all[0].Length != int64(len(tc.req)) || len(all[0].TE) != 0 {
				t.Errorf("upstream Content-Length %d, Transfer-Encoding %q; want %d, none", all[0].Length, all[0].TE, len(tc.req))
			}
		})
	}
}

// TestPassthroughBodyLimit checks MAX_BODY_BYTES: a larger body gets 413
// and no upstream call, however it is sent.
func TestPassthroughBodyLimit(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL, testKeys(2), "MAX_BODY_BYTES=1024")
	for _, tc := range []struct {
		size    int
		chunked bool
		want    int
	}{
		{1024, false, 200},
		{1024, true, 200},
		{1025, false, 413},
		{1025, true, 413},
		{64 << 10, false, 413},
		{64 << 10, true, 413},
	} {
		t.Run(fmt.Sprintf("%d chunked=%v", tc.size, tc.chunked), func(t *testing.T) {
			before := seen.len()
			payload := ptRandom(tc.size)
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", payload)
			if tc.chunked {
				req.Body = io.NopCloser(bytes.NewReader(payload))
				req.ContentLength = -1
			}
			resp, body := do(t, req)
			calls := seen.all()[before:]
			if tc.want == 200 {
				if resp.StatusCode != 200 || len(calls) != 1 || !bytes.Equal(calls[0].Body, payload) {
					t.Fatalf("status %d, %d upstream calls; want 200 and the body upstream", resp.StatusCode, len(calls))
				}
				return
			}
			ptAPIError(t, resp, body, http.StatusRequestEntityTooLarge, "invalid_request_error")
			if got := resp.Header.Get("X-Keygate-Key"); got != "none" {
				t.Errorf("X-Keygate-Key %q, want none", got)
			}
			if len(calls) != 0 {
				t.Errorf("upstream got %d requests, want 0", len(calls))
			}
		})
	}
}

// TestPassthroughGatewayRefusals checks that answers the gateway gives
// before any key is tried still carry X-Keygate-Key and reach no upstream.
func TestPassthroughGatewayRefusals(t *testing.T) {
	up, seen := ptUpstream(t, ptOK)
	gw := startGateway(t, up.URL, testKeys(2), "GATEWAY_API_KEYS=tok")
	for _, auth := range []string{"", "Bearer wrong", "tok"} {
		t.Run("Authorization="+auth, func(t *testing.T) {
			req := newRequest(t, http.MethodPost, gw.URL+"/v1/chat/completions", []byte(`{}`))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, body := do(t, req)
			ptAPIError(t, resp, body, http.StatusUnauthorized, "invalid_request_error")
			if got := resp.Header.Get("X-Keygate-Key"); got != "none" {
				t.Errorf("X-Keygate-Key %q, want none", got)
			}
		})
	}
	if n := seen.len(); n != 0 {
		t.Errorf("upstream got %d requests, want 0", n)
	}
}

// TestPassthroughOverloaded checks MAX_IN_FLIGHT's 503 on /v1: marked with
// X-Keygate-Key, no upstream call.
func TestPassthroughOverloaded(t *testing.T) {
	entered := make(chan struct{}, 1)
	up, seen := ptUpstream(t, func(w http.ResponseWriter, r *http.Request, s ptSeen) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	gw := startGateway(t, up.URL, testKeys(2), "MAX_IN_FLIGHT=1")
	go func() {
		req := newRequest(t, http.MethodGet, gw.URL+"/v1/slow", nil).WithContext(t.Context())
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	ptWait(t, entered, "the first request upstream")
	resp, body := do(t, newRequest(t, http.MethodGet, gw.URL+"/v1/models", nil))
	ptAPIError(t, resp, body, http.StatusServiceUnavailable, "overloaded")
	if got := resp.Header.Get("X-Keygate-Key"); got != "none" {
		t.Errorf("X-Keygate-Key %q, want none", got)
	}
	if n := seen.len(); n != 1 {
		t.Errorf("upstream got %d requests, want only the first", n)
	}
}
