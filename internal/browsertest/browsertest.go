// Package browsertest drives headless Chromium (chromedp) for the tests of
// the status page: the page's own tests over a fake pool and the end-to-end
// tests over a real gateway share it.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// LiveWait bounds how long the page may take to show a change of the pool:
// a poll is every 1.5 s, so a few seconds. PageWait bounds everything else
// (a page load, an answer to a click), generous for a loaded machine: both
// are limits, not timings; a wait ends as soon as its condition holds.
const (
	LiveWait = 5 * time.Second
	PageWait = 15 * time.Second
)

// Chromium finds the browser; missing, the test skips, except under CI,
// where it fails.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found (CI=true): install Debian's chromium")
	}
	t.Skip("chromium not found")
	return ""
}

// Browser starts one headless Chromium for the test, cut off from every
// network but loopback.
func Browser(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-pings", true),
		// Any name but loopback fails to resolve: the page must need
		// nothing beyond keygate, and the browser calls nowhere.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// Tab opens a new tab on the browser, bounded in time as a whole.
func Tab(t testing.TB, b context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelT)
	return ctx
}

// Do runs steps, failing the test on an error.
func Do(t testing.TB, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// Until waits for a JavaScript condition on the page, at most PageWait.
func Until(t testing.TB, ctx context.Context, what, js string) {
	t.Helper()
	UntilWithin(t, ctx, PageWait, what, js)
}

// UntilWithin waits for a JavaScript condition on the page, at most limit.
func UntilWithin(t testing.TB, ctx context.Context, limit time.Duration, what, js string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingTimeout(limit), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Eval evaluates js on the page.
func Eval[T any](t testing.TB, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// Login types token into the page's prompt and sends it.
func Login(t testing.TB, ctx context.Context, token string) {
	t.Helper()
	Do(t, ctx,
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
	)
}

// RowsJS counts the key rows on the page.
const RowsJS = `document.querySelectorAll('#keys tbody tr').length`

// Screenshot saves the whole page as name under $KEYGATE_ARTIFACTS (a
// temporary directory without it) and returns the PNG.
func Screenshot(t testing.TB, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("KEYGATE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return png
}
