package keysfile

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the directory must stay quiet before the file
// is re-read: an editor's save or a Kubernetes secret swap is a burst of a
// few events within milliseconds, and one reading should answer it.
const DefaultDebounce = 200 * time.Millisecond

// Handler receives every reading of a watched file that differs from the
// last one it was given.
type Handler interface {
	// KeysChanged gets the new pool, or (err != nil, f zero) why the file
	// was refused; on a refusal the last good pool stands. It is called
	// from the watcher's goroutine, one call at a time, and must not call
	// the Watcher's Close.
	KeysChanged(f File, err error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(File, error)

// KeysChanged calls fn.
func (fn HandlerFunc) KeysChanged(f File, err error) { fn(f, err) }

// Watcher re-reads a keys file when its directory changes. It watches the
// parent directory, not the file: editors save by renaming a new file over
// the old one, and Kubernetes swaps a secret by replacing the ..data
// symlink, neither of which a watch on the file itself would see.
type Watcher struct {
	path    string
	h       Handler
	fs      *fsnotify.Watcher
	after   func(time.Duration) <-chan time.Time
	wait    time.Duration
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	events  atomic.Int64 // directory events seen, for tests
	mu      sync.Mutex   // guards seen, between the loop and ReadNow
	seen    [sha256.Size]byte
	seenErr string
	dir     string // path's directory, always watched
	realDir string // where dir led when its watch was added; loop only
	// extra are the directories watched beside dir (follow); loop only.
	extra map[string]bool
}

// Options tune a Watcher; the zero value is the defaults.
type Options struct {
	// Debounce is the quiet time before a re-read; 0 means DefaultDebounce.
	Debounce time.Duration
}

// Watch starts watching path's directory. The file as it is now counts as
// seen (the caller has read it at start-up): only a change is handed to h.
func Watch(path string, h Handler, opt Options) (*Watcher, error) {
	return watch(path, h, opt, time.After)
}

// watch is Watch with the debounce timer injected, for tests.
func watch(path string, h Handler, opt Options, after func(time.Duration) <-chan time.Time) (*Watcher, error) {
	if opt.Debounce <= 0 {
		opt.Debounce = DefaultDebounce
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching keys file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := fw.Add(dir); err != nil {
		_ = fw.Close()
		return nil, fmt.Errorf("watching keys file %s: directory %s: %w", path, dir, err)
	}
	w := &Watcher{
		path: path, h: h, fs: fw, after: after, wait: opt.Debounce,
		stop: make(chan struct{}), done: make(chan struct{}), dir: dir, extra: map[string]bool{},
	}
	w.realDir, _ = filepath.EvalSymlinks(dir)
	w.follow()
	w.seen, w.seenErr = w.sum()
	go w.loop()
	return w, nil
}

// Close stops the watcher and waits until its goroutine has returned (and
// with it any KeysChanged call under way).
func (w *Watcher) Close() error {
	var err error
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		err = w.fs.Close()
	})
	return err
}

// ReadNow reads the file at once, as SIGHUP and POST /admin/reload ask, and
// counts the reading as seen, so that the watcher does not hand the same
// contents to the Handler again.
func (w *Watcher) ReadNow() (File, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := Read(w.path)
	w.record(f, err)
	return f, err
}

func (w *Watcher) loop() {
	defer close(w.done)
	var fire <-chan time.Time
	for {
		select {
		case <-w.stop:
			return
		case _, ok := <-w.fs.Events:
			if !ok {
				return
			}
			// Every event in the directory counts: the names that matter
			// differ by tool (the file, a temporary, ..data, a timestamped
			// directory), and an unchanged file is filtered by its sum.
			w.events.Add(1)
			fire = w.after(w.wait)
		case _, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// An overflow lost events: read again to be sure.
			fire = w.after(w.wait)
		case <-fire:
			fire = nil
			w.check()
		}
	}
}

// follow keeps the watches a change of the file can be seen by, beyond
// path's own directory:
//   - the directory of path's symlink target when it lies outside it
//     (keys.env -> ~/secrets/keys.env edited in place changes nothing in
//     keys.env's directory; a target inside it, as Kubernetes' ..data/
//     is, needs nothing more);
//   - the directory holding each symlink on the way to path's directory
//     (KEYS_FILE=/srv/current/keys.env with current -> releases/7: a swap
//     of current happens in /srv, and a watch on /srv/current stays on
//     releases/7);
//   - path's directory again, when it now leads elsewhere (after such a
//     swap), since a watch stays on the directory it was added on.
func (w *Watcher) follow() {
	want := map[string]bool{}
	if real, err := filepath.EvalSymlinks(w.path); err == nil {
		if d := filepath.Dir(real); !within(d, w.dir) {
			want[d] = true
		}
	}
	for _, link := range symlinksTo(w.dir) {
		want[filepath.Dir(link)] = true
	}
	for d := range w.extra {
		if !want[d] {
			_ = w.fs.Remove(d) // it may be gone already
			delete(w.extra, d)
		}
	}
	for d := range want {
		if !w.extra[d] && w.fs.Add(d) == nil {
			w.extra[d] = true
		}
	}
	if real, err := filepath.EvalSymlinks(w.dir); err == nil && real != w.realDir {
		_ = w.fs.Remove(w.dir)
		if w.fs.Add(w.dir) == nil {
			w.realDir = real
		}
	}
}

// symlinksTo lists dir and those of its ancestors that are symlinks.
func symlinksTo(dir string) []string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	var links []string
	for p := abs; p != filepath.Dir(p); p = filepath.Dir(p) {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			links = append(links, p)
		}
	}
	return links
}

// within reports whether dir is base or below it, after resolving base's
// own symlinks.
func within(dir, base string) bool {
	if b, err := filepath.EvalSymlinks(base); err == nil {
		base = b
	}
	rel, err := filepath.Rel(base, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// check reads the file and hands it on when it differs from what was seen.
func (w *Watcher) check() {
	w.follow()
	w.mu.Lock()
	sum, sumErr := w.sum()
	if sum == w.seen && sumErr == w.seenErr {
		w.mu.Unlock()
		return
	}
	f, err := Read(w.path)
	w.record(f, err)
	w.mu.Unlock()
	w.h.KeysChanged(f, err)
}

// record notes a reading as seen; w.mu is held.
func (w *Watcher) record(f File, err error) {
	if err == nil {
		w.seen, w.seenErr = f.Sum, ""
		return
	}
	w.seen, w.seenErr = w.sum()
}

// sum is the SHA-256 of the file's bytes, or the text of why it cannot be
// read (a missing file is a state of its own, reported once).
func (w *Watcher) sum() ([sha256.Size]byte, string) {
	data, err := readLimited(w.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return [sha256.Size]byte{}, "missing"
		}
		return [sha256.Size]byte{}, err.Error()
	}
	return sha256.Sum256(data), ""
}

// OnHangup calls reload for every signal on sigs until ctx ends. The caller
// owns the channel: signal.Notify(sigs, syscall.SIGHUP) before, and
// signal.Stop(sigs) after.
func OnHangup(ctx context.Context, sigs <-chan os.Signal, reload func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-sigs:
			if !ok {
				return
			}
			reload()
		}
	}
}
