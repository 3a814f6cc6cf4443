// Package opsgenie is the `opsgenie` destination: the Opsgenie Alert API. A
// firing alert creates an Opsgenie alert with alias = the alert's instance
// id (Opsgenie folds a create for an alias that is already open into that
// alert, so retries and restarts never make a second one); its clearing
// closes the alert by alias.
package opsgenie

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
	"slices"
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

// Notifier creates and closes one Opsgenie alert per alert instance.
type Notifier struct {
	s           *settings
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
		externalURL: env.ExternalURL,
		userAgent:   ua,
		client:      client,
		log:         lg, // env.Logger already names the destination
		now:         time.Now,
	}, nil
}

// Field limits of the Alert API; longer values are cut, not rejected.
const (
	maxMessage     = 130
	maxDescription = 15000
	maxNote        = 25000
	maxEntity      = 512
	maxTag         = 50
	maxErrorBody   = 4 << 10
	drainLimit     = 256 << 10
	source         = "nocbridge"
)

type createRequest struct {
	Message     string            `json:"message"`
	Alias       string            `json:"alias"`
	Description string            `json:"description"`
	Priority    string            `json:"priority"`
	Source      string            `json:"source"`
	Entity      string            `json:"entity,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Details     map[string]string `json:"details"`
}

type closeRequest struct {
	Source string `json:"source"`
	Note   string `json:"note"`
}

// errorAnswer is the Alert API's error body.
type errorAnswer struct {
	Message string            `json:"message"`
	Errors  map[string]string `json:"errors"`
}

// Send makes one attempt. The outbox retries; the alias makes a repeated
// create fold into the open alert, and closing a closed alert is a no-op.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	ev := nt.Event
	text, err := n.text(nt)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: "opsgenie: rendering description", Err: err}
	}
	if ev.Status == event.StatusResolved {
		u := n.apiURL("/v2/alerts/"+url.PathEscape(ev.InstanceID)+"/close", url.Values{"identifierType": {"alias"}})
		err := n.call(ctx, u, closeRequest{Source: source, Note: truncate(text, maxNote)})
		var ne *notify.Error
		if errors.As(err, &ne) && ne.Status == http.StatusNotFound {
			// Closed by hand, expired, or never created: nothing left open.
			n.log.Info("opsgenie alert already closed or unknown", "alias", ev.InstanceID)
			return nil
		}
		if err == nil {
			n.log.Debug("opsgenie close accepted", "alias", ev.InstanceID)
		}
		return err
	}
	details := ev.DNAC(n.externalURL).Details
	details["Event ID"] = ev.EventID
	details["Source"] = ev.Source
	if n.externalURL != "" {
		details["Alert Link"] = ev.AlertURL(n.externalURL)
	}
	req := createRequest{
		Message:     truncate(title(ev), maxMessage),
		Alias:       ev.InstanceID,
		Description: truncate(text, maxDescription),
		Priority:    priority(ev.Severity),
		Source:      source,
		Entity:      truncate(ev.Device.Name, maxEntity),
		Tags:        tags(ev.EventID, ev.Device.Site, ev.Device.Role),
		Details:     details,
	}
	if err := n.call(ctx, n.apiURL("/v2/alerts", nil), req); err != nil {
		return err
	}
	n.log.Debug("opsgenie create accepted", "alias", ev.InstanceID)
	return nil
}

// priority maps severity 1 (most severe) … 5 to Opsgenie's P1 … P5.
func priority(severity int) string {
	return fmt.Sprintf("P%d", min(max(severity, 1), 5))
}

// tags are the non-empty values, each within Opsgenie's tag length.
func tags(values ...string) []string {
	var out []string
	for _, v := range values {
		v = truncate(strings.TrimSpace(v), maxTag)
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// text is the description (firing) or the close note (resolved): the
// template's output when set, else the default text.
func (n *Notifier) text(nt notify.Notification) (string, error) {
	if n.s.tmpl != nil {
		out, err := notify.RenderTemplate(n.s.tmpl, notify.NewTemplateData(nt.Event, nt.ID, n.externalURL))
		return strings.TrimSpace(string(out)), err
	}
	return describe(nt.Event, nt.Event.AlertURL(n.externalURL)), nil
}

// describe is the default plain-text rendering of an event.
func describe(ev event.Event, alertURL string) string {
	var b strings.Builder
	if ev.Status == event.StatusResolved {
		b.WriteString("RESOLVED: ")
	}
	if ev.Description != "" {
		b.WriteString(ev.Description)
	} else {
		b.WriteString(ev.Name + " on " + deviceLabel(ev.Device))
	}
	b.WriteString("\n\n")
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	line("Status", string(ev.Status))
	line("Severity", fmt.Sprintf("%d (%s)", ev.Severity, ev.Priority()))
	line("Event", ev.Name+" ("+ev.EventID+")")
	line("Device", deviceLabel(ev.Device))
	line("Site", ev.Device.Site)
	line("Role", ev.Device.Role)
	line("Instance", ev.Key)
	line("Source", ev.Source)
	ts := ev.Timestamp.UTC().Format(time.RFC3339)
	switch {
	case ev.Status == event.StatusResolved:
		line("Resolved at", ts)
	case ev.Kind == "event":
		line("Time", ts)
	default:
		line("Since", ts)
	}
	keys := make([]string, 0, len(ev.Details))
	for k := range ev.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line(k, ev.Details[k])
	}
	if alertURL != "" && !strings.HasPrefix(alertURL, "/") {
		line("Alert", alertURL)
	}
	return strings.TrimRight(b.String(), "\n")
}

// title is the alert message: one line, "[P1] Device unreachable: core-sw1
// (10.0.0.1) is unreachable".
func title(ev event.Event) string {
	what := ev.Description
	if what == "" {
		what = deviceLabel(ev.Device)
	}
	return strings.Join(strings.Fields(fmt.Sprintf("[%s] %s: %s", ev.Priority(), ev.Name, what)), " ")
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

func (n *Notifier) apiURL(path string, q url.Values) *url.URL {
	u := *n.s.base
	u.Path += path
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return &u
}

// call POSTs body as JSON. Any answer but 2xx is a classified *notify.Error.
func (n *Notifier) call(ctx context.Context, u *url.URL, body any) error {
	target := http.MethodPost + " " + notify.RedactURL(u)
	b, err := json.Marshal(body)
	if err != nil {
		return &notify.Error{Reason: target + ": encoding request", Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(b))
	if err != nil {
		return &notify.Error{Reason: target + ": building request", Err: err}
	}
	req.Header.Set("Authorization", "GenieKey "+n.s.apiKey.Reveal())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", n.userAgent)
	resp, err := n.client.Do(req)
	if err != nil {
		return n.networkError(target, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	reason := fmt.Sprintf("%s: HTTP %d", target, resp.StatusCode)
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

// serviceMessage is Opsgenie's message plus its per-field errors, or a
// trimmed excerpt of a body that is not its JSON.
func serviceMessage(body []byte) string {
	var ea errorAnswer
	if err := json.Unmarshal(body, &ea); err == nil && (ea.Message != "" || len(ea.Errors) > 0) {
		parts := make([]string, 0, 1+len(ea.Errors))
		if ea.Message != "" {
			parts = append(parts, ea.Message)
		}
		fields := make([]string, 0, len(ea.Errors))
		for k := range ea.Errors {
			fields = append(fields, k)
		}
		sort.Strings(fields)
		for _, k := range fields {
			parts = append(parts, k+": "+ea.Errors[k])
		}
		return strings.Join(parts, "; ")
	}
	return truncate(strings.TrimSpace(string(body)), 512)
}

// redact removes the API key from text bound for a dead letter or log: a
// proxy echoing the request must not leak it.
func (n *Notifier) redact(s string) string {
	if k := n.s.apiKey.Reveal(); len(k) >= 4 {
		s = strings.ReplaceAll(s, k, "<redacted>")
	}
	return s
}

// networkError classifies a failure without a response: retryable. Only the
// cause of a *url.Error is kept (the target is already in the reason).
func (n *Notifier) networkError(target string, err error) error {
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
	return &notify.Error{Retryable: true, Reason: target + ": " + what, Err: &scrubbed{msg: n.redact(cause.Error()), err: cause}}
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
