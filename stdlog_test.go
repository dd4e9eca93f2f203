package main

import (
	stdlog "log"
	"log/slog"
	"strings"
	"testing"

	"github.com/keygate/keygate/secret"
)

// TestRouteStdLog: a line Go's own packages write with the standard logger
// (net/http's transport quoting an upstream's stray bytes) goes through
// keygate's logger and its redactor, and the standard logger is put back
// after.
func TestRouteStdLog(t *testing.T) {
	k := secret.New(shutdownKey)
	var out strings.Builder
	l := slog.New(secret.NewLogHandler(slog.NewTextHandler(&out, nil), secret.NewRedactor([]secret.Key{k})))
	before := stdlog.Writer()
	restore := routeStdLog(l)
	stdlog.Printf("Unsolicited response received on idle HTTP channel starting with %q", `{"error":"Invalid API key `+shutdownKey+`"}`)
	restore()
	got := out.String()
	if strings.Contains(got, shutdownKey) || !strings.Contains(got, "Unsolicited response") || !strings.Contains(got, "level=WARN") {
		t.Errorf("standard logger's line through keygate's logger: %q", got)
	}
	if stdlog.Writer() != before {
		t.Error("the standard logger was not put back")
	}
}
