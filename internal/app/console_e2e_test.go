package app

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/testutil/browser"
)

// TestNotificationLinksOpenInABrowser is issue 12's promise end to end: the
// link every notification carries (ciscoDnaEventLink) opens, in Chromium, a
// page that says what happened, for an active alert, for the same alert
// after it resolved, and for a one-shot event; after a restart too, since
// history is in the store. Real SNMPv2c traps over loopback, a real webhook
// receiver, the daemon's own HTTP server.
func TestNotificationLinksOpenInABrowser(t *testing.T) {
	ctx, shots := browser.Start(t)
	rcv := newReceiver(t, always(http.StatusOK))
	path, port := historyRig(t, rcv)
	delivered := func(eventID, status string) delivery {
		t.Helper()
		var d delivery
		rcv.waitFor(15*time.Second, eventID+" "+status, func(ds []delivery) bool {
			for _, x := range ds {
				if x.EventID == eventID && x.Status == status {
					d = x
					return true
				}
			}
			return false
		})
		return d
	}
	// page opens link in the browser and returns the text of its main part.
	page := func(link, name string) string {
		t.Helper()
		var text string
		browser.Run(t, ctx, "open "+link, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`#tl-h`)),
			browser.Shot(shots, name))
		text = browser.Get(t, ctx, "read "+link, chromedp.Text(chromedp.CSS(`main`)))
		return text
	}
	want := func(text, what string, subs ...string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(text, s) {
				t.Errorf("%s: page lacks %q:\n%s", what, s, text)
			}
		}
	}

	a, stop := startApp(t, path)
	external := "http://" + a.HTTPAddr()
	sendTrap(t, port, oidLinkDown, 3)
	active := delivered("NETWORK-INTERFACES-2-301", "active")
	if !strings.HasPrefix(active.Link, external+"/alerts/") {
		t.Fatalf("ciscoDnaEventLink %q, want the console's page under external_url %s", active.Link, external)
	}
	// History is written asynchronously (batched): the page shows the
	// attempt once the writer has caught up.
	waitUntil(t, 10*time.Second, "history to hold the active's delivery", func() bool {
		return delivered200(alertPage{Alert: alertJSON(t, active.Link)}, "active")
	})
	want(page(active.Link, "e2e-alert-active"), "active alert",
		"on dut", "firing", "attempt", "delivered", "HTTP 200", "DNA Center payload")

	sendTrap(t, port, oidLinkUp, 3)
	if r := delivered("NETWORK-INTERFACES-2-301", "resolved"); r.Link != active.Link {
		t.Errorf("the resolve links to %q, the active to %q", r.Link, active.Link)
	}
	// History is written asynchronously: the resolve is on the page once
	// the writer has caught up.
	waitUntil(t, 10*time.Second, "history to hold the resolve", func() bool {
		return alertJSON(t, active.Link).Status == "resolved"
	})
	want(page(active.Link, "e2e-alert-resolved"), "resolved alert", "resolved", "Resolved", "lasted")

	sendTrap(t, port, oidAuthenticationFailure, 0) // a one-shot event
	event := delivered("SECURITY-SNMP-3-401", "active")
	waitUntil(t, 10*time.Second, "history to hold the one-shot event", func() bool {
		h := alertJSON(t, event.Link)
		return h.Status == "event" && delivered200(alertPage{Alert: h}, "active")
	})
	want(page(event.Link, "e2e-event"), "one-shot event", "one-shot event", "delivered", "HTTP 200")

	// "Probe now" on the device page runs nocbridge probe's engine with
	// the daemon's settings: dut is not pinged here and has no SNMP
	// profile, and its traps are accepted — the probe says all three.
	login := "http://" + a.HTTPAddr() + "/login?next=/devices/dut"
	browser.Run(t, ctx, "log in", chromedp.Navigate(login), chromedp.SendKeys(chromedp.CSS(`input[name=token]`), rigToken),
		chromedp.Submit(chromedp.CSS(`input[name=token]`)), chromedp.WaitVisible(`//button[starts-with(text(), "Probe dut")]`))
	browser.Run(t, ctx, "probe now", chromedp.Click(`//button[starts-with(text(), "Probe dut")]`),
		chromedp.WaitVisible(chromedp.CSS(`#probe`)), browser.Shot(shots, "e2e-device-probed"))
	if text := browser.Get(t, ctx, "probe result", chromedp.Text(chromedp.CSS(`#probe`))); !strings.Contains(text, "icmp disabled for this device") ||
		!strings.Contains(text, "no SNMP profile") || !strings.Contains(text, "accepted as device dut") {
		t.Errorf("the probe's result: %q", text)
	}

	// A day later is another process: the links still open from the store.
	stop()
	a, _ = startApp(t, path)
	if got := "http://" + a.HTTPAddr(); got != external {
		t.Fatalf("restarted on %s, was %s", got, external)
	}
	want(page(active.Link, "e2e-alert-after-restart"), "resolved alert after a restart", "resolved", "delivered")
	if h := alertJSON(t, event.Link); h.Status != "event" || len(h.Timeline) == 0 {
		t.Errorf("one-shot event after a restart: %+v", h)
	}
}

// alertJSON is the link's JSON twin (Accept: application/json).
func alertJSON(t *testing.T, link string) history.Alert {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h history.Alert
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatalf("%s: %v", link, err)
		}
	}
	return h
}
