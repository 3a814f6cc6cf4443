package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/testutil/tlscert"
)

// Off loopback (Public, as config.LoopbackListen decides: a non-loopback
// listener cannot be opened in tests) every endpoint but the probes and
// /metrics needs the token, reads included.
func TestPublicNeedsTokenEverywhere(t *testing.T) {
	for _, metricsAuth := range []bool{false, true} {
		d, _, _ := testDeps(testToken, true)
		d.Public = true
		d.MetricsAuth = func() bool { return metricsAuth }
		srv := httptest.NewServer(Handler(d))
		defer srv.Close()
		for _, c := range []struct {
			method, path string
			open         bool
		}{
			{"GET", "/healthz", true},
			{"GET", "/readyz", true},
			{"GET", "/metrics", !metricsAuth},
			{"GET", "/", false},
			{"GET", "/api/v1/alerts", false},
			{"GET", "/alerts/00000000-0000-4000-8000-000000000001", false},
			{"GET", "/api/v1/devices", false},
			{"GET", "/api/v1/deliveries", false},
			{"GET", "/api/v1/deadletters", false},
			{"GET", "/api/v1/noise", false},
			{"GET", "/api/v1/silences", false},
			{"GET", "/no/such/page", false},
			{"POST", "/api/v1/deadletters/replay", false},
			{"DELETE", "/api/v1/silences/sil-1", false},
		} {
			status, body, h := do(t, c.method, srv.URL+c.path, "", "")
			switch {
			case c.open && status != http.StatusOK:
				t.Errorf("metrics_auth=%v %s %s without a token: %d, want 200", metricsAuth, c.method, c.path, status)
			case !c.open && (status != http.StatusUnauthorized || h.Get("WWW-Authenticate") == ""):
				t.Errorf("metrics_auth=%v %s %s without a token: %d %s, want 401", metricsAuth, c.method, c.path, status, body)
			case !c.open && strings.Contains(body, "core-sw1"):
				t.Errorf("%s %s answered data without a token", c.method, c.path)
			}
			if c.open || c.method != "GET" || c.path == "/no/such/page" {
				continue
			}
			if status, _, _ := do(t, c.method, srv.URL+c.path, "Bearer "+testToken, ""); status != http.StatusOK {
				t.Errorf("%s %s with the token: %d, want 200", c.method, c.path, status)
			}
			if status, _, _ := do(t, c.method, srv.URL+c.path, "Bearer wrong", ""); status != http.StatusUnauthorized {
				t.Errorf("%s %s with a wrong token: %d, want 401", c.method, c.path, status)
			}
		}
	}
}

// A browser at a console page without a session is sent to the login
// page; an API client gets 401 JSON there; a signed-in session opens the
// console's pages (and their JSON twins), never the API's own paths.
func TestPublicConsoleSendsBrowsersToLogin(t *testing.T) {
	d, _, _ := testDeps(testToken, true)
	d.Public = true
	srv := httptest.NewServer(Handler(d))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, accept, cookie, auth string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	const session = "fake_session=ok"
	ev := event.Sample("NETWORK-DEVICES-1-101", time.Time{})
	tests := []struct {
		name, path, accept, cookie, auth string
		status                           int
		location, contains               string
	}{
		{"browser, no session", "/devices?site=HQ", browser, "", "", http.StatusSeeOther, "/login?next=%2Fdevices%3Fsite%3DHQ", ""},
		{"browser at /", "/", browser, "", "", http.StatusSeeOther, "/login?next=%2F", ""},
		{"API client, no session", "/devices", "application/json", "", "", http.StatusUnauthorized, "", "bearer token"},
		{"login page is open", "/login", browser, "", "", http.StatusOK, "", "console page GET /login"},
		{"browser with a session", "/devices", browser, session, "", http.StatusOK, "", "console page GET /devices"},
		{"a wrong session is none", "/devices", browser, "fake_session=forged", "", http.StatusSeeOther, "/login?next=%2Fdevices", ""},
		{"JSON twin with a session", "/alerts/" + ev.InstanceID, "application/json", session, "", http.StatusOK, "", `"instance_id": "` + ev.InstanceID},
		{"JSON twin with the token", "/alerts/" + ev.InstanceID, "application/json", "", "Bearer " + testToken, http.StatusOK, "", `"instance_id"`},
		{"page with the token", "/devices", browser, "", "Bearer " + testToken, http.StatusOK, "", "console page GET /devices"},
		{"a session opens no API path", "/api/v1/devices", "application/json", session, "", http.StatusUnauthorized, "", "bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(tt.path, tt.accept, tt.cookie, tt.auth)
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s: %d, want %d: %s", tt.path, resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body lacks %q: %s", tt.contains, body)
			}
			if strings.Contains(body, testToken) {
				t.Error("the token is in the answer")
			}
		})
	}
}

// On loopback, reads stay open (SPEC 7) and only mutations need the token.
func TestLoopbackReadsOpen(t *testing.T) {
	srv, _, _ := newTestServer(t, testToken, true)
	for _, p := range []string{"/", "/api/v1/alerts", "/api/v1/deadletters", "/metrics"} {
		if status, _, _ := do(t, "GET", srv.URL+p, "", ""); status != http.StatusOK {
			t.Errorf("GET %s on loopback: %d, want 200", p, status)
		}
	}
}

// HTTPS with a self-signed certificate on 127.0.0.1; the CLI's client
// trusts exactly the configured certificate.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := tlscert.Write(t, dir)
	d, _, _ := testDeps(testToken, true)
	d.Public = true
	httpCfg := config.HTTP{Listen: "127.0.0.1:0", Token: testToken, TLS: &config.HTTPTLS{CertFile: certFile, KeyFile: keyFile}}
	s, err := Listen(httpCfg, Handler(d))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	httpCfg.Listen = s.Addr()
	c := NewClient(&config.Config{HTTP: httpCfg})
	if b, err := c.Call(ctx, http.MethodGet, "/api/v1/deadletters", nil); err != nil || !strings.Contains(string(b), "msg_dead1") {
		t.Fatalf("client over HTTPS: %q, %v", b, err)
	}
	// Any other certificate is refused, even a valid one for 127.0.0.1.
	otherCert, _ := tlscert.Write(t, t.TempDir())
	other := httpCfg
	other.TLS = &config.HTTPTLS{CertFile: otherCert}
	if _, err := NewClient(&config.Config{HTTP: other}).Call(ctx, http.MethodGet, "/healthz", nil); err == nil || !strings.Contains(err.Error(), "not the one in http.tls.cert_file") {
		t.Errorf("client pinned to another certificate: %v", err)
	}
	missing := httpCfg
	missing.TLS = &config.HTTPTLS{CertFile: filepath.Join(dir, "absent.pem")}
	if _, err := NewClient(&config.Config{HTTP: missing}).Call(ctx, http.MethodGet, "/healthz", nil); err == nil || !strings.Contains(err.Error(), "http.tls.cert_file") {
		t.Errorf("client without its certificate: %v", err)
	}
	// Plain HTTP to the TLS port gets nothing.
	if resp, err := http.Get("http://" + s.Addr() + "/api/v1/deadletters"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9720":  "127.0.0.1:9720",
		"0.0.0.0:9720":    "127.0.0.1:9720",
		"[::]:9720":       "[::1]:9720",
		":9720":           "127.0.0.1:9720",
		"nocbridge:9720":  "nocbridge:9720",
		"[2001:db8::1]:1": "[2001:db8::1]:1",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
