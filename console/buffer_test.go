package console_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keygate/keygate/console"
)

// waitFor polls cond for a bounded time: the background flush is timed, the
// test only waits for its effect.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

func TestLineBufferHoldsInfoLinesAndFlushesUrgentOnes(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			w := &writes{t: t}
			// An hour: only Flush, Close or an urgent record write here.
			b := console.NewLineBuffer(w, time.Hour)
			log := console.New(b, format, slog.LevelDebug).With("component", "test")
			log.Info("one")
			log.Debug("two")
			if got := w.all(); len(got) != 0 {
				t.Fatalf("info lines written at once: %q", got)
			}
			log.Warn("three")
			got := w.all()
			if len(got) != 1 {
				t.Fatalf("an urgent record took %d writes, want 1 (the batch): %q", len(got), got)
			}
			for i, msg := range []string{"one", "two", "three"} {
				if n := strings.Count(got[0], "\n"); n != 3 {
					t.Fatalf("batch has %d lines, want 3: %q", n, got[0])
				}
				if line := strings.Split(got[0], "\n")[i]; !strings.Contains(line, msg) {
					t.Errorf("line %d is %q, want it to hold %q", i, line, msg)
				}
			}
			log.Info("four")
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			log.Info("five")
			got = w.all()
			if len(got) != 3 || !strings.Contains(got[1], "four") || !strings.Contains(got[2], "five") {
				t.Fatalf("after Close: writes %q, want the rest, then each line as it comes", got)
			}
		})
	}
}

