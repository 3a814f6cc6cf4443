package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/nocbridge/nocbridge/internal/testutil/browser"
)

// colorScheme makes the page see prefers-color-scheme as scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
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
	ctx, dir := browser.Start(t)
	e := newEnv(t, envOptions{token: testToken, prober: fakeProber{}})
	dl := e.deadLetter()
	base := e.srv.URL

	browser.Run(t, ctx, "login page", chromedp.Navigate(base+"/login"), chromedp.WaitVisible(css(`input[name=token]`)), browser.Shot(dir, "login"))
	browser.Run(t, ctx, "wrong token", chromedp.SendKeys(css(`input[name=token]`), "not-the-token"), chromedp.Submit(css(`input[name=token]`)),
		chromedp.WaitVisible(css(`#login-error`)))
	if text := browser.Get(t, ctx, "login error", chromedp.Text(css(`#login-error`))); !strings.Contains(text, "not the API token") {
		t.Errorf("wrong token says %q", text)
	}
	browser.Run(t, ctx, "log in", chromedp.SendKeys(css(`input[name=token]`), testToken), chromedp.Submit(css(`input[name=token]`)),
		chromedp.WaitVisible(`//button[text()="Log out"]`), chromedp.WaitVisible(css(`#alerts-h`)), browser.Shot(dir, "overview"))

	background := chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`)
	browser.Run(t, ctx, "dark mode", colorScheme("dark"), browser.Shot(dir, "overview-dark"))
	dark := browser.Get(t, ctx, "dark background", background)
	browser.Run(t, ctx, "light mode", colorScheme("light"))
	if light := browser.Get(t, ctx, "light background", background); dark == light {
		t.Errorf("dark mode does not change the background (%s)", dark)
	}

	// Follow the first alert of the overview.
	href := browser.Get(t, ctx, "alert link", chromedp.AttributeValue(css(`table.grid a[href^="/alerts/"]`), "href"))
	if !href.Exists {
		t.Fatal("the overview links to no alert")
	}
	id := strings.TrimPrefix(href.Value, "/alerts/")
	browser.Run(t, ctx, "open the alert", chromedp.Click(css(`table.grid a[href^="/alerts/"]`)), chromedp.WaitVisible(css(`#tl-h`)))
	if text := browser.Get(t, ctx, "heading", chromedp.Text(css(`h1`))); !strings.Contains(text, "firing") {
		t.Errorf("the active alert's heading: %q", text)
	}
	e.resolve(id)
	browser.Run(t, ctx, "the resolved alert", chromedp.Reload(), chromedp.WaitVisible(css(`ol.timeline li.tl-resolved`)), browser.Shot(dir, "alert-resolved"))
	text := browser.Get(t, ctx, "timeline", chromedp.Text(css(`ol.timeline`)))
	for _, want := range []string{"pending", "active", "HTTP 503", "HTTP 204", "resolved"} {
		if !strings.Contains(text, want) {
			t.Errorf("the timeline lacks %q: %s", want, text)
		}
	}

	// Its device, and the chart.
	browser.Run(t, ctx, "the device", chromedp.Click(css(`dl.facts a[href^="/devices/"]`)), chromedp.WaitVisible(css(`#rtt-chart`)), browser.Shot(dir, "device"))
	line := browser.Get(t, ctx, "chart line", chromedp.AttributeValue(css(`#rtt-chart path.rtt-line`), "d"))
	circles := browser.Get(t, ctx, "chart points", chromedp.Evaluate[int](`document.querySelectorAll('#rtt-chart circle').length`))
	if !line.Exists || !strings.HasPrefix(line.Value, "M") || strings.Count(line.Value, "L") < 10 || circles < 30 {
		t.Errorf("the RTT chart: line %q, %d points", line.Value, circles)
	}
	box := browser.Get(t, ctx, "chart size", chromedp.Evaluate[map[string]float64](`(() => { const r = document.querySelector('#rtt-chart').getBoundingClientRect(); return {w: r.width, h: r.height}; })()`))
	if box["w"] < 300 || box["h"] < 100 {
		t.Errorf("the chart is drawn %vx%v", box["w"], box["h"])
	}
	browser.Run(t, ctx, "probe now", chromedp.Click(`//button[starts-with(text(), "Probe ")]`), chromedp.WaitVisible(css(`#probe`)))
	if text := browser.Get(t, ctx, "probe", chromedp.Text(css(`#probe`))); !strings.Contains(text, "0/3 replies") {
		t.Errorf("the probe's result: %q", text)
	}

	// A silence for it, then expire it.
	browser.Run(t, ctx, "silence this device", chromedp.Click(`//a[text()="Silence this device…"]`), chromedp.WaitVisible(css(`input[name=comment]`)),
		chromedp.SendKeys(css(`input[name=comment]`), "CHG-1234 optics swap"), chromedp.Clear(css(`input[name=duration]`)),
		chromedp.SendKeys(css(`input[name=duration]`), "90m"), chromedp.Click(`//button[text()="Add silence"]`), chromedp.WaitVisible(flash("added")),
		browser.Shot(dir, "silences"))
	text = browser.Get(t, ctx, "flash", chromedp.Text(css(`p.flash`)))
	sls := e.mutes.List()
	if !strings.Contains(text, "added") || len(sls) != 1 || sls[0].Comment != "CHG-1234 optics swap" || sls[0].EndsAt.Sub(sls[0].StartsAt) != 90*time.Minute {
		t.Fatalf("after adding a silence: flash %q, silences %+v", text, sls)
	}
	browser.Run(t, ctx, "expire it", chromedp.Click(css(fmt.Sprintf(`button[aria-label="Expire silence %s"]`, sls[0].ID))), chromedp.WaitVisible(flash("expired")))
	if text := browser.Get(t, ctx, "flash", chromedp.Text(css(`p.flash`))); !strings.Contains(text, "expired") || e.mutes.List()[0].State != "expired" {
		t.Errorf("after expiring: flash %q, silence %s", text, e.mutes.List()[0].State)
	}

	// Replay the dead letter.
	browser.Run(t, ctx, "dead letters", chromedp.Navigate(base+"/deadletters"), chromedp.WaitVisible(css(`table.grid`)), browser.Shot(dir, "deadletters"),
		chromedp.Click(css(fmt.Sprintf(`button[aria-label="Replay %s"]`, dl.ID))), chromedp.WaitVisible(flash("replayed")))
	if text := browser.Get(t, ctx, "flash", chromedp.Text(css(`p.flash`))); !strings.Contains(text, "replayed") {
		t.Errorf("after replay: %q", text)
	}
	eventually(t, "the replayed dead letter at the receiver", func() bool { return e.rcv.got(dl.ID) == 2 })

	for _, p := range []struct{ path, name, wait string }{
		{"/devices?limit=25", "devices", `table.grid`},
		{"/deliveries", "deliveries", `section.dest`},
		{"/maintenance", "maintenance", `table.grid`},
	} {
		browser.Run(t, ctx, p.path, chromedp.Navigate(base+p.path), chromedp.WaitVisible(css(p.wait)), browser.Shot(dir, p.name))
	}
	browser.Run(t, ctx, "log out", chromedp.Click(`//button[text()="Log out"]`), chromedp.WaitVisible(css(`input[name=token]`)))
	if text := browser.Get(t, ctx, "logged out", chromedp.Text(css(`main`))); !strings.Contains(text, "You are logged out") {
		t.Errorf("after logging out: %q", text)
	}
	t.Logf("screenshots in %s", dir)
}

