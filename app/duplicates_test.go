package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keygate/keygate/keysfile"
)

// TestReloadWarnsOfRepeatedKeys: a reload that reads a key twice warns as
// start-up does, whichever way it reads: the watcher's hand-on, a reload
// asked for before the watch starts, and one read through the watcher.
func TestReloadWarnsOfRepeatedKeys(t *testing.T) {
	const warning = "API Key #3 repeats API Key #1; using it once"
	path := filepath.Join(t.TempDir(), "keys.env")
	up := newUpstream(t)
	tests := []struct {
		name   string
		reload func(a *App)
	}{
		{"file changed", func(a *App) { a.Live.KeysChanged(keysfile.Read(path)) }},
		{"sighup", func(a *App) { a.Live.ReloadFrom("sighup") }},
		{"admin, through the watcher", func(a *App) {
			stop, err := a.WatchKeysFile()
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			a.Live.ReloadFrom("admin")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte("OPENROUTER_API_KEY_1="+liveKeys[1]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			a, logs := newLiveApp(t, up.URL, nil, Options{}, "KEYS_FILE="+path)
			if err := os.WriteFile(path, []byte("OPENROUTER_API_KEYS="+liveKeys[1]+","+liveKeys[2]+","+liveKeys[1]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.reload(a)
			if n := a.Relay.Pool().Len(); n != 2 {
				t.Fatalf("after the reload %d keys, want 2", n)
			}
			if !strings.Contains(logs.String(), warning) {
				t.Errorf("no %q in:\n%s", warning, logs)
			}
		})
	}
}
