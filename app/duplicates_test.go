package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keygate/keygate/admin"
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

// TestReloadAnswerListsRepeatedKeys: POST /admin/reload's answer names the
// ids whose key repeats an earlier one, as the console warns; the operator
// who asked saw "keys": 2 for a file of three and no word why.
func TestReloadAnswerListsRepeatedKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.env")
	if err := os.WriteFile(path, []byte("OPENROUTER_API_KEY_1="+liveKeys[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _ := newLiveApp(t, newUpstream(t).URL, nil, Options{}, "KEYS_FILE="+path)
	for _, tt := range []struct {
		file string
		want []admin.Repeat
	}{
		{"OPENROUTER_API_KEYS=" + liveKeys[1] + "," + liveKeys[2] + "," + liveKeys[1] + "\n", []admin.Repeat{{ID: 3, SameAs: 1}}},
		{"OPENROUTER_API_KEYS=" + liveKeys[1] + "," + liveKeys[2] + "\n", nil},
	} {
		if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := a.Live.Reload(context.Background())
		if err != nil || res.Refused != "" {
			t.Fatalf("reload: %v %q", err, res.Refused)
		}
		if !slices.Equal(res.Repeated, tt.want) || res.Keys != 2 {
			t.Errorf("reload of %q: %d keys, repeated %v; want 2, %v", tt.file, res.Keys, res.Repeated, tt.want)
		}
	}
}