// The page refreshes itself in place when JavaScript runs: a resolved
// alert leaves the overview without a reload.
func TestBrowserRefreshesInPlace(t *testing.T) {
	ctx, _ := browser.Start(t)
	e := newEnv(t, envOptions{token: testToken})
	browser.Run(t, ctx, "overview", chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(css(`#alerts-h`)))
	browser.Get(t, ctx, "marker", chromedp.Evaluate[int](`window.__marker = 1`))
	_, in := e.firstDown()
	e.resolve(in.Event.InstanceID)
	browser.Run(t, ctx, "gone without a reload", chromedp.WaitNotPresent(css(fmt.Sprintf(`a[href="/alerts/%s"]`, in.Event.InstanceID))))
	if marker := browser.Get(t, ctx, "same document", chromedp.Evaluate[int](`window.__marker`)); marker != 1 {
		t.Error("the page was reloaded, not refreshed in place")
	}
}

// The cluster page in a real browser: reached from the navigation, the
// nodes, the streams and the vantage points' disagreements shown, with the
// outvoted node's view; a screenshot of it (docs/console/cluster.png), and
// of a device's per-node results.
func TestBrowserCluster(t *testing.T) {
	ctx, dir := browser.Start(t)
	e := newEnv(t, envOptions{token: testToken, cluster: true})
	browser.Run(t, ctx, "overview", chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(css(`#alerts-h`)),
		chromedp.Click(`//nav//a[text()="Cluster"]`), chromedp.WaitVisible(css(`table.vantage`)), browser.Shot(dir, "cluster"))
	if text := browser.Get(t, ctx, "nodes", chromedp.Text(css(`#nodes`))); !strings.Contains(text, "nb3") || !strings.Contains(text, "unreachable") {
		t.Errorf("the nodes table: %q", text)
	}
	tables := browser.Get(t, ctx, "disagreements", chromedp.Evaluate[int](`document.querySelectorAll('table.vantage').length`))
	caption := browser.Get(t, ctx, "first disagreement", chromedp.Text(css(`table.vantage caption`)))
	if tables != 3 || !strings.Contains(caption, e.outvote[0]) || !strings.Contains(caption, "outvoted: nb3") {
		t.Errorf("%d disagreements, the first %q", tables, caption)
	}
	if text := browser.Get(t, ctx, "edge", chromedp.Text(css(`#no-edge`))); !strings.Contains(text, "No edge sites") {
		t.Errorf("edge sites: %q", text)
	}
	browser.Run(t, ctx, "an outvoted device", chromedp.Click(css(`table.vantage caption a`)), chromedp.WaitVisible(css(`#vantage`)),
		browser.Shot(dir, "device-vantage"))
	if text := browser.Get(t, ctx, "per-node results", chromedp.Text(css(`#vantage tbody`))); strings.Count(text, "up") != 2 || !strings.Contains(text, "down") {
		t.Errorf("the device's per-node results: %q", text)
	}
	t.Logf("screenshots in %s", dir)
}
