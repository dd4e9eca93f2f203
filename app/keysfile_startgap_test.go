package app

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestKeysFileChangedBeforeTheWatch: KEYS_FILE changes after New read it
// and before Serve starts watching it (the gap of start-up: listening,
// warnings, the profiler). The change is put in force, as any later one
// is: the watch used to count the file as it was when the watch began as
// already seen, so the pool stayed the one read at New until the file
// changed again.
func TestKeysFileChangedBeforeTheWatch(t *testing.T) {
	noLeak(t)
	up := newUpstream(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.env")
	write := func(body string) {
		tmp := filepath.Join(dir, ".keys.tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("OPENROUTER_API_KEY_1=" + liveKeys[1] + "\n")
	a, _ := newLiveApp(t, up.URL, nil, Options{}, "KEYS_FILE="+path)
	write("OPENROUTER_API_KEY_1=" + liveKeys[1] + "\nOPENROUTER_API_KEY_2=" + liveKeys[2] + "\n")
	serveLoopback(t, a)
	deadline := time.Now().Add(3 * time.Second)
	for a.Relay.Pool().Len() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("pool of %d keys 3s after serving; the file holds 2", a.Relay.Pool().Len())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
