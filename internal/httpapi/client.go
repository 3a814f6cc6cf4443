package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

// Client calls a running nocbridge's API, as the CLI's commands on the
// daemon do (dlq). It sends the configured token on every request, and
// speaks HTTPS when the API does, trusting the configured certificate.
type Client struct {
	base  string
	addr  string // host:port, for messages
	token config.Secret
	http  *http.Client
	err   error // why the client cannot call at all (an unreadable certificate)
}

// NewClient calls the API the config's http section serves.
func NewClient(cfg *config.Config) *Client {
	addr := dialAddr(cfg.HTTP.Listen)
	c := &Client{base: cfg.HTTP.Scheme() + "://" + addr, addr: addr, token: cfg.HTTP.Token}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.HTTP.TLS != nil {
		tr.TLSClientConfig, c.err = trusting(cfg.HTTP.TLS.CertFile)
	}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	return c
}

// dialAddr is where to reach a listen address from this machine: a
// wildcard host (0.0.0.0, ::, none) means loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
		host = "127.0.0.1"
		if err == nil && a.Is6() {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}

// trusting is a TLS config that trusts exactly the first certificate of
// certFile, the daemon's own, under whatever name it is dialled (the CLI
// dials 127.0.0.1, which a certificate rarely names).
func trusting(certFile string) (*tls.Config, error) {
	data, err := config.ReadFile(certFile, config.MaxSmallFile)
	if err != nil {
		return nil, fmt.Errorf("http.tls.cert_file: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("http.tls.cert_file %s: no PEM certificate", certFile)
	}
	want := block.Bytes
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Name and chain checks are replaced by the exact match below.
		InsecureSkipVerify: true, //nolint:gosec // pinned by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want) {
				return errors.New("the API's certificate is not the one in http.tls.cert_file")
			}
			return nil
		},
	}, nil
}

// maxAnswer bounds what the client reads of an answer.
const maxAnswer = 16 << 20

// Call sends a request (a JSON body when body is not nil) and returns the
// answer's body; a non-2xx answer is an error carrying its message.
func (c *Client) Call(ctx context.Context, method, path string, body any) ([]byte, error) {
	b, _, err := c.call(ctx, method, path, body)
	return b, err
}

// Get is Call for a GET that also returns the answer's header (a page's
// X-Next-Cursor).
func (c *Client) Get(ctx context.Context, path string) ([]byte, http.Header, error) {
	return c.call(ctx, http.MethodGet, path, nil)
}

func (c *Client) call(ctx context.Context, method, path string, body any) ([]byte, http.Header, error) {
	if c.err != nil {
		return nil, nil, c.err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok := c.token.Reveal(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("is nocbridge running on %s? %w", c.addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode/100 != 2 {
		msg := string(bytes.TrimSpace(b))
		var answer struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &answer) == nil && answer.Error != "" {
			msg = answer.Error // the API's own words, without the JSON around them
		}
		return nil, resp.Header, &APIError{Status: resp.StatusCode, Msg: fmt.Sprintf("%s: %s", resp.Status, msg)}
	}
	return b, resp.Header, nil
}

// APIError is an answer other than 2xx: its status code, and the status
// line with the API's message.
type APIError struct {
	Status int
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }
