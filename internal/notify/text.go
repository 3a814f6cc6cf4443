package notify

import (
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
)

// DeviceLabel names a device for people: "core-sw1 (10.0.0.1)", or only the
// name or the address when the other is missing or the same.
func DeviceLabel(d inventory.Device) string {
	switch {
	case d.Name == "":
		return d.Address
	case d.Address == "" || d.Address == d.Name:
		return d.Name
	default:
		return d.Name + " (" + d.Address + ")"
	}
}

// Headline is "[P1] Device unreachable: core-sw1 (10.0.0.1) is unreachable":
// priority, the rule's generic event name, and the description or else the
// device. The
// description's line breaks are kept; Title is the one-line form.
func Headline(ev event.Event) string {
	what := ev.Description
	if what == "" {
		what = DeviceLabel(ev.Device)
	}
	return fmt.Sprintf("[%s] %s: %s", ev.Priority(), ev.GenericName(), what)
}

// Title is Headline on one line, as ticket summaries and alert messages
// need it.
func Title(ev event.Event) string { return OneLine(Headline(ev)) }

// OneLine collapses every run of whitespace, line breaks included, into one
// space and trims the ends.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Describe is the default plain-text rendering of an event for services
// without markup (ticket descriptions, close notes): a first line, a blank
// line, then "Key: value" lines, empty values left out. alertURL is listed
// only when absolute, since a bare path means no external_url is set.
func Describe(ev event.Event, alertURL string) string {
	var b strings.Builder
	if ev.Status == event.StatusResolved {
		b.WriteString("RESOLVED: ")
	}
	if ev.Description != "" {
		b.WriteString(ev.Description)
	} else {
		b.WriteString(ev.Name + " on " + DeviceLabel(ev.Device))
	}
	b.WriteString("\n\n")
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	line("Status", string(ev.Status))
	line("Severity", fmt.Sprintf("%d (%s)", ev.Severity, ev.Priority()))
	line("Event", ev.GenericName()+" ("+ev.EventID+")")
	line("Device", DeviceLabel(ev.Device))
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

// PlainText is a ticket's text for a notification: the template's output,
// trimmed, when t is set, else Describe.
func PlainText(t *template.Template, nt Notification, externalURL string) (string, error) {
	if t == nil {
		return Describe(nt.Event, nt.Event.AlertURL(externalURL)), nil
	}
	return RenderText(t, nt.Event, nt.ID, externalURL)
}

// RenderText renders t over ev (which chat types pass escaped) and trims
// the surrounding whitespace templates tend to leave.
func RenderText(t *template.Template, ev event.Event, id, externalURL string) (string, error) {
	out, err := RenderTemplate(t, NewTemplateData(ev, id, externalURL))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// CutBytes shortens s to at most max bytes, on a character boundary, ending
// the cut with mark: for limits services count in bytes.
func CutBytes(s string, max int, mark string) string {
	if len(s) <= max {
		return s
	}
	n := max - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}

// Ellipsis marks where Truncate cut.
const Ellipsis = "…"

// Truncate shortens s to at most max characters (not bytes), ending the cut
// with Ellipsis. Services count field limits in characters.
func Truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + Ellipsis
}

// Excerpt is a response body that is not the service's error JSON (a
// proxy's page, say), trimmed for a reason. The Redactor cuts it, after
// scrubbing, so no secret is cut in half and half kept.
func Excerpt(body []byte) string {
	return strings.TrimSpace(string(body))
}

// OrDash shows an empty value as a dash, so a card's fact never looks
// broken.
func OrDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// EscapeEvent is ev with every text value (labels and details included)
// passed through esc. Chat types give templates this copy: event values are
// data, and must not format a message or mention a whole channel.
func EscapeEvent(ev event.Event, esc func(string) string) event.Event {
	for _, p := range []*string{&ev.InstanceID, &ev.EventID, &ev.Name, &ev.Description, &ev.Category, &ev.Domain,
		&ev.SubDomain, &ev.Source, &ev.Kind, &ev.Key, &ev.Device.Name, &ev.Device.Address, &ev.Device.Site, &ev.Device.Role} {
		*p = esc(*p)
	}
	ev.Device.Labels = escapeMap(ev.Device.Labels, esc)
	ev.Details = escapeMap(ev.Details, esc)
	return ev
}

func escapeMap(m map[string]string, esc func(string) string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[esc(k)] = esc(v)
	}
	return out
}

// ChatText is a chat message's main text: the template's output when t is
// set, else the event's description. Event values are data, not markup:
// esc escapes them (the description, and every value a template sees), so
// text from a device can never format the message or mention a channel. A
// template's own text is markup and stays as written.
func ChatText(t *template.Template, nt Notification, externalURL string, esc func(string) string) (string, error) {
	if t == nil {
		return esc(nt.Event.Description), nil
	}
	return RenderText(t, EscapeEvent(nt.Event, esc), nt.ID, externalURL)
}

// severityEmoji marks severities 1 … 5 in chat text (Discord, Webex).
var severityEmoji = map[int]string{1: "🔴", 2: "🟠", 3: "🟡", 4: "🔵", 5: "⚪"}

// ResolvedEmoji marks a resolve in chat text.
const ResolvedEmoji = "✅"

// SeverityEmoji marks a severity in chat text; one outside 1–5 looks
// like 5.
func SeverityEmoji(severity int) string {
	if e, ok := severityEmoji[severity]; ok {
		return e
	}
	return severityEmoji[5]
}

// StatusEmoji is ResolvedEmoji for a resolve, else SeverityEmoji.
func StatusEmoji(severity int, status event.Status) string {
	if status == event.StatusResolved {
		return ResolvedEmoji
	}
	return SeverityEmoji(severity)
}