func TestLineBufferFlushesOnItsOwn(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := &writes{t: t}
	b := console.NewLineBuffer(w, time.Millisecond)
	defer b.Close()
	if _, err := b.Write([]byte("a line\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the timer's flush", func() bool { return len(w.all()) == 1 })
	if _, err := b.Write([]byte("another\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the timer's second flush", func() bool { return len(w.all()) == 2 })
	if got := w.all(); got[0] != "a line\n" || got[1] != "another\n" {
		t.Fatalf("writes %q", got)
	}
}

func TestLineBufferBatchesEndBetweenLines(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := &writes{t: t}
	// An hour: only a full batch, Flush or Close write here.
	b := console.NewLineBuffer(w, time.Hour)
	line := strings.Repeat("x", 999) + "\n"
	var want strings.Builder
	for batch := 1; batch <= 3; batch++ {
		for range 40 { // 40 kB: more than a batch
			if _, err := b.Write([]byte(line)); err != nil {
				t.Fatal(err)
			}
			want.WriteString(line)
		}
		waitFor(t, fmt.Sprintf("full batch %d written in the background", batch), func() bool { return len(w.all()) == batch })
	}
	long := strings.Repeat("y", 2<<20) + "\n" // longer than the backlog
	if _, err := b.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	want.WriteString(long)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := w.all()
	var all strings.Builder
	for _, g := range got {
		if !strings.HasSuffix(g, "\n") {
			t.Fatalf("a write ends inside a line: ...%q", g[max(0, len(g)-20):])
		}
		all.WriteString(g)
	}
	if got[len(got)-1] != long {
		t.Error("the line longer than the backlog was not written on its own")
	}
	if all.String() != want.String() {
		t.Fatal("the lines came out changed or out of order")
	}
}

// A full batch goes out in the background, and while the console is stuck
// on it, lines gather behind it up to the backlog without their Writes
// waiting; past the backlog a Write waits its turn, and nothing is lost.
func TestLineBufferFullBatchDoesNotWaitOnTheConsole(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
	b := console.NewLineBuffer(w, time.Hour)
	line := strings.Repeat("z", 99) + "\n"
	var want strings.Builder // written by one goroutine at a time
	lines := func(n int) chan error {
		done := make(chan error, 1)
		go func() {
			for range n {
				if _, err := b.Write([]byte(line)); err != nil {
					done <- err
					return
				}
				want.WriteString(line)
			}
			done <- nil
		}()
		return done
	}
	full := lines(400) // 40 kB: the batch is full, and its write gets stuck
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("a full batch was not written without Flush, Close or the timer")
	}
	w.await(t, full, "the Write that filled the batch waited on the console's write")
	w.await(t, lines(5000), "a Write waited on the console's write with the backlog not full") // 500 kB more
	over := lines(6000)                                                                        // 600 kB more: past the backlog
	select {
	case <-over:
		t.Error("the backlog grew past its bound while the console was stuck")
	case <-time.After(100 * time.Millisecond):
	}
	if w.drain(t, b, over) != want.String() {
		t.Fatal("the lines came out changed, lost or out of order")
	}
}

// failing fails every write.
type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLineBufferReportsWriteErrors(t *testing.T) {
	b := console.NewLineBuffer(failing{}, time.Millisecond)
	defer b.Close()
	if _, err := b.Write([]byte("held\n")); err != nil {
		t.Fatalf("a held line failed: %v", err)
	}
	// The timer's write fails; the next Write says so.
	waitFor(t, "the background write's error", func() bool {
		_, err := b.Write([]byte("next\n"))
		return err != nil
	})
	if err := b.Flush(); err == nil {
		t.Fatal("Flush on a failing writer returned nil")
	}
}

func TestLineBufferBeforeFlushesFirst(t *testing.T) {
	w := &writes{t: t}
	b := console.NewLineBuffer(w, time.Hour)
	defer b.Close()
	errw := b.Before(w)
	if _, err := b.Write([]byte("log line\n")); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(errw, "keygate: failed")
	if got := w.all(); len(got) != 2 || got[0] != "log line\n" || got[1] != "keygate: failed\n" {
		t.Fatalf("writes %q, want the log line first", got)
	}
}

func TestLineBufferConcurrentLinesStayWhole(t *testing.T) {
	w := &writes{t: t}
	b := console.NewLineBuffer(w, time.Millisecond)
	log := console.New(b, "text", slog.LevelInfo)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				log.Info(fmt.Sprintf("g%d line %d", g, i))
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, g := range w.all() {
		for line := range strings.SplitSeq(strings.TrimSuffix(g, "\n"), "\n") {
			var who string
			var i int
			if _, err := fmt.Sscanf(line, "%s line %d", &who, &i); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if i != next[who] {
				t.Fatalf("%s: line %d after %d", who, i, next[who]-1)
			}
			next[who]++
		}
	}
	for g := range 8 {
		if n := next[fmt.Sprintf("g%d", g)]; n != 200 {
			t.Errorf("g%d: %d lines, want 200", g, n)
		}
	}
}

// stuckWriter blocks its first Write until release is closed.
type stuckWriter struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	got     strings.Builder
	calls   int
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.calls++
	first := w.calls == 1
	w.mu.Unlock()
	if first {
		close(w.entered)
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got.Write(p)
}

// await waits for done, a call that must not wait on the stuck write;
// after 10 s it fails with what, letting the write go.
func (w *stuckWriter) await(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(w.release)
		t.Fatal(what)
	}
}

// drain lets the stuck write go on, waits for done (the call that was
// stuck behind it), closes b and returns what the console got.
func (w *stuckWriter) drain(t *testing.T, b *console.LineBuffer, done <-chan error) string {
	t.Helper()
	close(w.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got.String()
}

// A line is taken while a batch is being written: the buffer's lock is not
// held across the write to the console, so a request that logs never waits
// on a slow console.
func TestLineBufferWriteDoesNotWaitOnAWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	w := &stuckWriter{entered: make(chan struct{}), release: make(chan struct{})}
	b := console.NewLineBuffer(w, time.Hour)
	if _, err := b.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- b.Flush() }()
	<-w.entered // the batch's write is under way, and stuck
	wrote := make(chan error, 1)
	go func() { _, err := b.Write([]byte("second\n")); wrote <- err }()
	w.await(t, wrote, "a line's Write waited on the console's write")
	if got := w.drain(t, b, flushed); got != "first\nsecond\n" {
		t.Fatalf("console got %q, want the lines once, in order", got)
	}
}
