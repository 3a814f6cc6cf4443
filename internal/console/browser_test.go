package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// browserTimeout bounds one browser test, Chromium's start included.
const browserTimeout = 90 * time.Second

// browser starts headless Chromium for a test, or skips (fails under
// NOCBRIDGE_REQUIRE_INTEROP=1) when there is none. It returns the tab's
// context and the directory screenshots go to: $NOCBRIDGE_ARTIFACTS/console
// when set, else a temporary directory.
func browser(t *testing.T) (context.Context, string) {
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
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
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

// shot saves a full-page PNG screenshot as dir/name.png.
func shot(dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	})
}

// colorScheme makes the page see prefers-color-scheme as scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

// run runs the actions, failing the test with what it was doing.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action and returns its value, failing the test with what it
// was doing.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// css selects by CSS selector; plain strings are XPath queries here.
type css = chromedp.CSS

// flash selects the page's one-time message when it says what: a form's
// answer is a new page, and the old page's message must not pass for it.
func flash(what string) string {
	return fmt.Sprintf(`//p[@class="flash" and contains(., %q)]`, what)
}

// An operator's round in a real browser: log in, open the overview, follow
// an alert, see its timeline after it resolved, check the device's chart,
// create and expire a silence, replay a dead letter; a screenshot of each
// page.
func TestBrowser(t *testing.T) {
	ctx, dir := browser(t)
	e := newEnv(t, envOptions{token: testToken, prober: fakeProber{}})
	dl := e.deadLetter()
	base := e.srv.URL

	run(t, ctx, "login page", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(css(`input[name=token]`)), shot(dir, "login"))
	run(t, ctx, "wrong token", chromedp.SendKeys(css(`input[name=token]`), "not-the-token"), chromedp.Submit(css(`input[name=token]`)),
		chromedp.WaitVisible(css(`#login-error`)))
	if text := get(t, ctx, "login error", chromedp.Text(css(`#login-error`))); !strings.Contains(text, "not the API token") {
		t.Errorf("wrong token says %q", text)
	}
	run(t, ctx, "log in", chromedp.SendKeys(css(`input[name=token]`), testToken), chromedp.Submit(css(`input[name=token]`)),
		chromedp.WaitVisible(`//button[text()="Log out"]`), chromedp.WaitVisible(css(`#alerts-h`)), shot(dir, "overview"))

	background := chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`)
	run(t, ctx, "dark mode", colorScheme("dark"), shot(dir, "overview-dark"))
	dark := get(t, ctx, "dark background", background)
	run(t, ctx, "light mode", colorScheme("light"))
	if light := get(t, ctx, "light background", background); dark == light {
		t.Errorf("dark mode does not change the background (%s)", dark)
	}

	// Follow the first alert of the overview.
	href := get(t, ctx, "alert link", chromedp.AttributeValue(css(`table.grid a[href^="/alerts/"]`), "href"))
	if !href.Exists {
		t.Fatal("the overview links to no alert")
	}
	id := strings.TrimPrefix(href.Value, "/alerts/")
	run(t, ctx, "open the alert", chromedp.Click(css(`table.grid a[href^="/alerts/"]`)), chromedp.WaitVisible(css(`#tl-h`)))
	if text := get(t, ctx, "heading", chromedp.Text(css(`h1`))); !strings.Contains(text, "firing") {
		t.Errorf("the active alert's heading: %q", text)
	}
	e.resolve(id)
	run(t, ctx, "the resolved alert", chromedp.Reload(), chromedp.WaitVisible(css(`ol.timeline li.tl-resolved`)), shot(dir, "alert-resolved"))
	text := get(t, ctx, "timeline", chromedp.Text(css(`ol.timeline`)))
	for _, want := range []string{"pending", "active", "HTTP 503", "HTTP 204", "resolved"} {
		if !strings.Contains(text, want) {
			t.Errorf("the timeline lacks %q: %s", want, text)
		}
	}

	// Its device, and the chart.
	run(t, ctx, "the device", chromedp.Click(css(`dl.facts a[href^="/devices/"]`)), chromedp.WaitVisible(css(`#rtt-chart`)), shot(dir, "device"))
	line := get(t, ctx, "chart line", chromedp.AttributeValue(css(`#rtt-chart path.rtt-line`), "d"))
	circles := get(t, ctx, "chart points", chromedp.Evaluate[int](`document.querySelectorAll('#rtt-chart circle').length`))
	if !line.Exists || !strings.HasPrefix(line.Value, "M") || strings.Count(line.Value, "L") < 10 || circles < 30 {
		t.Errorf("the RTT chart: line %q, %d points", line.Value, circles)
	}
	box := get(t, ctx, "chart size", chromedp.Evaluate[map[string]float64](`(() => { const r = document.querySelector('#rtt-chart').getBoundingClientRect(); return {w: r.width, h: r.height}; })()`))
	if box["w"] < 300 || box["h"] < 100 {
		t.Errorf("the chart is drawn %vx%v", box["w"], box["h"])
	}
	run(t, ctx, "probe now", chromedp.Click(`//button[starts-with(text(), "Probe ")]`), chromedp.WaitVisible(css(`#probe`)))
	if text := get(t, ctx, "probe", chromedp.Text(css(`#probe`))); !strings.Contains(text, "0/3 replies") {
		t.Errorf("the probe's result: %q", text)
	}

	// A silence for it, then expire it.
	run(t, ctx, "silence this device", chromedp.Click(`//a[text()="Silence this device…"]`), chromedp.WaitVisible(css(`input[name=comment]`)),
		chromedp.SendKeys(css(`input[name=comment]`), "CHG-1234 optics swap"), chromedp.Clear(css(`input[name=duration]`)),
		chromedp.SendKeys(css(`input[name=duration]`), "90m"), chromedp.Click(`//button[text()="Add silence"]`), chromedp.WaitVisible(flash("added")),
		shot(dir, "silences"))
	text = get(t, ctx, "flash", chromedp.Text(css(`p.flash`)))
	sls := e.mutes.List()
	if !strings.Contains(text, "added") || len(sls) != 1 || sls[0].Comment != "CHG-1234 optics swap" || sls[0].EndsAt.Sub(sls[0].StartsAt) != 90*time.Minute {
		t.Fatalf("after adding a silence: flash %q, silences %+v", text, sls)
	}
	run(t, ctx, "expire it", chromedp.Click(css(fmt.Sprintf(`button[aria-label="Expire silence %s"]`, sls[0].ID))), chromedp.WaitVisible(flash("expired")))
	if text := get(t, ctx, "flash", chromedp.Text(css(`p.flash`))); !strings.Contains(text, "expired") || e.mutes.List()[0].State != "expired" {
		t.Errorf("after expiring: flash %q, silence %s", text, e.mutes.List()[0].State)
	}

	// Replay the dead letter.
	run(t, ctx, "dead letters", chromedp.Navigate(base+"/deadletters"), chromedp.WaitVisible(css(`table.grid`)), shot(dir, "deadletters"),
		chromedp.Click(css(fmt.Sprintf(`button[aria-label="Replay %s"]`, dl.ID))), chromedp.WaitVisible(flash("replayed")))
	if text := get(t, ctx, "flash", chromedp.Text(css(`p.flash`))); !strings.Contains(text, "replayed") {
		t.Errorf("after replay: %q", text)
	}
	eventually(t, "the replayed dead letter at the receiver", func() bool { return e.rcv.got(dl.ID) == 2 })

	for _, p := range []struct{ path, name, wait string }{
		{"/devices?limit=25", "devices", `table.grid`},
		{"/deliveries", "deliveries", `section.dest`},
		{"/maintenance", "maintenance", `table.grid`},
	} {
		run(t, ctx, p.path, chromedp.Navigate(base+p.path), chromedp.WaitVisible(css(p.wait)), shot(dir, p.name))
	}
	run(t, ctx, "log out", chromedp.Click(`//button[text()="Log out"]`), chromedp.WaitVisible(css(`input[name=token]`)))
	if text := get(t, ctx, "logged out", chromedp.Text(css(`main`))); !strings.Contains(text, "You are logged out") {
		t.Errorf("after logging out: %q", text)
	}
	t.Logf("screenshots in %s", dir)
}

// The page refreshes itself in place when JavaScript runs: a resolved
// alert leaves the overview without a reload.
func TestBrowserRefreshesInPlace(t *testing.T) {
	ctx, _ := browser(t)
	e := newEnv(t, envOptions{token: testToken})
	run(t, ctx, "overview", chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(css(`#alerts-h`)))
	get(t, ctx, "marker", chromedp.Evaluate[int](`window.__marker = 1`))
	_, in := e.firstDown()
	e.resolve(in.Event.InstanceID)
	run(t, ctx, "gone without a reload", chromedp.WaitNotPresent(css(fmt.Sprintf(`a[href="/alerts/%s"]`, in.Event.InstanceID))))
	if marker := get(t, ctx, "same document", chromedp.Evaluate[int](`window.__marker`)); marker != 1 {
		t.Error("the page was reloaded, not refreshed in place")
	}
}
