// Package webhook is the `webhook` destination: the DNA Center payload (or a
// user template) POSTed to a URL, signed per Standard Webhooks when a secret
// is set.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
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
	redactor    notify.Redactor
	client      *http.Client
	log         *slog.Logger
	now         func() time.Time
}

// New validates the destination's keys (all problems at once, each at its
// line) and builds the notifier.
func New(d config.Destination, env notify.Env) (notify.Notifier, error) {
	s, deps, err := notify.Prepare(d, env, (*Config).validate)
	if err != nil {
		return nil, err
	}
	target := s.method + " " + notify.RedactURL(s.url)
	return &Notifier{
		name:        d.Name,
		externalURL: env.ExternalURL,
		userAgent:   deps.UserAgent,
		s:           s,
		target:      target,
		redactor:    notify.NewRedactor(3, s.secrets...), // very short strings would mangle unrelated text
		client:      deps.Client,
		log:         deps.Logger.With("url", notify.RedactURL(s.url)),
		now:         time.Now,
	}, nil
}

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
		return &notify.Error{Reason: fmt.Sprintf("%s: building request", n.target), Err: n.redactor.Error(err)}
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
		return notify.NetworkError(n.target, err, n.redactor)
	}
	defer notify.DrainAndClose(resp.Body)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		n.log.Debug("webhook delivered", "webhook_id", nt.ID, "status", resp.StatusCode, "duration", time.Since(start))
		return nil
	}
	return notify.AnswerError(n.target, resp.StatusCode, string(notify.ReadErrorBody(resp)), notify.RetryAfterHeader(resp.Header, n.now()), n.redactor)
}

// urlSecrets are the parts of u that may be secret: userinfo, query,
// fragment (the whole URL first, so it goes as one).
func urlSecrets(u *url.URL) []string {
	var secrets []string
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		secrets = append(secrets, u.String())
	}
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
	return secrets
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
