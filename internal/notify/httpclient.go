package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

// DefaultTimeout is a destination's request timeout when `timeout` is unset
// (SPEC 3).
const DefaultTimeout = 10 * time.Second

// NewHTTPClient builds the client a destination sends with: its timeout, its
// tls settings, its proxy_url and its follow_redirects. The environment's HTTP(S)_PROXY is ignored
// on purpose: a daemon's egress should follow its config only, and tests on
// loopback must never be proxied by a stray variable.
func NewHTTPClient(d config.Destination, baseDir string) (*http.Client, error) {
	timeout := d.Timeout.D()
	if timeout <= 0 {
		timeout = DefaultTimeout
	}

	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if d.TLS.InsecureSkipVerify {
		tlsCfg.InsecureSkipVerify = true //nolint:gosec // explicit opt-in by config
	}
	if d.TLS.CAFile != "" {
		path := d.TLS.CAFile
		if !filepath.IsAbs(path) && baseDir != "" {
			path = filepath.Join(baseDir, path)
		}
		pem, err := config.ReadFile(path, config.MaxSmallFile)
		if err != nil {
			return nil, fmt.Errorf("destination %q: tls.ca_file: %w", d.Name, err)
		}
		// Appended to the system pool so a private CA adds trust rather than
		// replacing it (a proxy or redirect may still use public CAs).
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("destination %q: tls.ca_file %s: no PEM certificates found", d.Name, path)
		}
		tlsCfg.RootCAs = pool
	}

	dialer := &net.Dialer{Timeout: min(timeout, 30*time.Second), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 10*time.Second),
		ExpectContinueTimeout: time.Second,
	}
	if d.ProxyURL != "" {
		pu, err := url.Parse(d.ProxyURL)
		if err != nil {
			// url.Parse's error quotes the whole URL, which may hold a password.
			return nil, fmt.Errorf("destination %q: proxy_url is not a valid URL", d.Name)
		}
		switch pu.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return nil, fmt.Errorf("destination %q: proxy_url %s: scheme must be http, https or socks5", d.Name, RedactURL(pu))
		}
		if pu.Host == "" {
			return nil, fmt.Errorf("destination %q: proxy_url %s: missing host", d.Name, RedactURL(pu))
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	return &http.Client{Transport: statusTransport{tr}, Timeout: timeout, CheckRedirect: checkRedirect(d.FollowRedirects)}, nil
}

// WithAnswerStatus returns a context under which a destination's client
// (NewHTTPClient) notes the HTTP status of each answer it gets, and a
// function reporting the last one (0: none came): the outbox shows a
// delivered notification's status too, which Send does not return.
func WithAnswerStatus(ctx context.Context) (context.Context, func() int) {
	b := new(atomic.Int32)
	return context.WithValue(ctx, answerStatusKey{}, b), func() int { return int(b.Load()) }
}

type answerStatusKey struct{}

// statusTransport notes each answer's status for WithAnswerStatus.
type statusTransport struct{ next *http.Transport }

// CloseIdleConnections lets http.Client.CloseIdleConnections (a
// notifier's Close) reach the transport's connections.
func (t statusTransport) CloseIdleConnections() { t.next.CloseIdleConnections() }

func (t statusTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if b, ok := r.Context().Value(answerStatusKey{}).(*atomic.Int32); ok && resp != nil {
		b.Store(int32(resp.StatusCode))
	}
	return resp, err
}

// RedactURL prints scheme, host and path only: URLs carry secrets in their
// userinfo and query (tokens in webhook URLs), which must never reach logs or
// dead letters.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

// RedactRawURL is RedactURL for a string; an unparsable URL prints as a
// placeholder rather than risking its content.
func RedactRawURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid URL>"
	}
	return RedactURL(u)
}

// RetryAfterHeader parses Retry-After, given as delay seconds or an
// HTTP-date, into a delay from now. Absent, invalid or past values give 0.
func RetryAfterHeader(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Guard against overflow from absurd values.
		if secs > int64((1<<63-1)/int64(time.Second)) {
			secs = int64((1<<63 - 1) / int64(time.Second))
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
