// Package webex is the `webex` destination: a markdown message to a Webex
// space, through an incoming webhook or a bot's token and room_id (POST
// /messages). A resolve is a new message.
package webex

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

// MaxMarkdownBytes is Webex's limit on a message's markdown.
const MaxMarkdownBytes = 7439

// Notifier posts one Webex message per notification.
type Notifier struct {
	externalURL string
	userAgent   string
	s           *settings
	target      string // for errors: never the webhook URL's path
	client      *http.Client
	log         *slog.Logger
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
	n := &Notifier{externalURL: env.ExternalURL, userAgent: ua, s: s, client: client}
	if s.auth != "" {
		n.target = "webex POST " + notify.RedactURL(s.endpoint)
		n.log = lg.With("mode", "bot", "room_id", s.roomID)
	} else {
		n.target = "webex webhook " + s.endpoint.Scheme + "://" + s.endpoint.Host
		n.log = lg.With("mode", "webhook", "host", s.endpoint.Host)
	}
	return n, nil
}

// message is the JSON body: roomId only in bot mode.
type message struct {
	RoomID   string `json:"roomId,omitempty"`
	Markdown string `json:"markdown"`
}

const (
	maxErrorBody = 4 << 10
	drainLimit   = 256 << 10
)

// Send makes one attempt. The outbox retries; this only classifies.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	body, err := n.bodyText(nt)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: "webex: rendering template_file", Err: err}
	}
	payload, err := json.Marshal(message{RoomID: n.s.roomID, Markdown: render(nt.Event, n.externalURL, body)})
	if err != nil {
		return &notify.Error{Reason: "webex: encoding message", Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.s.endpoint.String(), bytes.NewReader(payload))
	if err != nil {
		return &notify.Error{Reason: n.target + ": building request", Err: n.scrub(err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.userAgent)
	if n.s.auth != "" {
		req.Header.Set("Authorization", n.s.auth)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return n.networkError(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		n.log.Debug("webex message posted", "status", resp.StatusCode, "event_status", nt.Event.Status)
		return nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := notify.StatusError(resp.StatusCode, []byte(errorText(excerpt)), notify.RetryAfterHeader(resp.Header, time.Now()))
	e.Reason = n.target + ": " + e.Reason
	return e
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

// networkError classifies a failure without a response. *url.Error prints
// the URL, which for a webhook is the credential: only its cause is kept,
// scrubbed too.
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
	return &notify.Error{Retryable: true, Reason: n.target + ": " + what, Err: n.scrub(cause)}
}

// scrubbed hides secrets from an error's text while keeping the chain for
// errors.Is (timeouts, cancellation).
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

func (n *Notifier) scrub(err error) error {
	msg := err.Error()
	secrets := []string{n.s.endpoint.String(), n.s.endpoint.RawQuery}
	if n.s.auth == "" { // a webhook's path is its credential
		secrets = append(secrets, n.s.endpoint.EscapedPath(), n.s.endpoint.Path)
	} else {
		secrets = append(secrets, strings.TrimPrefix(n.s.auth, "Bearer "))
	}
	for _, v := range secrets {
		if len(v) > 1 {
			msg = strings.ReplaceAll(msg, v, "<redacted>")
		}
	}
	return &scrubbed{msg: msg, err: err}
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error {
	n.client.CloseIdleConnections()
	return nil
}

// --- rendering ---

// bodyText is the message's main text: the template's output, or the
// event's description. Event values are data, not markdown: escaped, so that
// text from a device can never format the message or mention <@all>. A
// template's own text is markdown and stays as written.
func (n *Notifier) bodyText(nt notify.Notification) (string, error) {
	if n.s.tmpl == nil {
		return esc(nt.Event.Description), nil
	}
	b, err := notify.RenderTemplate(n.s.tmpl, notify.NewTemplateData(escapedEvent(nt.Event), nt.ID, n.externalURL))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// escaper backslash-escapes markdown punctuation (CommonMark escapes any
// ASCII punctuation this way).
var escaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`,
	`<`, `\<`, `>`, `\>`, `#`, `\#`, `~`, `\~`, `|`, `\|`,
)

func esc(s string) string { return escaper.Replace(s) }

// escapedEvent is ev with every text value markdown-escaped, for templates.
func escapedEvent(ev event.Event) event.Event {
	for _, p := range []*string{&ev.InstanceID, &ev.EventID, &ev.Name, &ev.Description, &ev.Category, &ev.Domain,
		&ev.SubDomain, &ev.Source, &ev.Kind, &ev.Key, &ev.Device.Name, &ev.Device.Address, &ev.Device.Site, &ev.Device.Role} {
		*p = esc(*p)
	}
	ev.Device.Labels = escapedMap(ev.Device.Labels)
	ev.Details = escapedMap(ev.Details)
	return ev
}

func escapedMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[esc(k)] = esc(v)
	}
	return out
}

var severityEmoji = map[int]string{1: "🔴", 2: "🟠", 3: "🟡", 4: "🔵", 5: "⚪"}

// render builds the message: a heading line, the facts, the link, then the
// body, cut so the whole stays within MaxMarkdownBytes. The facts and the
// link come first so a long body never pushes them out.
func render(ev event.Event, externalURL, body string) string {
	emoji, title := severityEmoji[ev.Severity], ev.Priority()+" "+ev.Name
	if emoji == "" {
		emoji = severityEmoji[5]
	}
	if ev.Status == event.StatusResolved {
		emoji, title = "✅", "RESOLVED: "+ev.Name
	}
	dev := ev.Device.Name
	if ev.Device.Address != "" && ev.Device.Address != ev.Device.Name {
		dev += " (" + ev.Device.Address + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s **%s**\n", emoji, esc(title))
	fmt.Fprintf(&b, "**Device:** %s · **Site:** %s", esc(dev), esc(orDash(ev.Device.Site)))
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

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
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
