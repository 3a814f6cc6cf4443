// Package pagerduty is the `pagerduty` destination: PagerDuty Events API v2.
// A firing alert is a `trigger` and its clearing a `resolve`, both with
// dedup_key = the alert's instance id, so PagerDuty itself folds retries,
// restarts and duplicates into one incident.
package pagerduty

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

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
	api         *notify.JSONAPI
	log         *slog.Logger
}

// New validates the destination's keys (all problems at once, each at its
// line) and builds the notifier.
func New(d config.Destination, env notify.Env) (notify.Notifier, error) {
	s, deps, err := notify.Prepare(d, env, (*Config).validate)
	if err != nil {
		return nil, err
	}
	return &Notifier{
		s:           s,
		target:      http.MethodPost + " " + notify.RedactURL(s.url),
		externalURL: env.ExternalURL,
		api:         notify.NewJSONAPI(deps, "", []string{s.routingKey.Reveal()}, serviceMessage, ""),
		log:         deps.Logger,
	}, nil
}

// maxSummary is the Events API v2 limit on payload.summary.
const maxSummary = 1024

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
	if err := n.api.Call(ctx, http.MethodPost, n.s.url, req, nil); err != nil {
		return err
	}
	n.log.Debug("pagerduty event accepted", "event_action", req.EventAction, "dedup_key", req.DedupKey)
	return nil
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
		Source:        notify.DeviceLabel(ev.Device),
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
		return notify.Truncate(notify.OneLine(string(out)), maxSummary), nil
	}
	// Unlike the ticket types, the summary keeps a description's line breaks.
	return notify.Truncate(notify.Headline(nt.Event), maxSummary), nil
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
	return notify.Excerpt(body)
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error { return n.api.Close() }
