// Package teams is the `teams` destination: an Adaptive Card posted to a
// Power Automate Workflow's trigger URL, which posts it to a Teams channel or
// chat (Office 365 connectors, the old incoming webhooks, are retired). A
// resolve is a new card marked resolved.
package teams

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Factory  = New
)

// MaxTextBytes bounds the card's main text: Teams refuses messages over
// about 28 KB, and the rest of the card needs room too.
const MaxTextBytes = 20000

// Notifier posts one Adaptive Card per notification.
type Notifier struct {
	externalURL string
	s           *settings
	post        *notify.ChatPoster
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
		externalURL: env.ExternalURL,
		s:           s,
		post:        notify.NewWebhookPoster("teams workflow", s.url, deps, notify.TextOnly(errorText)),
		log:         deps.Logger.With("host", s.url.Host),
	}, nil
}

// Send makes one attempt. The outbox retries; this only classifies.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	status, err := n.post.Send(ctx, "teams", nt, n.bodyText, func(text string) any { return render(nt.Event, n.externalURL, text) })
	if err == nil {
		// Workflows answer 202 Accepted: the run is queued, not yet posted.
		n.log.Debug("teams card accepted", "status", status, "event_status", nt.Event.Status)
	}
	return err
}

// DigestPolicy is the destination's `digest`.
func (n *Notifier) DigestPolicy() notify.DigestPolicy { return n.s.digest }

// SendDigest posts the digest as one card. The outbox retries; this only
// classifies.
func (n *Notifier) SendDigest(ctx context.Context, d notify.Digest) error {
	_, err := n.post.PostJSON(ctx, "teams", renderDigest(d, n.s.digest, n.externalURL))
	return err
}

// errorText is the Workflow service's own explanation
// ({"error": {"code": …, "message": …}}), or the raw excerpt.
func errorText(body []byte) string {
	var we struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &we) != nil || (we.Error.Code == "" && we.Error.Message == "") {
		return string(bytes.TrimSpace(body))
	}
	if we.Error.Code == "" {
		return we.Error.Message
	}
	return we.Error.Code + ": " + we.Error.Message
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error { return n.post.Close() }

// --- rendering ---

// bodyText is the card's main text: the template's output, or the event's
// description.
func (n *Notifier) bodyText(nt notify.Notification) (string, error) {
	if n.s.tmpl == nil {
		return nt.Event.Description, nil
	}
	return notify.RenderText(n.s.tmpl, nt.Event, nt.ID, n.externalURL)
}

// message is the body a Workflow's "When a Teams webhook request is
// received" trigger expects: a message with Adaptive Card attachments.
type message struct {
	Type        string       `json:"type"`
	Attachments []attachment `json:"attachments"`
}

type attachment struct {
	ContentType string `json:"contentType"`
	Content     card   `json:"content"`
}

type card struct {
	Type    string         `json:"type"`
	Version string         `json:"version"`
	Schema  string         `json:"$schema"`
	MSTeams map[string]any `json:"msteams,omitempty"`
	Body    []any          `json:"body"`
	Actions []action       `json:"actions"`
}

type action struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

type textBlock struct {
	Type   string `json:"type"`
	Text   string `json:"text"`
	Wrap   bool   `json:"wrap"`
	Weight string `json:"weight,omitempty"`
	Size   string `json:"size,omitempty"`
	Color  string `json:"color,omitempty"`
}

type container struct {
	Type  string `json:"type"`
	Style string `json:"style"`
	Bleed bool   `json:"bleed"`
	Items []any  `json:"items"`
}

type fact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type factSet struct {
	Type  string `json:"type"`
	Facts []fact `json:"facts"`
}

// severityStyle maps severity to Adaptive Card colours (the host theme
// decides the exact shade): 1–2 attention (red), 3 warning, 4 accent, 5
// default; resolved is good (green).
func severityStyle(ev event.Event) string {
	if ev.Status == event.StatusResolved {
		return "good"
	}
	switch ev.Severity {
	case 1, 2:
		return "attention"
	case 3:
		return "warning"
	case 4:
		return "accent"
	}
	return "default"
}

// newMessage wraps an Adaptive Card's body and its one button.
func newMessage(body []any, button action) message {
	return message{
		Type: "message",
		Attachments: []attachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content: card{
				Type:    "AdaptiveCard",
				Version: "1.4",
				Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
				MSTeams: map[string]any{"width": "Full"},
				Body:    body,
				Actions: []action{button},
			},
		}},
	}
}

// titleBand is the card's heading on a band coloured by style.
func titleBand(style, title string) container {
	return container{Type: "Container", Style: style, Bleed: true, Items: []any{
		textBlock{Type: "TextBlock", Text: title, Wrap: true, Weight: "Bolder", Size: "Large", Color: style},
	}}
}

// render builds the card: a coloured title band, the text, the facts, and a
// button to the alert.
func render(ev event.Event, externalURL, text string) message {
	title := ev.Priority() + " " + ev.Name
	if ev.Status == event.StatusResolved {
		title = "RESOLVED: " + ev.Name
	}
	style := severityStyle(ev)
	dev := notify.DeviceLabel(ev.Device)
	facts := []fact{
		{"Device", dev},
		{"Site", notify.OrDash(ev.Device.Site)},
		{"Severity", fmt.Sprintf("%s (severity %d)", ev.Priority(), ev.Severity)},
		{"Status", string(ev.Status)},
		{"Event ID", ev.EventID},
		{"Source", notify.OrDash(ev.Source)},
		{"Time", ev.Timestamp.UTC().Format("2006-01-02 15:04:05 UTC")},
	}
	if ev.Key != "" {
		facts = append(facts, fact{"Instance", ev.Key})
	}
	body := []any{titleBand(style, title)}
	if text != "" {
		body = append(body, textBlock{Type: "TextBlock", Text: truncate(text, MaxTextBytes), Wrap: true})
	}
	body = append(body, factSet{Type: "FactSet", Facts: facts})
	return newMessage(body, action{Type: "Action.OpenUrl", Title: "Open alert", URL: ev.AlertURL(externalURL)})
}

// linkText keeps a name from closing the markdown link it is the text of.
var linkText = strings.NewReplacer("[", "(", "]", ")")

// renderDigest is a card: the count on an accent band, one text line per
// alert, the digest's id, and a button to the alert list. The lines stay
// within MaxTextBytes; those past it are counted in the "and N more" line.
func renderDigest(d notify.Digest, p notify.DigestPolicy, externalURL string) message {
	v := notify.NewDigestView(d, p, externalURL)
	body := []any{titleBand("accent", v.Title)}
	lines := v.Lines(MaxTextBytes, func(s string) int { return len(s) }, func(e notify.DigestEntry) string { return e.Markdown(linkText.Replace) }, v.MarkdownMore)
	for _, l := range lines {
		body = append(body, textBlock{Type: "TextBlock", Text: l, Wrap: true})
	}
	body = append(body, textBlock{Type: "TextBlock", Text: "nocbridge digest " + v.ID, Wrap: true, Size: "Small"})
	return newMessage(body, action{Type: "Action.OpenUrl", Title: "Open alert list", URL: v.ListURL})
}

const truncatedMark = "…(truncated)"

// truncate cuts s to at most max bytes on a character boundary.
func truncate(s string, max int) string { return notify.CutBytes(s, max, truncatedMark) }
