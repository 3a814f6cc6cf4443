package notify

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, value string
		want        time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"seconds with spaces", " 5 ", 5 * time.Second},
		{"zero", "0", 0},
		{"negative", "-3", 0},
		{"http-date ahead", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"http-date past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"RFC 850 date", now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute},
		{"garbage", "soon", 0},
		{"huge", "99999999999999999", time.Duration(1<<63-1) / time.Second * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if got := RetryAfterHeader(h, now); got != tt.want {
				t.Fatalf("RetryAfterHeader(%q) = %s, want %s", tt.value, got, tt.want)
			}
		})
	}
}

func TestNewHTTPClient(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		d       config.Destination
		wantErr string // substring; "" means success
		timeout time.Duration
		proxied bool
	}{
		{name: "defaults", d: config.Destination{Name: "a"}, timeout: DefaultTimeout},
		{name: "timeout", d: config.Destination{Name: "a", Timeout: config.Duration(3 * time.Second)}, timeout: 3 * time.Second},
		{name: "proxy", d: config.Destination{Name: "a", ProxyURL: "http://proxy.example:3128"}, timeout: DefaultTimeout, proxied: true},
		{name: "socks proxy", d: config.Destination{Name: "a", ProxyURL: "socks5://127.0.0.1:1080"}, timeout: DefaultTimeout, proxied: true},
		{name: "insecure", d: config.Destination{Name: "a", TLS: config.TLS{InsecureSkipVerify: true}}, timeout: DefaultTimeout},
		{name: "missing ca_file", d: config.Destination{Name: "hook", TLS: config.TLS{CAFile: "nope.pem"}}, wantErr: `destination "hook": tls.ca_file: open ` + filepath.Join(dir, "nope.pem")},
		{name: "ca_file without certs", d: config.Destination{Name: "hook", TLS: config.TLS{CAFile: "junk.pem"}}, wantErr: `destination "hook": tls.ca_file ` + filepath.Join(dir, "junk.pem") + ": no PEM certificates found"},
		{name: "proxy scheme", d: config.Destination{Name: "hook", ProxyURL: "ftp://u:pw-777@proxy/x?k=1"}, wantErr: `destination "hook": proxy_url ftp://proxy/x: scheme must be`},
		{name: "proxy unparsable", d: config.Destination{Name: "hook", ProxyURL: "http://u:pw-777@[::1"}, wantErr: `destination "hook": proxy_url is not a valid URL`},
		{name: "proxy without host", d: config.Destination{Name: "hook", ProxyURL: "http://"}, wantErr: `proxy_url http:: missing host`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewHTTPClient(tt.d, dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw-777") {
					t.Fatalf("error leaks the proxy password")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Timeout != tt.timeout {
				t.Errorf("timeout = %s, want %s", c.Timeout, tt.timeout)
			}
			tr := c.Transport.(statusTransport).next
			if (tr.Proxy != nil) != tt.proxied {
				t.Errorf("proxy set = %v, want %v", tr.Proxy != nil, tt.proxied)
			}
			if tt.proxied {
				req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
				if u, err := tr.Proxy(req); err != nil || u == nil || u.String() != tt.d.ProxyURL {
					t.Errorf("proxy for loopback = %v, %v; want %s (explicit proxy_url applies to every request)", u, err, tt.d.ProxyURL)
				}
			}
			if tr.MaxIdleConnsPerHost < 32 || tr.TLSHandshakeTimeout <= 0 || tr.TLSClientConfig == nil {
				t.Errorf("transport limits not set: %+v", tr)
			}
			if tr.TLSClientConfig.InsecureSkipVerify != tt.d.TLS.InsecureSkipVerify {
				t.Errorf("insecure_skip_verify not applied")
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@hooks.example.com/services/T0/B0?token=abc#frag": "https://hooks.example.com/services/T0/B0",
		"http://127.0.0.1:8080/x": "http://127.0.0.1:8080/x",
		"http://h/%zz":            "<invalid URL>",
	} {
		if got := RedactRawURL(in); got != want {
			t.Errorf("RedactRawURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWithAnswerStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		noCtx  bool // a request sent without WithAnswerStatus
		want   int
	}{
		{name: "accepted", status: http.StatusAccepted, want: http.StatusAccepted},
		{name: "ok", status: http.StatusOK, want: http.StatusOK},
		{name: "server error", status: http.StatusServiceUnavailable, want: http.StatusServiceUnavailable},
		{name: "no context", status: http.StatusOK, noCtx: true, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			c, err := NewHTTPClient(config.Destination{Name: "a"}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx, status := WithAnswerStatus(t.Context())
			reqCtx := ctx
			if tt.noCtx {
				reqCtx = t.Context()
			}
			if got := status(); got != 0 {
				t.Fatalf("status before any answer = %d, want 0", got)
			}
			req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, srv.URL, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := status(); got != tt.want {
				t.Fatalf("status = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestWithAnswerStatusNoAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := srv.URL
	srv.Close() // nothing listens: no answer, no status
	c, err := NewHTTPClient(config.Destination{Name: "a"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, status := WithAnswerStatus(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("request to a closed server succeeded")
	}
	if got := status(); got != 0 {
		t.Fatalf("status = %d, want 0 without an answer", got)
	}
}
