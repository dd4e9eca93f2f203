package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTextWarningsSayWhy: with the text console, a passthrough call that
// cannot reach upstream and a REDIS_URL that cannot be reached are warned
// of with their cause (connection refused), as /run's "❌ … failed" line
// and the JSON log's err field give it: "upstream request failed" alone
// leaves the operator of a wrong OPENROUTER_BASE_URL or REDIS_URL guessing.
func TestTextWarningsSayWhy(t *testing.T) {
	p := startProcess(t, "OPENROUTER_BASE_URL=http://127.0.0.1:1/api/v1", "BUDGET_POLL_INTERVAL=0",
		"REDIS_URL=redis://127.0.0.1:1/0")
	resp, err := http.Post(p.url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"a/b","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, want := range []string{"upstream request failed", "redis unreachable"} {
		var line string
		for deadline := time.Now().Add(10 * time.Second); line == ""; time.Sleep(20 * time.Millisecond) {
			for l := range strings.SplitSeq(p.out.String(), "\n") {
				if strings.Contains(l, want) {
					line = l
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q line:\n%s", want, p.out)
			}
		}
		if !strings.Contains(line, "connection refused") {
			t.Errorf("the %q line does not say why: %q", want, line)
		}
	}
}
