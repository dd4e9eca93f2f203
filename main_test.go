package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartupErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		want    string
	}{
		{"no keys", nil, nil, "OPENROUTER_API_KEY_1"},
		{"bad rotation", nil, []string{"OPENROUTER_API_KEY_1=sk-or-v1-xxxxxxxxxxxxxxxx", "KEY_ROTATION=often"}, "KEY_ROTATION"},
		{"bad port", nil, []string{"OPENROUTER_API_KEY_1=sk-or-v1-xxxxxxxxxxxxxxxx", "PORT=abc"}, "PORT"},
		{"bad base", nil, []string{"OPENROUTER_API_KEY_1=sk-or-v1-xxxxxxxxxxxxxxxx", "OPENROUTER_BASE_URL=%zz"}, "OPENROUTER_BASE_URL"},
		{"bad flag", []string{"-nope"}, nil, "-nope"},
		{"bad redis url", nil, []string{"OPENROUTER_API_KEY_1=sk-or-v1-xxxxxxxxxxxxxxxx", "REDIS_URL=http://localhost:6379"}, "REDIS_URL"},
		{"named env file missing", []string{"-env-file", "/nonexistent/keygate.env"}, []string{"OPENROUTER_API_KEY_1=sk-or-v1-xxxxxxxxxxxxxxxx"}, "/nonexistent/keygate.env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			empty := filepath.Join(t.TempDir(), "empty.env")
			if err := os.WriteFile(empty, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			code := run(append([]string{"-env-file", empty}, tc.args...), tc.environ, &out, &errb)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %q", code, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if tc.name != "bad flag" && len(lines) != 1 {
				t.Fatalf("want one line, got %q", errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("stderr %q does not name %s", errb.String(), tc.want)
			}
		})
	}
}

func TestHelpListsSettings(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-h"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{"-demo", "OPENROUTER_API_KEY_", "OPENROUTER_BASE_URL", "KEY_ROTATION", "random", "GATEWAY_API_KEYS",
		"RATE_LIMIT_COOLDOWN", "30s", "AUTH_FAILURE_COOLDOWN", "10m", "UPSTREAM_TIMEOUT", "120s", "MAX_BODY_BYTES", "LOG_FORMAT", "PORT", "4000"} {
		if !strings.Contains(errb.String(), s) {
			t.Errorf("-h lacks %q", s)
		}
	}
}

func TestHealthcheckFailsWithoutServer(t *testing.T) {
	var errb bytes.Buffer
	if code := healthcheck([]string{"PORT=1"}, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

// TestHealthcheckReadsPortFromDotenv: with PORT only in .env, as a gateway
// started from that directory reads it, healthcheck asks that port.
func TestHealthcheckReadsPortFromDotenv(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("PORT="+port+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	var errb bytes.Buffer
	if code := healthcheck(nil, &errb); code != 0 {
		t.Fatalf("exit %d with PORT=%s in .env: %s", code, port, errb.String())
	}
	if code := healthcheck([]string{"PORT=1"}, &errb); code != 1 {
		t.Fatalf("exit %d: the environment's PORT=1 must win over .env", code)
	}
}
