// Package webex is the `webex` destination: a markdown message to a Webex
// space, through an incoming webhook or a bot's token and room_id (POST
// /messages). A resolve is a new message.
package webex

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Factory  = New
)

// MaxMarkdownBytes is Webex's limit on a message's markdown.
const MaxMarkdownBytes = 7439

// Notifier posts one Webex message per notification.
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
	n := &Notifier{externalURL: env.ExternalURL, s: s}
	if s.auth == "" {
		n.post = notify.NewWebhookPoster("webex webhook", s.endpoint, deps, notify.TextOnly(errorText))
		n.log = deps.Logger.With("mode", "webhook", "host", s.endpoint.Host)
		return n, nil
	}
	n.post = &notify.ChatPoster{
		URL:           s.endpoint,
		Target:        "webex POST " + notify.RedactURL(s.endpoint),
		Client:        deps.Client,
		UserAgent:     deps.UserAgent,
		Authorization: s.auth,
		Redactor:      notify.NewRedactor(2, s.endpoint.RawQuery, strings.TrimPrefix(s.auth, "Bearer ")),
		ErrorText:     notify.TextOnly(errorText),
	}
	n.log = deps.Logger.With("mode", "bot", "room_id", s.roomID)
	return n, nil
}

// message is the JSON body: roomId only in bot mode.
type message struct {
	RoomID   string `json:"roomId,omitempty"`
	Markdown string `json:"markdown"`
}

// Send makes one attempt. The outbox retries; this only classifies.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	status, err := n.post.Send(ctx, "webex", nt, n.bodyText, func(body string) any {
		return message{RoomID: n.s.roomID, Markdown: render(nt.Event, n.externalURL, body)}
	})
	if err == nil {
		n.log.Debug("webex message posted", "status", status, "event_status", nt.Event.Status)
	}
	return err
}

// DigestPolicy is the destination's `digest`.
func (n *Notifier) DigestPolicy() notify.DigestPolicy { return n.s.digest }

// SendDigest posts the digest as one message. The outbox retries; this
// only classifies.
func (n *Notifier) SendDigest(ctx context.Context, d notify.Digest) error {
	_, err := n.post.PostJSON(ctx, "webex", message{RoomID: n.s.roomID, Markdown: renderDigest(d, n.s.digest, n.externalURL)})
	return err
}

// errorText is Webex's own explanation from an error body
// ({"message": …, "errors": [{"description": …}], "trackingId": …}), or the
// raw excerpt when the body is something else (a proxy's page).
func errorText(body []byte) string {
	var we struct {
		Message string `json:"message"`
		Errors  []struct {
			Description string `json:"description"`
		} `json:"errors"`
		TrackingID string `json:"trackingId"`
	}
	if json.Unmarshal(body, &we) != nil || (we.Message == "" && len(we.Errors) == 0) {
		return string(bytes.TrimSpace(body))
	}
	parts := []string{}
	if we.Message != "" {
		parts = append(parts, we.Message)
	}
	for _, e := range we.Errors {
		if e.Description != "" && e.Description != we.Message {
			parts = append(parts, e.Description)
		}
	}
	txt := strings.Join(parts, "; ")
	if we.TrackingID != "" {
		// Webex support asks for it.
		txt += " (trackingId " + we.TrackingID + ")"
	}
	return txt
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error { return n.post.Close() }

// --- rendering ---

// bodyText is the message's main text: the template's output, or the
// event's description. Event values are data, not markdown: escaped, so that
// text from a device can never format the message or mention <@all>. A
// template's own text is markdown and stays as written.
func (n *Notifier) bodyText(nt notify.Notification) (string, error) {
	return notify.ChatText(n.s.tmpl, nt, n.externalURL, esc)
}

// escaper backslash-escapes markdown punctuation (CommonMark escapes any
// ASCII punctuation this way).
var escaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`,
	`<`, `\<`, `>`, `\>`, `#`, `\#`, `~`, `\~`, `|`, `\|`,
)

func esc(s string) string { return escaper.Replace(s) }

// render builds the message: a heading line, the facts, the link, then the
// body, cut so the whole stays within MaxMarkdownBytes. The facts and the
// link come first so a long body never pushes them out.
func render(ev event.Event, externalURL, body string) string {
	emoji, title := notify.SeverityEmoji(ev.Severity), ev.Priority()+" "+ev.Name
	if ev.Status == event.StatusResolved {
		emoji, title = notify.ResolvedEmoji, "RESOLVED: "+ev.Name
	}
	dev := notify.DeviceLabel(ev.Device)
	var b strings.Builder
	fmt.Fprintf(&b, "%s **%s**\n", emoji, esc(title))
	fmt.Fprintf(&b, "**Device:** %s · **Site:** %s", esc(dev), esc(notify.OrDash(ev.Device.Site)))
	if ev.Key != "" {
		fmt.Fprintf(&b, " · **Instance:** %s", esc(ev.Key))
	}
	fmt.Fprintf(&b, "\n**Severity:** %s (severity %d) · **Status:** %s · **Event ID:** %s\n", ev.Priority(), ev.Severity, ev.Status, esc(ev.EventID))
	fmt.Fprintf(&b, "**Time:** %s · [Open alert](%s)", ev.Timestamp.UTC().Format("2006-01-02 15:04:05 UTC"), ev.AlertURL(externalURL))
	head := b.String()
	if body == "" {
		return truncate(head, MaxMarkdownBytes)
	}
	const sep = "\n\n"
	if room := MaxMarkdownBytes - len(head) - len(sep); room > 0 {
		return head + sep + truncate(body, room)
	}
	return truncate(head, MaxMarkdownBytes)
}

const truncatedMark = "\n…(truncated)"

// truncate cuts markdown to at most max bytes without breaking it: never
// inside a UTF-8 sequence, a backslash escape or a link's URL, and an open
// ``` code block is closed.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const fence = "\n```"
	cut := max - len(truncatedMark) - len(fence)
	if cut <= 0 {
		return ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	head := s[:cut]
	// An odd run of trailing backslashes would escape the mark's newline.
	if trailing := len(head) - len(strings.TrimRight(head, `\`)); trailing%2 == 1 {
		head = head[:len(head)-1]
	}
	if i := strings.LastIndex(head, "]("); i >= 0 && !strings.Contains(head[i:], ")") {
		if open := strings.LastIndexByte(head[:i], '['); open >= 0 {
			head = head[:open]
		}
	}
	if strings.Count(head, "```")%2 == 1 {
		head += fence
	}
	return head + truncatedMark
}

// renderDigest is a heading, one line per alert and the digest's id,
// within MaxMarkdownBytes: lines that would pass it are counted in the
// "and N more" line instead.
func renderDigest(d notify.Digest, p notify.DigestPolicy, externalURL string) string {
	v := notify.NewDigestView(d, p, externalURL)
	head := "📦 **" + esc(v.Title) + "**\n\n"
	foot := "\n\nnocbridge digest `" + v.ID + "`"
	lines := v.Lines(MaxMarkdownBytes-len(head)-len(foot), func(s string) int { return len(s) }, func(e notify.DigestEntry) string { return e.Markdown(esc) }, v.MarkdownMore)
	return head + strings.Join(lines, "\n") + foot
}
