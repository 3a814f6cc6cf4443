package console

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/console/consoletest"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func contains(t *testing.T, what string, r resp, status int, want ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.body)
	}
	for _, w := range want {
		if !strings.Contains(r.body, w) {
			t.Errorf("%s: the page lacks %q", what, w)
		}
	}
}

// Every page renders for a browser, and the same URL answers a client that
// asks for JSON with exactly what its API twin answers.
func TestPagesAndTheirJSONTwins(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	c := e.client()
	down, in := e.firstDown()
	dl := e.deadLetter()
	if _, err := e.mutes.Add(context.Background(), mute.NewSilence{Match: config.Match{Selector: config.Selector{Devices: []string{down.Name}}},
		Duration: mute.Duration(time.Hour), Comment: "CHG-77 optics swap"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want []string
		api  string // the twin; "" for a page without one
	}{
		{"/", []string{"<h1>Overview</h1>", `<span class="st st-down">down</span>`, "site-000", "/alerts/" + in.Event.InstanceID, "Active alerts"}, ""},
		{"/devices", []string{"<h1>Devices</h1>", "Devices 1–100 of 300", `rel="next"`}, "/api/v1/devices"},
		{"/devices?state=down&site=site-001", []string{"of 2 matching"}, "/api/v1/devices"},
		{"/devices/" + down.Name, []string{"<h1>" + down.Name, "Did not answer its last ICMP round", `id="rtt-chart"`, "Muted by silence", "timeout"}, "/api/v1/devices/" + down.Name},
		{"/alerts/" + in.Event.InstanceID, []string{"Device unreachable", "Timeline", "HTTP 503", "HTTP 204", "DNA Center payload", `&#34;ciscoDnaEventLink&#34;: &#34;https://nocbridge.example.net/alerts/` + in.Event.InstanceID}, "/api/v1/alerts/" + in.Event.InstanceID},
		{"/deliveries", []string{"<h1>Deliveries</h1>", destination, "400"}, "/api/v1/deliveries"},
		{"/deadletters", []string{"<h1>Dead letters</h1>", "HTTP 400: POST " + e.rcvURL, "/alerts/" + dl.Event.InstanceID, "Dead letters 1–1 of 1"}, "/api/v1/deadletters"},
		{"/silences", []string{"<h1>Silences</h1>", "CHG-77 optics swap"}, "/api/v1/silences"},
		{"/maintenance", []string{"<h1>Maintenance windows</h1>", "sunday-patching", "core-upgrade", `st-open">open`, `st-closed">closed`}, ""},
		{"/login", []string{"<h1>Log in</h1>", `type="password"`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := c.page(tt.path)
			contains(t, "GET "+tt.path, r, http.StatusOK, tt.want...)
			if ct := r.h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if r.h.Get("Content-Security-Policy") == "" || r.h.Get("Cache-Control") != "no-store" {
				t.Errorf("page headers: %v", r.h)
			}
			if tt.api == "" {
				return
			}
			twin := c.do("GET", tt.path, "application/json", nil)
			api := c.do("GET", tt.api+strings.TrimPrefix(tt.path, strings.SplitN(tt.path, "?", 2)[0]), "application/json", nil)
			if twin.status != api.status || twin.body != api.body || twin.h.Get("Content-Type") != api.h.Get("Content-Type") {
				t.Errorf("GET %s as JSON: %d %q %.200s; the API at %s: %d %q %.200s", tt.path, twin.status, twin.h.Get("Content-Type"), twin.body,
					tt.api, api.status, api.h.Get("Content-Type"), api.body)
			}
			if twin.status == http.StatusOK && !json.Valid([]byte(twin.body)) {
				t.Errorf("GET %s as JSON is not JSON: %.200s", tt.path, twin.body)
			}
		})
	}
}

// An alert's page is useful whatever became of it: active, resolved, a
// one-shot event; unknown ones say why, naming the retention.
func TestAlertPage(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	c := e.client()
	_, in := e.firstDown()
	id := in.Event.InstanceID
	contains(t, "active", c.page("/alerts/"+id), http.StatusOK, `<span class="st st-firing">firing</span>`, "Live state", "Resolve goes to", "noc-webhook", "loss 100% (for 20s)")

	e.resolve(id)
	r := c.page("/alerts/" + id)
	contains(t, "resolved", r, http.StatusOK, `<span class="st st-resolved">resolved</span>`, "Resolved</dt>", "(lasted ", "loss 0% (for 10s)", `&#34;Assurance Issue Status&#34;: &#34;resolved&#34;`)
	if strings.Contains(r.body, "Live state") {
		t.Error("a resolved alert shows a live state")
	}
	if !regexp.MustCompile(`\(lasted [0-9]+[dhm] [0-9]+[hms]\)`).MatchString(r.body) {
		t.Error("how long it lasted is not in an operator's precision")
	}

	ev := sampleEvent(e)
	e.fleet.History.Put(history.Alert{InstanceID: ev.InstanceID, EventID: ev.EventID, Name: ev.Name, Device: ev.Device.Name, Severity: 3,
		Status: string(history.KindEvent), FirstAt: ev.Timestamp, LastAt: ev.Timestamp, Event: &ev, Timeline: []history.Entry{
			{At: ev.Timestamp, Kind: history.KindEvent, Status: "active", Detail: "coldStart trap"},
			{At: ev.Timestamp.Add(time.Millisecond), Kind: history.KindMuted, Detail: "silence 1234 (devices: " + ev.Device.Name + ")"}}})
	contains(t, "one-shot", c.page("/alerts/"+ev.InstanceID), http.StatusOK, "one-shot event: notified once, never resolved", "coldStart trap",
		`<span class="st st-muted">muted</span>`, `href="/devices/`+ev.Device.Name+`"`)

	contains(t, "unknown", c.page("/alerts/no-such-alert"), http.StatusNotFound, "Alert not found", "history.retention")
	if r := c.do("GET", "/alerts/no-such-alert", "application/json", nil); r.status != http.StatusNotFound || !json.Valid([]byte(r.body)) {
		t.Errorf("unknown alert as JSON: %d %s", r.status, r.body)
	}

	broken := newEnv(t, envOptions{token: testToken, history: func(*consoletest.History) History { return failingHistory{} }})
	bc := broken.client()
	contains(t, "history down, alert unknown", bc.page("/alerts/no-such-alert"), http.StatusServiceUnavailable, "could not be read", "nats: timeout")
	_, bin := broken.firstDown()
	contains(t, "history down, alert live", bc.page("/alerts/"+bin.Event.InstanceID), http.StatusOK, "history could not be read", "Live state")
}

func TestLogin(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	c := e.client()
	r := c.login("wrong-token")
	contains(t, "wrong token", r, http.StatusUnauthorized, "That is not the API token")
	if r.h.Get("Set-Cookie") != "" && strings.Contains(r.h.Get("Set-Cookie"), sessionCookie+"=") && !strings.Contains(r.h.Get("Set-Cookie"), "Max-Age=0") {
		t.Error("a wrong token opened a session")
	}
	if strings.Contains(r.body, "wrong-token") {
		t.Error("the login page echoes what was typed")
	}
	if got := testutil.ToFloat64(e.con.refused.WithLabelValues("wrong_token")); got != 1 {
		t.Errorf("nocbridge_console_refused_total{reason=wrong_token} = %v, want 1", got)
	}
	contains(t, "no login form token", c.post("/login", url.Values{"token": {testToken}}), http.StatusForbidden, "security token did not match")

	r = c.login(testToken)
	if r.status != http.StatusSeeOther || r.h.Get("Location") != "/" {
		t.Fatalf("login: %d %q", r.status, r.h.Get("Location"))
	}
	var ck *http.Cookie
	for _, k := range (&http.Response{Header: r.h}).Cookies() {
		if k.Name == sessionCookie {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Value == testToken {
		t.Fatalf("session cookie %+v", ck)
	}
	contains(t, "signed in", c.page("/"), http.StatusOK, "Signed in until", "Log out")

	r = c.post("/logout", url.Values{"csrf": {c.csrf("/")}})
	if r.status != http.StatusSeeOther || r.h.Get("Location") != "/login?out=1" {
		t.Fatalf("logout: %d %q", r.status, r.h.Get("Location"))
	}
	contains(t, "logged out", c.page("/login?out=1"), http.StatusOK, "You are logged out")
	if strings.Contains(c.page("/").body, "Signed in until") {
		t.Error("still signed in after logging out")
	}
}

// Over TLS the session cookie is Secure and __Host- prefixed.
func TestSessionCookieOverTLS(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	lr := httptest.NewRequest("GET", "/login", nil)
	lr.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	e.con.ServeHTTP(w, lr)
	login := w.Result().Cookies()
	m := csrfField.FindStringSubmatch(w.Body.String())
	if len(login) != 1 || m == nil || login[0].Name != "__Host-"+loginCookie || !login[0].Secure {
		t.Fatalf("login cookie over TLS: %+v", login)
	}
	form := url.Values{"csrf": {m[1]}, "token": {testToken}}
	pr := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	pr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pr.TLS = &tls.ConnectionState{}
	pr.AddCookie(login[0])
	w = httptest.NewRecorder()
	e.con.ServeHTTP(w, pr)
	var ses *http.Cookie
	for _, k := range w.Result().Cookies() {
		if k.Name == "__Host-"+sessionCookie {
			ses = k
		}
	}
	if w.Code != http.StatusSeeOther || ses == nil || !ses.Secure || !ses.HttpOnly || ses.SameSite != http.SameSiteStrictMode || ses.Path != "/" {
		t.Fatalf("login over TLS: %d, session cookie %+v", w.Code, ses)
	}
}

// Every form that changes something is refused with a page saying why,
// and changes nothing, without a session or without the session's CSRF
// token.
func TestFormsNeedSessionAndCSRF(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken, prober: fakeProber{}})
	down, _ := e.firstDown()
	dl := e.deadLetter()
	sl, err := e.mutes.Add(context.Background(), mute.NewSilence{Match: config.Match{Selector: config.Selector{Sites: []string{"site-000"}}},
		Duration: mute.Duration(time.Hour), Comment: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	forms := []struct {
		path string
		form url.Values
	}{
		{"/silences", url.Values{"devices": {"x"}, "duration": {"1h"}, "comment": {"forged"}}},
		{"/silences/" + sl.ID + "/expire", url.Values{}},
		{"/deadletters/replay", url.Values{"id": {dl.ID}}},
		{"/deadletters/replay", url.Values{"destination": {destination}}},
		{"/devices/" + down.Name + "/probe", url.Values{}},
		{"/logout", url.Values{}},
	}
	anon, signed, other := e.client(), e.client(), e.client()
	signed.mustLogin()
	other.mustLogin()
	for _, f := range forms {
		t.Run(f.path, func(t *testing.T) {
			contains(t, "no session", anon.post(f.path, withCSRF(f.form, "")), http.StatusForbidden, "Not logged in")
			contains(t, "no CSRF token", signed.post(f.path, withCSRF(f.form, "")), http.StatusForbidden, "Form refused", "security token")
			contains(t, "wrong CSRF token", signed.post(f.path, withCSRF(f.form, "AAAA"+strings.Repeat("x", 39))), http.StatusForbidden, "Form refused")
			contains(t, "another session's token", signed.post(f.path, withCSRF(f.form, other.csrf("/silences"))), http.StatusForbidden, "Form refused")
		})
	}
	if n := len(e.mutes.List()); n != 1 || e.mutes.List()[0].State != mute.Active {
		t.Errorf("refused forms changed the silences: %+v", e.mutes.List())
	}
	if e.ob.DeadLetterCounts()[destination] != 1 || e.rcv.got(dl.ID) != 1 {
		t.Errorf("refused forms replayed a dead letter: counts %v, receiver saw it %d times", e.ob.DeadLetterCounts(), e.rcv.got(dl.ID))
	}
	contains(t, "still signed in", signed.page("/"), http.StatusOK, "Log out")
	// Nothing refused goes uncounted: per form, one without a session and
	// three with a bad CSRF token.
	if got := testutil.ToFloat64(e.con.refused.WithLabelValues("no_session")); got != float64(len(forms)) {
		t.Errorf("nocbridge_console_refused_total{reason=no_session} = %v, want %d", got, len(forms))
	}
	if got := testutil.ToFloat64(e.con.refused.WithLabelValues("csrf")); got != float64(3*len(forms)) {
		t.Errorf("nocbridge_console_refused_total{reason=csrf} = %v, want %d", got, 3*len(forms))
	}
}

func withCSRF(v url.Values, token string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	if token != "" {
		out.Set("csrf", token)
	}
	return out
}

// Without a configured token the console is read-only: pages render, the
// login and every form answer 403 saying the token is not configured —
// as the API's mutating endpoints do.
func TestNoTokenIsReadOnly(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client()
	contains(t, "overview", c.page("/"), http.StatusOK, "Read-only")
	contains(t, "login page", c.page("/login"), http.StatusOK, "is not configured")
	contains(t, "login", c.post("/login", url.Values{"token": {""}}), http.StatusForbidden, "Changes are disabled")
	contains(t, "silence", c.post("/silences", url.Values{"comment": {"x"}, "devices": {"a"}}), http.StatusForbidden, "Changes are disabled")
	contains(t, "silences page", c.page("/silences"), http.StatusOK, "which is not configured: the console is read-only")
}

// Off loopback (Public) a browser without a session is sent to log in,
// and comes back to the page it asked for.
func TestPublicSendsToLoginAndBack(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken, public: true})
	c := e.client()
	r := c.page("/devices?site=site-001")
	if r.status != http.StatusSeeOther || r.h.Get("Location") != "/login?next=%2Fdevices%3Fsite%3Dsite-001" {
		t.Fatalf("no session: %d %q", r.status, r.h.Get("Location"))
	}
	if r := c.do("GET", "/devices", "application/json", nil); r.status != http.StatusUnauthorized {
		t.Errorf("JSON without the token: %d", r.status)
	}
	m := csrfField.FindStringSubmatch(c.page("/login?next=%2Fdevices%3Fsite%3Dsite-001").body)
	r = c.post("/login", url.Values{"csrf": {m[1]}, "token": {testToken}, "next": {"/devices?site=site-001"}})
	if r.status != http.StatusSeeOther || r.h.Get("Location") != "/devices?site=site-001" {
		t.Fatalf("login: %d %q", r.status, r.h.Get("Location"))
	}
	contains(t, "after login", c.page("/devices?site=site-001"), http.StatusOK, "of 100 matching")
	if r := c.do("GET", "/api/v1/devices", "application/json", nil); r.status != http.StatusUnauthorized {
		t.Errorf("a console session opened the API: %d", r.status)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"": "/", "/devices?site=HQ": "/devices?site=HQ", "//evil.example": "/", "https://evil.example/": "/",
		"/\\evil": "/", "devices": "/", "/login": "/", "/a\r\nSet-Cookie: x": "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDevicesPaging(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	c := e.client()
	rows := regexp.MustCompile(`<tr class="dev`)
	tests := []struct {
		name, path string
		status     int
		want       []string
		not        []string
		rows       int
	}{
		{"first page", "/devices?limit=120", 200, []string{"Devices 1–120 of 300", "page 1 of 3", `rel="next"`, `<span class="off">‹ previous</span>`}, []string{`rel="prev"`}, 120},
		{"middle page", "/devices?limit=120&page=2", 200, []string{"Devices 121–240 of 300", `rel="prev"`, `rel="next"`}, nil, 120},
		{"last page", "/devices?limit=120&page=3", 200, []string{"Devices 241–300 of 300", "page 3 of 3", `<span class="off">next ›</span>`}, []string{`rel="next"`}, 60},
		{"one page, no paging", "/devices?site=site-002&state=down", 200, []string{"Devices 1–2 of 2 matching (300 in all)"}, []string{"page 1 of"}, 2},
		{"no match", "/devices?name=nothing-like-this", 200, []string{"No devices match (300 in all)."}, []string{"<table"}, 0},
		{"page 1 of nothing", "/devices?name=zzz&page=1", 200, []string{"No devices match"}, nil, 0},
		{"past the last page", "/devices?limit=120&page=4", 400, []string{"page 4 is past the last page, 3"}, nil, 0},
		{"page zero", "/devices?page=0", 400, []string{`page &#34;0&#34;: want a whole number from 1`}, nil, 0},
		{"page not a number", "/devices?page=two", 400, []string{`page &#34;two&#34;`}, nil, 0},
		{"limit too big", "/devices?limit=5000", 400, []string{"want a whole number from 1 to 1000"}, nil, 0},
		{"bad state", "/devices?state=purple", 400, []string{"want one of up, down"}, nil, 0},
		{"filter keeps paging links", "/devices?role=ap&limit=50", 200, []string{"page 1 of 3", "role=ap"}, nil, 50},
		{"muted", "/devices?state=muted", 200, []string{"site-002-core"}, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.page(tt.path)
			contains(t, tt.path, r, tt.status, tt.want...)
			for _, n := range tt.not {
				if strings.Contains(r.body, n) {
					t.Errorf("%s has %q", tt.path, n)
				}
			}
			if got := len(rows.FindAllString(r.body, -1)); tt.rows >= 0 && got != tt.rows {
				t.Errorf("%s: %d rows, want %d", tt.path, got, tt.rows)
			}
		})
	}
	// The rows are in name order, across pages.
	names := regexp.MustCompile(`<tr class="dev[^"]*"><th scope="row"><a href="/devices/([^"]+)"`)
	var all []string
	for p := 1; p <= 3; p++ {
		for _, m := range names.FindAllStringSubmatch(c.page("/devices?page="+string(rune('0'+p))).body, -1) {
			all = append(all, m[1])
		}
	}
	if len(all) != 300 {
		t.Fatalf("%d devices over the pages, want 300", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1] >= all[i] {
			t.Fatalf("devices out of order: %s before %s", all[i-1], all[i])
		}
	}
}

func TestDeadLetterPagingAndReplay(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	c := e.client()
	c.mustLogin()
	first, second := e.deadLetter(), e.deadLetter()
	contains(t, "page 1", c.page("/deadletters?limit=1"), http.StatusOK, "Dead letters 1–1 of 2", "page 1 of 2", second.ID)
	contains(t, "page 2", c.page("/deadletters?limit=1&page=2"), http.StatusOK, "Dead letters 2–2 of 2", first.ID)
	contains(t, "past the end", c.page("/deadletters?limit=1&page=3"), http.StatusBadRequest, "past the last page")
	contains(t, "other destination", c.page("/deadletters?destination=nobody"), http.StatusOK, "No dead letters.")

	r := c.post("/deadletters/replay", url.Values{"csrf": {c.csrf("/deadletters")}, "id": {first.ID}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
	eventually(t, "the replayed notification at the receiver", func() bool { return e.rcv.got(first.ID) == 2 })
	contains(t, "after replay", c.page("/deadletters"), http.StatusOK, "Dead letter "+first.ID+" replayed", "Dead letters 1–1 of 1")
	contains(t, "again", c.post("/deadletters/replay", url.Values{"csrf": {c.csrf("/deadletters")}, "id": {first.ID}}), http.StatusSeeOther)
	contains(t, "gone", c.page("/deadletters"), http.StatusOK, "is no longer there")

	r = c.post("/deadletters/replay", url.Values{"csrf": {c.csrf("/deadletters")}, "destination": {destination}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("replay all: %d %s", r.status, r.body)
	}
	eventually(t, "the destination's replay at the receiver", func() bool { return e.rcv.got(second.ID) == 2 })
	contains(t, "after replay all", c.page("/deadletters"), http.StatusOK, "1 dead letter(s) of "+destination+" replayed", "No dead letters.")
	contains(t, "nothing said", c.post("/deadletters/replay", url.Values{"csrf": {c.csrf("/deadletters")}}), http.StatusBadRequest, "Say which dead letter")
}

func TestSilenceCreateAndExpire(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	c := e.client()
	c.mustLogin()
	down, _ := e.firstDown()
	contains(t, "prefilled", c.page(silenceLink(down.Name)), http.StatusOK, `name="devices" value="`+down.Name+`"`)

	bad := c.post("/silences", url.Values{"csrf": {c.csrf("/silences")}, "devices": {down.Name}, "duration": {"soon"}, "labels": {"novalue"}, "comment": {"CHG-1"}})
	contains(t, "bad form", bad, http.StatusBadRequest, "Not added", `label &#34;novalue&#34;: write key=value`, `value="CHG-1"`)
	contains(t, "no comment", c.post("/silences", url.Values{"csrf": {c.csrf("/silences")}, "devices": {down.Name}, "duration": {"1h"}}), http.StatusBadRequest, "Not added")

	r := c.post("/silences", url.Values{"csrf": {c.csrf("/silences")}, "devices": {down.Name}, "event_ids": {"NETWORK-DEVICES-*"},
		"starts_at": {""}, "duration": {"2h"}, "comment": {"CHG-1234 IOS upgrade"}, "created_by": {"ana"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	sls := e.mutes.List()
	if len(sls) != 1 || sls[0].Comment != "CHG-1234 IOS upgrade" || sls[0].CreatedBy != "ana" || sls[0].State != mute.Active ||
		sls[0].EndsAt.Sub(sls[0].StartsAt) != 2*time.Hour {
		t.Fatalf("silences after the form: %+v", sls)
	}
	contains(t, "listed", c.page("/silences"), http.StatusOK, "Silence "+sls[0].ID+" added", "CHG-1234 IOS upgrade", `<span class="st st-muted">active</span>`)
	contains(t, "device muted", c.page("/devices/"+down.Name), http.StatusOK, "Muted by silence "+sls[0].ID)

	r = c.post("/silences/"+sls[0].ID+"/expire", url.Values{"csrf": {c.csrf("/silences")}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("expire: %d %s", r.status, r.body)
	}
	if st := e.mutes.List()[0].State; st != mute.Expired {
		t.Fatalf("after expire: %s", st)
	}
	contains(t, "expired", c.page("/silences"), http.StatusOK, "Silence "+sls[0].ID+" expired")
	contains(t, "unknown", c.post("/silences/nope/expire", url.Values{"csrf": {c.csrf("/silences")}}), http.StatusNotFound, "There is no silence")
}

func TestDevicePage(t *testing.T) {
	for _, lookup := range []bool{false, true} {
		t.Run(fmt.Sprintf("Deps.Device set %v", lookup), func(t *testing.T) { testDevicePage(t, lookup) })
	}
}

func testDevicePage(t *testing.T, lookup bool) {
	e := newEnv(t, envOptions{token: testToken, prober: fakeProber{}, lookup: lookup})
	c := e.client()
	var unreachable, unknown devstate.Status
	for _, d := range e.fleet.Devices {
		switch {
		case d.State == "unreachable" && unreachable.Name == "":
			unreachable = d
		case d.State == "unknown" && unknown.Name == "":
			unknown = d
		}
	}
	contains(t, "unreachable", c.page("/devices/"+unreachable.Name), http.StatusOK, "Unreachable: it fails behind <a href=\"/devices/"+unreachable.SuppressedBy[0]+"\">",
		"suppressed", "The values are the last good poll's.")
	contains(t, "unknown", c.page("/devices/"+unknown.Name), http.StatusOK, "Unknown: no ICMP result yet", `id="chart-empty"`, "Not polled")
	contains(t, "no such device", c.page("/devices/no-such"), http.StatusNotFound, "There is no device named")
	contains(t, "maintenance", c.page("/devices/site-002-core"), http.StatusOK, "Muted by maintenance core-upgrade")

	down, in := e.firstDown()
	r := c.page("/devices/" + down.Name)
	contains(t, "probe button needs a login", r, http.StatusOK, "Probe now", "Log in</a> with the API token", `href="/alerts/`+in.Event.InstanceID)
	c.mustLogin()
	r = c.page("/devices/" + down.Name)
	contains(t, "history", r, http.StatusOK, "Probe "+down.Name+" now", `<span class="st st-resolved">resolved</span>`, `<span class="st st-active">active</span>`)
	r = c.post("/devices/"+down.Name+"/probe", url.Values{"csrf": {c.csrf("/devices/" + down.Name)}})
	contains(t, "probe", r, http.StatusOK, "Probe of "+down.Name, "0/3 replies", `<span class="st st-bad">failed</span>`)

	none := newEnv(t, envOptions{token: testToken})
	nc := none.client()
	nc.mustLogin()
	if strings.Contains(nc.page("/devices/"+down.Name).body, "Probe now") {
		t.Error("a probe button without a Prober")
	}
}

// fakeProber answers as `nocbridge probe` would for a dead device.
type fakeProber struct{}

func (fakeProber) Probe(_ context.Context, device string) (ProbeResult, error) {
	return ProbeResult{Device: device, At: time.Now(), Checks: []ProbeCheck{
		{Name: "ping", OK: false, Detail: "0/3 replies (100% loss)"},
		{Name: "snmp", OK: false, Detail: "timeout after 2s"},
		{Name: "traps", OK: true, Detail: "v2c community accepted"}}}, nil
}

func TestDeviceHistoryPaging(t *testing.T) {
	e := newEnv(t, envOptions{token: testToken})
	c := e.client()
	down, _ := e.firstDown()
	base := time.Now().Add(-24 * time.Hour)
	for i := range 25 {
		ev := consoletest.DeviceDown(e.fleet.Alerts[0].Device, "old-"+string(rune('a'+i)), base.Add(time.Duration(i)*time.Minute))
		e.fleet.History.Put(consoletest.Resolved(ev, destination, ev.Timestamp.Add(time.Minute)))
	}
	r := c.page("/devices/" + down.Name)
	older := regexp.MustCompile(`<a href="([^"]+)">Older alerts`).FindStringSubmatch(r.body)
	if older == nil {
		t.Fatalf("no link to older alerts on a device with %d", 27)
	}
	r2 := c.page(strings.ReplaceAll(older[1], "&amp;", "&"))
	contains(t, "older", r2, http.StatusOK, "/alerts/old-a")
	if strings.Contains(r2.body, "Older alerts") {
		t.Error("the last page of history links further")
	}
}

func TestChart(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 30, 20, 0, time.UTC)
	pts := consoletest.Points(now, 3, true)
	ch := buildChart(pts, now, time.UTC)
	if ch.Empty || len(ch.Points) == 0 || !strings.HasPrefix(ch.Line, "M") || !strings.Contains(ch.Line, "L") {
		t.Fatalf("chart of an hour: %+v", ch)
	}
	// The last minutes had no reply: no point, and the line stops there.
	replied := 0
	for _, p := range pts {
		if p.LossPct < 100 {
			replied++
		}
	}
	if len(ch.Points) != replied || len(ch.Rows) != 60 {
		t.Errorf("%d points, %d rows; want %d and 60", len(ch.Points), len(ch.Rows), replied)
	}
	if len(ch.Loss) == 0 || !strings.Contains(ch.Summary, "worst 100%") {
		t.Errorf("loss: %d bars, summary %q", len(ch.Loss), ch.Summary)
	}
	// A missing minute breaks the line into two segments.
	gap := append(append([]devstate.Point(nil), pts[:10]...), pts[12:40]...)
	if g := buildChart(gap, now, time.UTC); strings.Count(g.Line, "M") != 2 {
		t.Errorf("a gap gives %d segments: %s", strings.Count(g.Line, "M"), g.Line)
	}
	for _, p := range ch.Points {
		if p.X < ch.Left || p.X > ch.Right || p.Y < ch.RTTTop || p.Y > ch.RTTBottom {
			t.Fatalf("point %+v outside the plot", p)
		}
	}
	if e := buildChart(nil, now, time.UTC); !e.Empty {
		t.Error("no points, yet a chart")
	}
}

func TestAssets(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client()
	for path, ct := range map[string]string{"/assets/console.css": "text/css; charset=utf-8", "/assets/console.js": "text/javascript; charset=utf-8"} {
		r := c.page(path + "?v=" + assetVersion)
		if r.status != 200 || r.h.Get("Content-Type") != ct || !strings.Contains(r.h.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: %d %q %q", path, r.status, r.h.Get("Content-Type"), r.h.Get("Cache-Control"))
		}
	}
	for _, path := range []string{"/assets/nope.css", "/assets/..%2Fconsole.go", "/assets/"} {
		if r := c.page(path); r.status != http.StatusNotFound {
			t.Errorf("%s: %d", path, r.status)
		}
	}
}

func TestNewNamesMissingDeps(t *testing.T) {
	_, err := New(Deps{})
	if err == nil || !strings.Contains(err.Error(), "Alerts, Destinations, Devices, ExternalURL, History, Mutes, Outbox, Series, Store, Token") {
		t.Fatalf("New(Deps{}): %v", err)
	}
}

// The per-(site, role) shortcut answers as matching every device would.
func TestMuteMatcher(t *testing.T) {
	fleet := consoletest.NewFleet(1000, time.Now())
	for _, sels := range [][]config.Selector{
		{{Sites: []string{"site-003"}}, {Roles: []string{"ap"}, Sites: []string{"site-007", "site-001"}}},
		{{Sites: []string{"site-003"}}, {Devices: []string{"site-00[12]-ap-*"}}},
		{{Labels: map[string]string{"vendor": "aruba"}}, {Roles: []string{"core"}}},
		nil,
	} {
		m := &muteMatcher{sels: sels, byPair: map[[2]string]bool{}}
		for _, s := range sels {
			if len(s.Devices) > 0 || len(s.Labels) > 0 {
				m.byPair = nil
			}
		}
		n := 0
		for i := range fleet.Devices {
			d := &fleet.Devices[i]
			want := slices.ContainsFunc(sels, func(s config.Selector) bool { return s.Matches(d.Name, d.Site, d.Role, d.Labels) })
			if got := m.muted(d); got != want {
				t.Fatalf("%v: %s muted %v, want %v", sels, d.Name, got, want)
			}
			if want {
				n++
			}
		}
		if len(sels) > 0 && n == 0 {
			t.Errorf("%v selects no device: the case tests nothing", sels)
		}
	}
}
