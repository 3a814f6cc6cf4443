package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fakeConsole stands for internal/console: each page says which pattern
// served it; a "fake_session=ok" cookie is a signed-in session.
type fakeConsole struct {
	mux      *http.ServeMux
	patterns []string
}

func newFakeConsole() *fakeConsole {
	c := &fakeConsole{mux: http.NewServeMux()}
	for _, p := range []string{"GET /{$}", "GET /devices", "GET /devices/{name}", "GET /alerts/{id}", "GET /deliveries",
		"GET /deadletters", "GET /silences", "POST /silences", "GET /maintenance", "GET /cluster", "GET /login", "POST /login"} {
		c.patterns = append(c.patterns, p)
		c.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "console page %s name=%q id=%q", p, r.PathValue("name"), r.PathValue("id"))
		})
	}
	return c
}

func (c *fakeConsole) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }
func (c *fakeConsole) Patterns() []string                               { return c.patterns }
func (c *fakeConsole) Allows(r *http.Request) bool {
	ck, err := r.Cookie("fake_session")
	return r.URL.Path == "/login" || (err == nil && ck.Value == "ok")
}
func (c *fakeConsole) SendToLogin(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// Every twinned page exists in the console, so no JSON twin is lost
// silently when a page is renamed.
func TestTwinsAreConsolePages(t *testing.T) {
	pages := map[string]bool{}
	for _, p := range newFakeConsole().Patterns() {
		pages[p] = true
	}
	for p := range twins {
		if !pages[p] {
			t.Errorf("twin %q is not a console pattern", p)
		}
	}
}

// A console page answers browsers with the page and everyone else with
// exactly what its API twin answers, query included.
func TestConsoleContentNegotiation(t *testing.T) {
	srv, _, _ := newTestServer(t, testToken, true)
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	for _, c := range []struct{ page, api string }{
		{"/alerts/00000000-0000-4000-8000-000000000001", "/api/v1/alerts/00000000-0000-4000-8000-000000000001"},
		{"/alerts/a%2Fb%20c", "/api/v1/alerts/a%2Fb%20c"},
		{"/devices", "/api/v1/devices"},
		{"/deliveries?destination=noc-log", "/api/v1/deliveries?destination=noc-log"},
		{"/deadletters", "/api/v1/deadletters"},
		{"/silences", "/api/v1/silences"},
	} {
		wantStatus, wantBody, _ := do(t, "GET", srv.URL+c.api, "", "")
		for _, accept := range []string{"application/json", "", "*/*", "text/html;q=0.5, application/json", "application/json, text/html"} {
			status, body, h := get(t, srv.URL+c.page, accept)
			if status != wantStatus || body != wantBody || h.Get("Content-Type") != "application/json" {
				t.Errorf("GET %s Accept %q: %d %s %q; want the API's %d %q", c.page, accept, status, h.Get("Content-Type"), body, wantStatus, wantBody)
			}
			if !strings.Contains(h.Get("Vary"), "Accept") {
				t.Errorf("GET %s: Vary %q lacks Accept", c.page, h.Get("Vary"))
			}
		}
		status, body, _ := get(t, srv.URL+c.page, browser)
		if status != http.StatusOK || !strings.HasPrefix(body, "console page GET /") {
			t.Errorf("GET %s as a browser: %d %q, want the console's page", c.page, status, body)
		}
	}
	// A path value reaches the API decoded once: a%2Fb is "a/b".
	if _, body, _ := get(t, srv.URL+"/alerts/a%2Fb%20c", ""); !strings.Contains(body, "alert a/b c is not active") {
		t.Errorf("escaped id: %s", body)
	}
	// Pages without a twin are HTML for everyone.
	if status, body, _ := get(t, srv.URL+"/maintenance", "application/json"); status != 200 || !strings.Contains(body, "console page GET /maintenance") {
		t.Errorf("GET /maintenance as JSON: %d %s", status, body)
	}
}

func get(t *testing.T, url, accept string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return send(t, req)
}

func TestWantsHTML(t *testing.T) {
	for accept, want := range map[string]bool{
		"": false, "*/*": false, "application/json": false,
		"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8": true, // Chromium
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8":            true, // Firefox
		"application/json, text/html":                                                false,
		"text/html;q=0.5, application/json":                                          false,
		"application/json;q=0.1, text/html":                                          true,
		"text/html;q=0":                                                              false,
		"TEXT/HTML":                                                                  true,
		"application/xhtml+xml; Q=0.9, */*; q=0.1":                                   true,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept", accept)
		if got := wantsHTML(r); got != want {
			t.Errorf("wantsHTML(Accept %q) = %v, want %v", accept, got, want)
		}
	}
}
