// Package browser starts headless Chromium for tests that drive the console
// in a real browser (SPEC 12) through chromedp, and keeps screenshots of
// what they saw.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// Timeout bounds one browser test, Chromium's start included.
const Timeout = 90 * time.Second

// Start starts headless Chromium for a test, or skips (fails under
// NOCBRIDGE_REQUIRE_INTEROP=1) when there is none. It returns the tab's
// context and the directory screenshots go to: $NOCBRIDGE_ARTIFACTS/console
// when set, else a temporary directory.
func Start(t *testing.T) (context.Context, string) {
	t.Helper()
	path := os.Getenv("NOCBRIDGE_CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			netns.SkipOrFail(t, "browser tests need Chromium (Debian package chromium, or NOCBRIDGE_CHROMIUM=path): %v", err)
		}
	}
	dir := t.TempDir()
	if a := os.Getenv("NOCBRIDGE_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("lang", "en-US"))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	tctx, tcancel := chromedp.NewContext(actx)
	t.Cleanup(tcancel)
	if err := chromedp.Do(tctx); err != nil {
		netns.SkipOrFail(t, "Chromium at %s does not start: %v", path, err)
	}
	return tctx, dir
}

// Shot saves a full-page PNG screenshot as dir/name.png.
func Shot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	})
}

// Run runs the actions, failing the test with what it was doing.
func Run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Get runs one action and returns its value, failing the test with what it
// was doing.
func Get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}
