// Package discord is the `discord` destination: an embed coloured by
// severity, posted to a channel webhook. Mentions are never parsed, so alert
// text cannot ping @everyone. A resolve is a new, green embed.
package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
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

// Discord's embed limits, in characters (discord.com/developers/docs/resources/message#embed-object-embed-limits).
const (
	maxTitle       = 256
	maxDescription = 4096
	maxFieldName   = 256
	maxFieldValue  = 1024
	maxFields      = 25
	maxFooter      = 2048
	maxEmbedTotal  = 6000 // title + description + field names and values + footer
)

// Notifier posts one embed per notification.
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
		post:        notify.NewWebhookPoster("discord webhook", s.url, deps, parseError),
		log:         deps.Logger.With("host", s.url.Host),
	}, nil
}

// Send makes one attempt. The outbox retries; this only classifies.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	status, err := n.post.Send(ctx, "discord", nt, n.description, func(desc string) any { return render(nt.Event, n.externalURL, desc) })
	if err == nil {
		n.log.Debug("discord embed posted", "status", status, "event_status", nt.Event.Status)
	}
	return err
}

// DigestPolicy is the destination's `digest`.
func (n *Notifier) DigestPolicy() notify.DigestPolicy { return n.s.digest }

// SendDigest posts the digest as one embed. The outbox retries; this only
// classifies.
func (n *Notifier) SendDigest(ctx context.Context, d notify.Digest) error {
	_, err := n.post.PostJSON(ctx, "discord", renderDigest(d, n.s.digest, n.externalURL))
	return err
}

// parseError reads Discord's error body: {"message", "code", "errors"} for
// failures, {"message", "retry_after" (seconds, fractional), "global"} for a
// 429. retry_after is more precise than the integer Retry-After header.
// Anything else comes back as the raw excerpt.
func parseError(body []byte) (string, time.Duration) {
	var de struct {
		Message    string          `json:"message"`
		Code       int             `json:"code"`
		Errors     json.RawMessage `json:"errors"`
		RetryAfter float64         `json:"retry_after"`
		Global     bool            `json:"global"`
	}
	if json.Unmarshal(body, &de) != nil || de.Message == "" {
		return string(bytes.TrimSpace(body)), 0
	}
	txt := de.Message
	if de.Code != 0 {
		txt += fmt.Sprintf(" (code %d)", de.Code)
	}
	if de.Global {
		txt += " (global rate limit)"
	}
	if details := fieldErrors(de.Errors); len(details) > 0 {
		txt += ": " + strings.Join(details, "; ")
	}
	var after time.Duration
	if ms := math.Round(de.RetryAfter * 1000); ms > 0 && ms < float64(math.MaxInt64/int64(time.Millisecond)) {
		after = time.Duration(ms) * time.Millisecond
	}
	return txt, after
}

// fieldErrors flattens Discord's nested "errors" object into
// "embeds.0.description: Must be 4096 or fewer in length." lines.
func fieldErrors(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var tree map[string]json.RawMessage
	if json.Unmarshal(raw, &tree) != nil {
		return nil
	}
	var out []string
	var walk func(path string, node map[string]json.RawMessage)
	walk = func(path string, node map[string]json.RawMessage) {
		keys := make([]string, 0, len(node))
		for k := range node {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "_errors" {
				var list []struct {
					Message string `json:"message"`
				}
				if json.Unmarshal(node[k], &list) == nil {
					for _, e := range list {
						out = append(out, strings.TrimPrefix(path, ".")+": "+e.Message)
					}
				}
				continue
			}
			var child map[string]json.RawMessage
			if json.Unmarshal(node[k], &child) == nil {
				walk(path+"."+k, child)
			}
		}
	}
	walk("", tree)
	return out
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error { return n.post.Close() }

// --- rendering ---

// description is the embed's description: the template's output, or the
// event's description. Event values are data, not markdown: escaped, so
// device text cannot format the embed or hide a masked link. A template's
// own text is markdown and stays as written.
func (n *Notifier) description(nt notify.Notification) (string, error) {
	return notify.ChatText(n.s.tmpl, nt, n.externalURL, esc)
}

// escaper backslash-escapes Discord's markdown characters. Hyphens are left
// alone: they only start a list at a line's start, and device names are
// full of them.
var escaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `~`, `\~`, `|`, `\|`,
	`>`, `\>`, `#`, `\#`, `[`, `\[`, `]`, `\]`,
)

func esc(s string) string { return escaper.Replace(s) }

// message is the webhook body. allowed_mentions with an empty parse list
// turns every @everyone, @here, user and role mention into plain text.
type message struct {
	Embeds          []embed         `json:"embeds"`
	AllowedMentions allowedMentions `json:"allowed_mentions"`
}

type allowedMentions struct {
	Parse []string `json:"parse"`
}

