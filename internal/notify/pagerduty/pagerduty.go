// Package pagerduty is the `pagerduty` destination: PagerDuty Events API v2.
// A firing alert is a `trigger` and its clearing a `resolve`, both with
// dedup_key = the alert's instance id, so PagerDuty itself folds retries,
// restarts and duplicates into one incident.
package pagerduty

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
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Factory  = New
)

// Notifier sends one Events API v2 event per notification.
type Notifier struct {
	s           *settings
	target      string // method and redacted URL, for reasons and logs
	externalURL string
	userAgent   string
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
	return &Notifier{
		s:           s,
		target:      http.MethodPost + " " + notify.RedactURL(s.url),
		externalURL: env.ExternalURL,
		userAgent:   ua,
		client:      client,
		log:         lg, // env.Logger already names the destination
		now:         time.Now,
	}, nil
}

// Limits of the Events API v2.
const (
	maxSummary   = 1024
	maxErrorBody = 4 << 10
	drainLimit   = 256 << 10
)

// eventRequest is an Events API v2 request body.
type eventRequest struct {
	RoutingKey  string   `json:"routing_key"`
	EventAction string   `json:"event_action"` // trigger | resolve
	DedupKey    string   `json:"dedup_key"`
	Payload     *payload `json:"payload,omitempty"`
	Links       []link   `json:"links,omitempty"`
	Client      string   `json:"client,omitempty"`
	ClientURL   string   `json:"client_url,omitempty"`
}

type payload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"`
	Timestamp     string            `json:"timestamp"`
	Component     string            `json:"component,omitempty"`
	Group         string            `json:"group,omitempty"`
	Class         string            `json:"class,omitempty"`
	CustomDetails map[string]string `json:"custom_details"`
}

type link struct {
	Href string `json:"href"`
	Text string `json:"text"`
}

// errorResponse is what the Events API answers on a 400.
type errorResponse struct {
	Status  string   `json:"status"`
	Message string   `json:"message"`
	Errors  []string `json:"errors"`
}

// Send makes one attempt. The outbox retries; the dedup_key makes every
// retry idempotent on PagerDuty's side.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	req, err := n.request(nt)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: n.target + ": rendering summary", Err: err}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return &notify.Error{Reason: n.target + ": encoding event", Err: err}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, n.s.url.String(), bytes.NewReader(body))
	if err != nil {
		return &notify.Error{Reason: n.target + ": building request", Err: err}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", n.userAgent)

	resp, err := n.client.Do(hreq)
	if err != nil {
		return n.networkError(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		n.log.Debug("pagerduty event accepted", "event_action", req.EventAction, "dedup_key", req.DedupKey, "status", resp.StatusCode)
		return nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	reason := fmt.Sprintf("%s: HTTP %d", n.target, resp.StatusCode)
	if msg := serviceMessage(excerpt); msg != "" {
		reason += ": " + msg
	}
	return &notify.Error{
		Retryable:  notify.RetryableStatus(resp.StatusCode),
		RetryAfter: notify.RetryAfterHeader(resp.Header, n.now()),
		Status:     resp.StatusCode,
		Reason:     n.redact(reason),
	}
}

// request maps a notification to an Events API v2 event.
func (n *Notifier) request(nt notify.Notification) (eventRequest, error) {
	ev := nt.Event
	r := eventRequest{
		RoutingKey: n.s.routingKey.Reveal(),
		DedupKey:   ev.InstanceID,
	}
	if ev.Status == event.StatusResolved {
		// A resolve needs only the key; PagerDuty ignores a payload here.
		r.EventAction = "resolve"
		return r, nil
	}
	summary, err := n.summary(nt)
	if err != nil {
		return r, err
	}
	details := ev.DNAC(n.externalURL).Details
	details["Event ID"] = ev.EventID
	details["Instance ID"] = ev.InstanceID
	details["Source"] = ev.Source
	component := ev.Key
	if component == "" {
		component = ev.SubDomain
	}
	r.EventAction = "trigger"
	r.Payload = &payload{
		Summary:       summary,
		Source:        deviceLabel(ev.Device),
		Severity:      severity(ev.Severity),
		Timestamp:     ev.Timestamp.UTC().Format(time.RFC3339),
		Component:     component,
		Group:         ev.Device.Site,
		Class:         ev.EventID,
		CustomDetails: details,
	}
	r.Client = "nocbridge"
	if n.externalURL != "" {
		r.ClientURL = n.externalURL
		r.Links = []link{{Href: ev.AlertURL(n.externalURL), Text: "nocbridge alert"}}
	}
	return r, nil
}

// summary is the incident title: the template's output when set, else
// "[P1] Device unreachable: core-sw1 (10.0.0.1) is unreachable".
func (n *Notifier) summary(nt notify.Notification) (string, error) {
	if n.s.tmpl != nil {
		out, err := notify.RenderTemplate(n.s.tmpl, notify.NewTemplateData(nt.Event, nt.ID, n.externalURL))
		if err != nil {
			return "", err
		}
		return truncate(strings.Join(strings.Fields(string(out)), " "), maxSummary), nil
	}
	return truncate(title(nt.Event), maxSummary), nil
}

func title(ev event.Event) string {
	what := ev.Description
	if what == "" {
		what = deviceLabel(ev.Device)
	}
	return fmt.Sprintf("[%s] %s: %s", ev.Priority(), ev.Name, what)
}

// severity maps nocbridge's 1 (most severe) … 5 to PagerDuty's four levels.
func severity(s int) string {
	switch {
	case s <= 1:
		return "critical"
	case s == 2:
		return "error"
	case s == 3:
		return "warning"
	default:
		return "info"
	}
}

func deviceLabel(d event.Device) string {
	switch {
	case d.Name == "":
		return d.Address
	case d.Address == "" || d.Address == d.Name:
		return d.Name
	default:
		return d.Name + " (" + d.Address + ")"
	}
}

// truncate shortens s to max characters, marking the cut with an ellipsis.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// serviceMessage extracts PagerDuty's own error text ("Event object is
// invalid: Length of 'routing_key' is incorrect…"), or a trimmed excerpt of
// a body that is not its JSON (a proxy's error page, say).
func serviceMessage(body []byte) string {
	var er errorResponse
	if err := json.Unmarshal(body, &er); err == nil && (er.Message != "" || len(er.Errors) > 0) {
		parts := make([]string, 0, 2)
		if er.Message != "" {
			parts = append(parts, er.Message)
		}
		if len(er.Errors) > 0 {
			errs := append([]string(nil), er.Errors...)
			sort.Strings(errs)
			parts = append(parts, strings.Join(errs, "; "))
		}
		return strings.Join(parts, ": ")
	}
	return truncate(strings.TrimSpace(string(body)), 512)
}

// redact removes the routing key from text bound for a dead letter or log:
// a service or proxy echoing the request must not leak it.
func (n *Notifier) redact(s string) string {
	if k := n.s.routingKey.Reveal(); len(k) >= 4 {
		s = strings.ReplaceAll(s, k, "<redacted>")
	}
	return s
}

// networkError classifies a failure without a response: retryable. Only the
// cause of a *url.Error is kept (the target is already in the reason).
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
	return &notify.Error{Retryable: true, Reason: n.target + ": " + what, Err: &scrubbed{msg: n.redact(cause.Error()), err: cause}}
}

// scrubbed is an error whose text was redacted, keeping the chain for
// errors.Is (timeouts, cancellation).
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error {
	n.client.CloseIdleConnections()
	return nil
}
