package keysfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/keyring"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitLimit bounds every wait for the watcher; it is a limit, not a timing
// assertion: each test ends as soon as its condition holds.
const waitLimit = 10 * time.Second

// reading is one call of the Handler.
type reading struct {
	f   File
	err error
}

// holder keeps the last good pool, as the gateway does, and every reading.
type holder struct {
	mu    sync.Mutex
	pool  []keyring.Entry
	calls []reading
	ch    chan reading
}

func newHolder(initial []keyring.Entry) *holder {
	return &holder{pool: initial, ch: make(chan reading, 64)}
}

func (h *holder) KeysChanged(f File, err error) {
	h.mu.Lock()
	if err == nil {
		h.pool = f.Entries
	}
	h.calls = append(h.calls, reading{f, err})
	h.mu.Unlock()
	h.ch <- reading{f, err}
}

func (h *holder) next(t *testing.T) reading {
	t.Helper()
	select {
	case r := <-h.ch:
		return r
	case <-time.After(waitLimit):
		t.Fatal("no reading of the keys file")
		return reading{}
	}
}

func (h *holder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.calls)
}

// keysIn makes the directory name in root, holding a keys.env of body.
func keysIn(t *testing.T, root, name, body string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(root, name), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, name, "keys.env"), body)
}

func startWatch(t *testing.T, path string, h Handler) *Watcher {
	t.Helper()
	w, err := Watch(path, h, Options{Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func TestWatchWriteInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.env")
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	h := newHolder(nil)
	startWatch(t, path, h)
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\nOPENROUTER_API_KEY_2="+k2+"\n")
	r := h.next(t)
	if r.err != nil || !slices.Equal(ids(r.f.Entries), []int{1, 2}) {
		t.Fatalf("reading = %v %v, want keys 1 and 2", ids(r.f.Entries), r.err)
	}
}

func TestWatchRenameOver(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.env")
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	h := newHolder(nil)
	startWatch(t, path, h)
	// As vim and most editors save: a new file renamed over the old.
	tmp := filepath.Join(dir, ".keys.env.swp")
	writeFile(t, tmp, "OPENROUTER_API_KEY_3="+k3+"\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	r := h.next(t)
	if r.err != nil || !slices.Equal(ids(r.f.Entries), []int{3}) {
		t.Fatalf("reading = %v %v, want key 3", ids(r.f.Entries), r.err)
	}
}

// TestWatchKubernetesSwap swaps a secret as the kubelet does: the file is a
// symlink through ..data, itself a symlink to a timestamped directory, and
// an update renames a new ..data symlink over the old one.
func TestWatchKubernetesSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, body string) { keysIn(t, dir, name, body) }
	version("..2026_12_01_10_00_00.1", "OPENROUTER_API_KEY_1="+k1+"\n")
	if err := os.Symlink("..2026_12_01_10_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "keys.env")
	if err := os.Symlink(filepath.Join("..data", "keys.env"), path); err != nil {
		t.Fatal(err)
	}
	h := newHolder(nil)
	startWatch(t, path, h)

	version("..2026_12_01_10_05_00.2", "OPENROUTER_API_KEY_1="+k1+"\nOPENROUTER_API_KEY_2="+k2+"\n")
	if err := os.Symlink("..2026_12_01_10_05_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_12_01_10_00_00.1")); err != nil {
		t.Fatal(err)
	}
	r := h.next(t)
	if r.err != nil || !slices.Equal(ids(r.f.Entries), []int{1, 2}) {
		t.Fatalf("reading = %v %v, want keys 1 and 2", ids(r.f.Entries), r.err)
	}
}

func TestWatchRefusesBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.env")
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	initial, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	h := newHolder(initial.Entries)
	startWatch(t, path, h)

	for _, tc := range []struct {
		body string
		want error
	}{
		{"OPENROUTER_API_KEY_1 " + k1 + "\n", ErrSyntax},
		{"# all keys removed\n", ErrNoKeys},
	} {
		writeFile(t, path, tc.body)
		r := h.next(t)
		if !errors.Is(r.err, tc.want) {
			t.Fatalf("reading err = %v, want %v", r.err, tc.want)
		}
		h.mu.Lock()
		kept := ids(h.pool)
		h.mu.Unlock()
		if !slices.Equal(kept, []int{1}) {
			t.Fatalf("pool after a refusal = %v, want the last good [1]", kept)
		}
	}
	writeFile(t, path, "OPENROUTER_API_KEY_2="+k2+"\n")
	if r := h.next(t); r.err != nil || !slices.Equal(ids(r.f.Entries), []int{2}) {
		t.Fatalf("reading after the fix = %v %v, want key 2", ids(r.f.Entries), r.err)
	}
}

func TestWatchMissingFileReportedOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.env")
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	h := newHolder(nil)
	startWatch(t, path, h)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if r := h.next(t); !errors.Is(r.err, os.ErrNotExist) {
		t.Fatalf("reading err = %v, want ErrNotExist", r.err)
	}
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	if r := h.next(t); r.err != nil {
		t.Fatalf("file back: err = %v", r.err)
	}
}

// fakeTimer stands for the debounce timer: it fires only when the test says.
type fakeTimer struct{ ch chan time.Time }

func (f *fakeTimer) after(time.Duration) <-chan time.Time { return f.ch }

// fakeWatch is a watcher whose debounce timer is the test's.
func fakeWatch(t *testing.T, path string, h Handler) (*Watcher, *fakeTimer) {
	t.Helper()
	ft := &fakeTimer{ch: make(chan time.Time)}
	w, err := watch(path, h, Options{}, ft.after)
	if err != nil {
		t.Fatal(err)
	}
	return w, ft
}

func waitEvents(t *testing.T, w *Watcher, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for w.events.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d directory events, want %d", w.events.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchDebouncesBursts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.env")
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	h := newHolder(nil)
	w, ft := fakeWatch(t, path, h)
	const writes = 20
	for i := range writes {
		body := "OPENROUTER_API_KEY_1=" + k1 + "\n"
		if i == writes-1 {
			body += "OPENROUTER_API_KEY_2=" + k2 + "\n"
		}
		writeFile(t, path, body)
		// inotify merges an event into an identical unread one, so the
		// keys file's own writes may count as fewer than writes; a
		// differently named neighbour per write cannot be merged, which
		// makes writes events a count the burst surely reaches.
		writeFile(t, filepath.Join(filepath.Dir(path), fmt.Sprintf("tmp-%d", i)), "x\n")
	}
	waitEvents(t, w, writes)
	ft.ch <- time.Now() // the directory went quiet
	r := h.next(t)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if r.err != nil || !slices.Equal(ids(r.f.Entries), []int{1, 2}) {
		t.Fatalf("reading = %v %v, want the last write's keys 1 and 2", ids(r.f.Entries), r.err)
	}
	if n := h.count(); n != 1 {
		t.Fatalf("%d readings for a burst of %d writes, want 1", n, writes)
	}
}

func TestWatchIgnoresUnchangedContents(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.env")
	body := "OPENROUTER_API_KEY_1=" + k1 + "\n"
	writeFile(t, path, body)
	h := newHolder(nil)
	w, ft := fakeWatch(t, path, h)
	writeFile(t, path, body)                             // rewritten, same bytes
	writeFile(t, filepath.Join(dir, "other.txt"), "x\n") // a neighbour changed
	waitEvents(t, w, 2)
	ft.ch <- time.Now()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.count(); n != 0 {
		t.Fatalf("%d readings of unchanged contents, want 0", n)
	}
}

// TestReadNowCountsAsSeen: contents read by ReadNow (SIGHUP, the admin
// reload) are not handed to the Handler again when the watcher notices them.
func TestReadNowCountsAsSeen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.env")
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	h := newHolder(nil)
	w, ft := fakeWatch(t, path, h)
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\nOPENROUTER_API_KEY_2="+k2+"\n")
	f, err := w.ReadNow()
	if err != nil || !slices.Equal(ids(f.Entries), []int{1, 2}) {
		t.Fatalf("ReadNow = %v %v", ids(f.Entries), err)
	}
	waitEvents(t, w, 1)
	ft.ch <- time.Now()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.count(); n != 0 {
		t.Fatalf("%d readings of contents ReadNow had read, want 0", n)
	}
}

