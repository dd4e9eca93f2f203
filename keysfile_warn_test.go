package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartupWarnsOfKeysFileKeys: with KEYS_FILE the pool is the file's,
// so start-up's warnings about keys (one OpenRouter would refuse, one
// short enough to be a word, a near-miss variable whose key is not read)
// are about the file's keys, and none is about the key variables of the
// environment, which are ignored.
func TestStartupWarnsOfKeysFileKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys.env")
	if err := os.WriteFile(file, []byte(
		"OPENROUTER_API_KEY_1="+shutdownKey+"\n"+
			"OPENROUTER_API_KEY_2=gsk_4f9Kd83jS0a8f7D6s5A4q3W2e1R0t9Y8u7I6\n"+
			"OPENROUTER_API_KEY_3=EMPTY\n"+
			"OPENROUTER_API_KEY4=sk-or-v1-0000000000000000000000000000000000000000000000000000000000c0ffee\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "KEYS_FILE="+file, "OPENROUTER_BASE_URL=https://openrouter.ai/api/v1", "BUDGET_POLL_INTERVAL=0",
		// Ignored (the file is the pool), and so warned of as ignored only.
		"OPENROUTER_API_KEY_7=EMPTY2", "OPENROUTER_API_KEY_8=sk-proj-0123456789abcdef0123456789abcdef")
	out := p.out.String()
	for _, want := range []string{
		"ignoring OPENROUTER_API_KEY_1, OPENROUTER_API_KEY_7, OPENROUTER_API_KEY_8",
		"⚠️  API Key #2 does not look like an OpenRouter key",
		"⚠️  API Key #3 is shorter than 16 characters",
		"⚠️  OPENROUTER_API_KEY4 is set but is not a key variable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	for _, bad := range []string{"API Key #7", "API Key #8"} {
		if strings.Contains(out, bad) {
			t.Errorf("console warns of %s, an ignored environment variable, as a pool key", bad)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", out)
	}
}
