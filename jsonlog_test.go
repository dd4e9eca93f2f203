package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJSONLogLinesHaveEvent: with LOG_FORMAT=json every line keygate
// writes, from the demo's banner through an access line to the last
// line of a shutdown, names its event, so that a log pipeline can route
// lines by it rather than by their wording.
func TestJSONLogLinesHaveEvent(t *testing.T) {
	url, out, cmd := runKeygate(t, t.TempDir(), []string{"-demo"}, "LOG_FORMAT=json")
	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"openai/gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the last line", func() bool { return strings.Contains(out.String(), "keygate stopped") }, out)
	time.Sleep(50 * time.Millisecond) // the process's exit, so no line is cut
	lines := bytes.Split(bytes.TrimSpace([]byte(out.String())), []byte("\n"))
	events := map[string]bool{}
	for _, l := range lines {
		var v struct {
			Event string `json:"event"`
			Msg   string `json:"msg"`
		}
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("a line that is not JSON: %s", l)
		}
		if v.Event == "" {
			t.Errorf("a line without event: %s", l)
		}
		events[v.Event] = true
	}
	for _, e := range []string{"demo", "client_auth_off", "listening", "access", "shutting_down", "stopped"} {
		if !events[e] {
			t.Errorf("no %q line in:\n%s", e, out)
		}
	}
}