func TestWatchMissingDirectory(t *testing.T) {
	_, err := Watch(filepath.Join(t.TempDir(), "no", "keys.env"), newHolder(nil), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

func TestCloseTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.env")
	writeFile(t, path, "OPENROUTER_API_KEY_1="+k1+"\n")
	w, err := Watch(path, newHolder(nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOnHangup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal)
	calls := make(chan struct{}, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		OnHangup(ctx, sigs, func() { calls <- struct{}{} })
	}()
	for range 2 {
		sigs <- os.Interrupt
		<-calls
	}
	cancel()
	<-done
}

// TestWatchSymlinkElsewhere: the file is a symlink to a file in another
// directory, edited in place there; and then pointed at a third directory.
func TestWatchSymlinkElsewhere(t *testing.T) {
	dir, secrets, other := t.TempDir(), t.TempDir(), t.TempDir()
	target := filepath.Join(secrets, "keys.env")
	writeFile(t, target, "OPENROUTER_API_KEY_1="+k1+"\n")
	path := filepath.Join(dir, "keys.env")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	h := newHolder(nil)
	startWatch(t, path, h)
	writeFile(t, target, "OPENROUTER_API_KEY_2="+k2+"\n")
	if r := h.next(t); r.err != nil || !slices.Equal(ids(r.f.Entries), []int{2}) {
		t.Fatalf("reading = %v %v, want key 2", ids(r.f.Entries), r.err)
	}
	// Re-pointed (a new symlink renamed over the old): the new target's
	// directory is watched from then on.
	target2 := filepath.Join(other, "keys.env")
	writeFile(t, target2, "OPENROUTER_API_KEY_3="+k3+"\n")
	tmp := filepath.Join(dir, "keys.env.tmp")
	if err := os.Symlink(target2, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if r := h.next(t); r.err != nil || !slices.Equal(ids(r.f.Entries), []int{3}) {
		t.Fatalf("reading = %v %v, want key 3", ids(r.f.Entries), r.err)
	}
	writeFile(t, target2, "OPENROUTER_API_KEY_1="+k1+"\nOPENROUTER_API_KEY_3="+k3+"\n")
	if r := h.next(t); r.err != nil || !slices.Equal(ids(r.f.Entries), []int{1, 3}) {
		t.Fatalf("reading = %v %v, want keys 1 and 3", ids(r.f.Entries), r.err)
	}
}

// TestWatchDirectorySymlinkSwap: KEYS_FILE=<root>/current/keys.env with
// current a symlink to a release directory, swapped as deploy tools do (a
// new symlink renamed over it); the swap happens in root, and the file in
// the new release is then watched where it is.
func TestWatchDirectorySymlinkSwap(t *testing.T) {
	root := t.TempDir()
	release := func(name, body string) { keysIn(t, root, name, body) }
	swap := func(to string) {
		tmp := filepath.Join(root, "current.new")
		if err := os.Symlink(to, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(root, "current")); err != nil {
			t.Fatal(err)
		}
	}
	release("rel1", "OPENROUTER_API_KEY_1="+k1+"\n")
	if err := os.Symlink("rel1", filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	h := newHolder(nil)
	startWatch(t, filepath.Join(root, "current", "keys.env"), h)

	release("rel2", "OPENROUTER_API_KEY_1="+k1+"\nOPENROUTER_API_KEY_2="+k2+"\n")
	swap("rel2")
	if r := h.next(t); r.err != nil || !slices.Equal(ids(r.f.Entries), []int{1, 2}) {
		t.Fatalf("reading = %v %v, want keys 1 and 2 of rel2", ids(r.f.Entries), r.err)
	}
	// The file in rel2 edited in place, and rel1's (no longer current) too.
	writeFile(t, filepath.Join(root, "rel1", "keys.env"), "OPENROUTER_API_KEY_9="+k3+"\n")
	writeFile(t, filepath.Join(root, "rel2", "keys.env"), "OPENROUTER_API_KEY_3="+k3+"\n")
	if r := h.next(t); r.err != nil || !slices.Equal(ids(r.f.Entries), []int{3}) {
		t.Fatalf("reading = %v %v, want key 3 of rel2", ids(r.f.Entries), r.err)
	}
	swap("rel1")
	if r := h.next(t); r.err != nil || !slices.Equal(ids(r.f.Entries), []int{9}) {
		t.Fatalf("reading = %v %v, want key 9 of rel1", ids(r.f.Entries), r.err)
	}
}

func TestWithin(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		dir  string
		want bool
	}{
		{base, true},
		{filepath.Join(base, "..data"), true},
		{filepath.Join(base, "..2026_12_01", "x"), true},
		{filepath.Dir(base), false},
		{base + "x", false},
		{filepath.Join(filepath.Dir(base), "..other"), false},
	}
	for _, tt := range tests {
		if got := within(tt.dir, base); got != tt.want {
			t.Errorf("within(%q, %q) = %v, want %v", tt.dir, base, got, tt.want)
		}
	}
}
