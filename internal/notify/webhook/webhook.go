// Package webhook is the `webhook` destination: the DNA Center payload (or a
// user template) POSTed to a URL, signed per Standard Webhooks when a secret
// is set.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

var _ notify.Notifier = (*Notifier)(nil)

// Notifier sends one HTTP request per notification.
type Notifier struct {
	name        string
	externalURL string
	userAgent   string
	s           *settings
	target      string // method and redacted URL, for errors and logs
	client      *http.Client
	log         *slog.Logger
	now         func() time.Time
}

// New validates the destination's keys (all problems at once, each at its
// line) and builds the notifier.
func New(d config.Destination, env notify.Env) (notify.Notifier, error) {
	var cfg Config
	if err := notify.DecodeConfig(env, d, &cfg); err != nil {
		return nil, err
	}
	s, errs := cfg.validate(env, d)
	if len(errs) > 0 {
		return nil, errs.Sorted()
	}
	client := env.HTTPClient
	if client == nil {
		c, err := notify.NewHTTPClient(d, env.BaseDir)
		if err != nil {
			return nil, config.Errors{{File: env.ConfigFile, Line: d.Line, Msg: err.Error()}}
		}
		client = c
	}
	ua := env.UserAgent
	if ua == "" {
		ua = "nocbridge"
	}
	lg := env.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	target := s.method + " " + notify.RedactURL(s.url)
	return &Notifier{
		name:        d.Name,
		externalURL: env.ExternalURL,
		userAgent:   ua,
		s:           s,
		target:      target,
		client:      client,
		log:         lg.With("url", notify.RedactURL(s.url)), // env.Logger already names the destination,
		now:         time.Now,
	}, nil
}

// maxErrorBody bounds how much of a failed response is read for the reason;
// drainLimit how much more is read so the connection can be reused.
const (
	maxErrorBody = 4 << 10
	drainLimit   = 256 << 10
)

// Send makes one attempt. The outbox retries; this only classifies.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	body, err := n.body(nt)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: fmt.Sprintf("%s: rendering body", n.target), Err: err}
	}
	now := n.now()
	req, err := http.NewRequestWithContext(ctx, n.s.method, n.s.url.String(), bytes.NewReader(body))
	if err != nil {
		return &notify.Error{Reason: fmt.Sprintf("%s: building request", n.target), Err: n.scrubErr(err)}
	}
	h := req.Header
	for k, v := range n.s.headers {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", n.userAgent)
	// Set directly to keep the spec's lower-case names on the wire;
	// receivers match them case-insensitively anyway.
	h[webhooksig.HeaderID] = []string{nt.ID}
	h[webhooksig.HeaderTimestamp] = []string{strconv.FormatInt(now.Unix(), 10)}
	if n.s.signingKey != nil {
		h[webhooksig.HeaderSignature] = []string{webhooksig.SignKey(n.s.signingKey, nt.ID, now, body)}
	}
	if n.s.auth != "" {
		h.Set("Authorization", n.s.auth)
	}

	start := time.Now()
	resp, err := n.client.Do(req)
	if err != nil {
		return n.networkError(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		n.log.Debug("webhook delivered", "webhook_id", nt.ID, "status", resp.StatusCode, "duration", time.Since(start))
		return nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := notify.StatusError(resp.StatusCode, bytes.TrimSpace(excerpt), notify.RetryAfterHeader(resp.Header, n.now()))
	e.Reason = n.target + ": " + e.Reason
	return e
}

// networkError classifies a failure without a response. *url.Error prints
// the full URL, which may hold a token, so only its cause is kept, and that
// is scrubbed too.
func (n *Notifier) networkError(err error) error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	what := "request failed"
	var ne net.Error
	switch {
	case errors.Is(cause, context.Canceled):
		what = "canceled"
	case errors.Is(cause, context.DeadlineExceeded) || (errors.As(cause, &ne) && ne.Timeout()):
		what = "timeout"
	}
	return &notify.Error{Retryable: true, Reason: fmt.Sprintf("%s: %s", n.target, what), Err: n.scrubErr(cause)}
}

// scrubbed hides URL secrets from an error's text while keeping the chain
// for errors.Is (timeouts, cancellation).
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

func (n *Notifier) scrubErr(err error) error {
	return &scrubbed{msg: scrubURL(err.Error(), n.s.url), err: err}
}

// scrubURL replaces the parts of u that may be secret (userinfo, query,
// fragment) wherever they appear in s.
func scrubURL(s string, u *url.URL) string {
	var secrets []string
	if u.User != nil {
		secrets = append(secrets, u.User.String())
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p))
		}
	}
	if u.RawQuery != "" {
		secrets = append(secrets, u.RawQuery)
	}
	if u.Fragment != "" {
		secrets = append(secrets, u.EscapedFragment())
	}
	for _, v := range secrets {
		if len(v) >= 3 { // very short strings would mangle unrelated text
			s = strings.ReplaceAll(s, v, "<redacted>")
		}
	}
	return s
}

func (n *Notifier) body(nt notify.Notification) ([]byte, error) {
	if n.s.tmpl == nil {
		return json.Marshal(nt.Event.DNAC(n.externalURL))
	}
	return notify.RenderTemplate(n.s.tmpl, notify.NewTemplateData(nt.Event, nt.ID, n.externalURL))
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets (or their goroutines) behind.
func (n *Notifier) Close() error {
	n.client.CloseIdleConnections()
	return nil
}
