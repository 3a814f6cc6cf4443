package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/nocbridge/nocbridge/internal/config"
)

// hits counts the requests a test server saw and keeps their headers.
type hits struct {
	mu      sync.Mutex
	headers []http.Header
}

func (h *hits) record(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.headers = append(h.headers, r.Header.Clone())
}

func (h *hits) all() []http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]http.Header(nil), h.headers...)
}

// post sends one request with credentials through a destination's client
// and classifies a failure as the notifiers do.
func post(t *testing.T, policy, url string) error {
	t.Helper()
	c, err := NewHTTPClient(config.Destination{Name: "d", FollowRedirects: policy}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer redirect-token-9")
	req.Header.Set("X-Api-Key", "redirect-key-9")
	resp, err := c.Do(req)
	if err != nil {
		return NetworkError("POST "+RedactRawURL(url), err, NewRedactor(4, "redirect-token-9", "redirect-key-9"))
	}
	defer DrainAndClose(resp.Body)
	if resp.StatusCode/100 != 2 {
		return AnswerError("POST", resp.StatusCode, "", 0, Redactor{})
	}
	return nil
}

func TestRedirectToAnotherHostNeverReachesIt(t *testing.T) {
	var other hits
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { other.record(r) }))
	defer elsewhere.Close()
	// The same server under another name is another host.
	target := strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1) + "/landing?sig=q-secret-1"
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}))
	defer hook.Close()

	for _, policy := range []string{"", config.RedirectsNever, config.RedirectsSameHost} {
		err := post(t, policy, hook.URL+"/hook")
		var ne *Error
		if !errors.As(err, &ne) || ne.Retryable || ne.Status != http.StatusTemporaryRedirect {
			t.Fatalf("policy %q: got %v, want a permanent failure with status 307", policy, err)
		}
		want := "HTTP 307 redirect to " + strings.TrimSuffix(target, "?sig=q-secret-1") + " not followed"
		if strings.Contains(ne.Error(), "q-secret-1") {
			t.Fatalf("policy %q: the Location's query reached the reason", policy)
		}
		if !strings.Contains(ne.Reason, want) {
			t.Errorf("policy %q: reason %q, want it to name %q", policy, ne.Reason, want)
		}
	}
	if n := len(other.all()); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestRedirectSameHostFollowedOnlyWithSameHost(t *testing.T) {
	var landed hits
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/old" {
			http.Redirect(w, r, "/new", http.StatusMovedPermanently)
			return
		}
		landed.record(r)
	}))
	defer srv.Close()

	err := post(t, "", srv.URL+"/old")
	var ne *Error
	if !errors.As(err, &ne) || ne.Retryable || ne.Status != http.StatusMovedPermanently || !strings.Contains(ne.Reason, "redirect to "+srv.URL+"/new not followed") {
		t.Fatalf("default policy: got %v, want a permanent 301 naming /new", err)
	}
	if len(landed.all()) != 0 {
		t.Fatal("followed without follow_redirects")
	}
	if err := post(t, config.RedirectsSameHost, srv.URL+"/old"); err != nil {
		t.Fatalf("same_host: %v", err)
	}
	got := landed.all()
	if len(got) != 1 || got[0].Get("Authorization") != "Bearer redirect-token-9" || got[0].Get("X-Api-Key") != "redirect-key-9" {
		t.Errorf("same_host: %d requests landed, want 1 with the credentials (same host)", len(got))
	}
}

func TestRedirectLoopBounded(t *testing.T) {
	var seen hits
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.record(r)
		http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	err := post(t, config.RedirectsSameHost, srv.URL+"/loop")
	var ne *Error
	if !errors.As(err, &ne) || ne.Retryable || !strings.Contains(ne.Reason, "more than 10 redirects") {
		t.Fatalf("got %v, want a permanent failure after 10 redirects", err)
	}
	if n := len(seen.all()); n != maxRedirects {
		t.Errorf("server saw %d requests, want %d", n, maxRedirects)
	}
}

func TestOrigin(t *testing.T) {
	same := [][2]string{
		{"https://h.example/a", "https://H.example:443/b?x"},
		{"http://h.example:80/", "http://h.example/"},
		{"http://[::1]:8080/", "http://[::1]:8080/x"},
	}
	for _, p := range same {
		if origin(mustURL(t, p[0])) != origin(mustURL(t, p[1])) {
			t.Errorf("%s and %s: want the same origin", p[0], p[1])
		}
	}
	for _, p := range [][2]string{
		{"https://h.example/", "http://h.example/"},
		{"https://h.example/", "https://h.example:8443/"},
		{"https://h.example/", "https://evil.example/"},
	} {
		if origin(mustURL(t, p[0])) == origin(mustURL(t, p[1])) {
			t.Errorf("%s and %s: want different origins", p[0], p[1])
		}
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
