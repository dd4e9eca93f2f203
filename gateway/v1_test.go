package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestIsV1(t *testing.T) {
	for raw, want := range map[string]bool{
		"/v1": true, "/v1/": true, "/v1/chat/completions": true, "/v1/a%2Fb": true,
		"/v1x": false, "/v10/models": false, "/run": false, "/": false, "/x/v1/": false,
		"/api/v1": true, "/api/v1/": true, "/api/v1/chat/completions": true, "/api/v1/a%2Fb": true,
		"/api/v1x": false, "/api/v10": false, "/api": false, "/api/": false, "/api%2Fv1/models": false, "/api/api/v1": false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := isV1(&http.Request{URL: u}); got != want {
			t.Errorf("isV1(%q) = %v, want %v", raw, got, want)
		}
	}
}

func TestStatusWriter(t *testing.T) {
	t.Run("first final status wins, 1xx passes", func(t *testing.T) {
		rec := httptest.NewRecorder()
		sw := &statusWriter{ResponseWriter: rec}
		sw.WriteHeader(http.StatusEarlyHints)
		sw.WriteHeader(http.StatusTeapot)
		sw.WriteHeader(http.StatusOK)
		if sw.status != http.StatusTeapot {
			t.Fatalf("status %d", sw.status)
		}
	})
	t.Run("write and flush imply 200", func(t *testing.T) {
		for _, op := range []func(*statusWriter){
			func(sw *statusWriter) { _, _ = sw.Write([]byte("x")) },
			func(sw *statusWriter) {
				if err := http.NewResponseController(sw).Flush(); err != nil {
					t.Fatal(err)
				}
			},
		} {
			rec := httptest.NewRecorder()
			sw := &statusWriter{ResponseWriter: rec}
			op(sw)
			if sw.status != http.StatusOK || !rec.Flushed && rec.Body.Len() == 0 {
				t.Fatalf("status %d, flushed %v, body %q", sw.status, rec.Flushed, rec.Body)
			}
		}
	})
	t.Run("unwraps for the response controller", func(t *testing.T) {
		rec := httptest.NewRecorder()
		sw := &statusWriter{ResponseWriter: rec}
		if sw.Unwrap() != http.ResponseWriter(rec) {
			t.Fatal("Unwrap")
		}
		err := http.NewResponseController(sw).SetReadDeadline(time.Time{})
		if !errors.Is(err, http.ErrNotSupported) {
			t.Fatalf("SetReadDeadline through the wrapper: %v", err)
		}
	})
}

func TestPassthroughGuess(t *testing.T) {
	for path, want := range map[string]string{
		"/chat/completions":     "/v1/chat/completions",
		"/models":               "/v1/models",
		"/embeddings":           "/v1/embeddings",
		"/api/chat/completions": "/api/v1/chat/completions",
		"/api/models/a%2Fb":     "/api/v1/models/a%2Fb",
		"/v2/models":            "",
		"/favicon.ico":          "",
		"/":                     "",
		"":                      "",
		"/api/":                 "",
		"/chatter":              "",
	} {
		if got := passthroughGuess(path); got != want {
			t.Errorf("passthroughGuess(%q) = %q, want %q", path, got, want)
		}
	}
}