type embed struct {
	Title       string  `json:"title"`
	Description string  `json:"description,omitempty"`
	URL         string  `json:"url,omitempty"`
	Color       int     `json:"color"`
	Timestamp   string  `json:"timestamp"`
	Fields      []field `json:"fields"`
	Footer      *footer `json:"footer,omitempty"`
}

type field struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type footer struct {
	Text string `json:"text"`
}

// Severity colours: 1 red … 5 grey; resolved green.
var severityColors = map[int]int{1: 0xD40E0D, 2: 0xF2711C, 3: 0xECB22E, 4: 0x1E88E5, 5: 0x9E9E9E}

const resolvedColor = 0x2EB67D

// render builds the embed within Discord's limits; when the total would
// exceed 6,000 characters the description gives way, never the facts.
func render(ev event.Event, externalURL, desc string) message {
	color, ok := severityColors[ev.Severity]
	if !ok {
		color = severityColors[5]
	}
	title := notify.SeverityEmoji(ev.Severity) + " " + ev.Priority() + " " + ev.Name
	if ev.Status == event.StatusResolved {
		color, title = resolvedColor, notify.ResolvedEmoji+" RESOLVED: "+ev.Name
	}
	dev := notify.DeviceLabel(ev.Device)
	fields := []field{
		{Name: "Device", Value: esc(dev), Inline: true},
		{Name: "Site", Value: esc(notify.OrDash(ev.Device.Site)), Inline: true},
		{Name: "Severity", Value: fmt.Sprintf("%s (severity %d)", ev.Priority(), ev.Severity), Inline: true},
		{Name: "Status", Value: string(ev.Status), Inline: true},
		{Name: "Event ID", Value: esc(ev.EventID), Inline: true},
		{Name: "Source", Value: esc(notify.OrDash(ev.Source)), Inline: true},
	}
	if ev.Key != "" {
		fields = append(fields, field{Name: "Instance", Value: esc(ev.Key), Inline: true})
	}
	if len(fields) > maxFields {
		fields = fields[:maxFields]
	}
	e := embed{
		Title:     truncate(title, maxTitle),
		URL:       ev.AlertURL(externalURL),
		Color:     color,
		Timestamp: ev.Timestamp.UTC().Format(time.RFC3339),
		Fields:    fields,
		Footer:    &footer{Text: truncate("nocbridge · "+ev.InstanceID, maxFooter)},
	}
	used := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Footer.Text)
	for i := range e.Fields {
		e.Fields[i].Name = truncate(e.Fields[i].Name, maxFieldName)
		e.Fields[i].Value = truncate(e.Fields[i].Value, maxFieldValue)
		used += utf8.RuneCountInString(e.Fields[i].Name) + utf8.RuneCountInString(e.Fields[i].Value)
	}
	if room := min(maxDescription, maxEmbedTotal-used); room > 0 {
		e.Description = truncate(desc, room)
	}
	return message{Embeds: []embed{e}, AllowedMentions: allowedMentions{Parse: []string{}}}
}

const truncatedMark = "…"

// truncate shortens s to at most max characters, ending with a mark, and
// never leaves half a backslash escape at the end.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	keep := max - utf8.RuneCountInString(truncatedMark)
	cut := 0
	for i := range s {
		if keep == 0 {
			cut = i
			break
		}
		keep--
	}
	head := s[:cut]
	if trailing := len(head) - len(strings.TrimRight(head, `\`)); trailing%2 == 1 {
		head = head[:len(head)-1]
	}
	return head + truncatedMark
}

// digestColor is Discord's blurple: a digest mixes severities.
const digestColor = 0x5865F2

// renderDigest is one embed: the count as title (linking to the alert
// list), one line per alert in the description, the digest's id in the
// footer. Lines that would pass the description's or the embed's limit are
// counted in the "and N more" line instead.
func renderDigest(d notify.Digest, p notify.DigestPolicy, externalURL string) message {
	v := notify.NewDigestView(d, p, externalURL)
	e := embed{
		Title:     truncate("📦 "+v.Title, maxTitle),
		URL:       v.ListURL,
		Color:     digestColor,
		Timestamp: v.Latest.UTC().Format(time.RFC3339),
		Fields:    []field{},
		Footer:    &footer{Text: "nocbridge digest · " + v.ID},
	}
	room := min(maxDescription, maxEmbedTotal-utf8.RuneCountInString(e.Title)-utf8.RuneCountInString(e.Footer.Text))
	lines := v.Lines(room, utf8.RuneCountInString, func(en notify.DigestEntry) string { return en.Markdown(esc) }, v.MarkdownMore)
	e.Description = strings.Join(lines, "\n")
	return message{Embeds: []embed{e}, AllowedMentions: allowedMentions{Parse: []string{}}}
}
