package main

import (
	"strings"
	"testing"
)

// TestOffAPIWarningMasksSecrets (helper-77): the start-up warning about an
// OPENROUTER_BASE_URL off OpenRouter's API quotes its path, where a key or
// a token pasted into the URL is shown masked, as in every other line.
func TestOffAPIWarningMasksSecrets(t *testing.T) {
	const token = "cltok_CLIENTTOKENMIDDLEPART_0123456789_ab12"
	for name, path := range map[string]string{"pool key": shutdownKey, "client token": token} {
		t.Run(name, func(t *testing.T) {
			p := startProcess(t, "OPENROUTER_BASE_URL=https://openrouter.ai/api/v1/"+path, "GATEWAY_API_KEYS="+token, "BUDGET_POLL_INTERVAL=0")
			out := p.out.String()
			if !strings.Contains(out, "which is not its API") {
				t.Fatalf("no off-API warning:\n%s", out)
			}
			if strings.Contains(out, path) || strings.Contains(out, path[10:len(path)-5]) {
				t.Fatalf("start-up quotes the %s in the clear:\n%s", name, out)
			}
		})
	}
}
