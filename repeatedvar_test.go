package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestStartupWarnsOfRepeatedVariable: a key line pasted under a name the
// file already uses (a new OPENROUTER_API_KEY_2 beside the old one) kept
// the last value and dropped the other key without a word. Start-up and a
// reload name the variable and the file, for a .env and a KEYS_FILE.
func TestStartupWarnsOfRepeatedVariable(t *testing.T) {
	const want = "OPENROUTER_API_KEY_2 is set on more than one line of "
	t.Run(".env", func(t *testing.T) {
		dir := t.TempDir()
		env := filepath.Join(dir, "keys.env")
		pasted := keyLines(2) + "OPENROUTER_API_KEY_2=" + hangupKeys[2] + "\n"
		if err := os.WriteFile(env, []byte(pasted), 0o600); err != nil {
			t.Fatal(err)
		}
		url, out, _ := runKeygate(t, dir, []string{"-env-file", env})
		if got := keyIDs(t, url); len(got) != 2 {
			t.Fatalf("keys %v, want 2", got)
		}
		if !strings.Contains(out.String(), want+env+": only the last counts, so a key under that name earlier in the file is not in the pool") {
			t.Errorf("no warning of the repeated variable:\n%s", out)
		}
		if strings.Contains(out.String(), "OPENROUTER_API_KEY_1 is set on more") {
			t.Errorf("warned of a variable set once:\n%s", out)
		}
	})
	t.Run("KEYS_FILE, at start and on reload", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "pool.env")
		if err := os.WriteFile(path, []byte(keyLines(2)+"OPENROUTER_API_KEY_1="+hangupKeys[2]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		url, out, cmd := runKeygate(t, dir, []string{"-env-file", "/dev/null"}, "KEYS_FILE="+path)
		if !strings.Contains(out.String(), "OPENROUTER_API_KEY_1 is set on more than one line of "+path) {
			t.Errorf("no warning of the repeated variable at start:\n%s", out)
		}
		if err := os.WriteFile(path, []byte(keyLines(2)+"OPENROUTER_API_KEY_2="+hangupKeys[2]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the warning after the reload", func() bool { return strings.Contains(out.String(), want+path) }, out)
		if got := keyIDs(t, url); len(got) != 2 {
			t.Fatalf("keys %v, want 2", got)
		}
	})
}
