// Package slack is the `slack` destination: a Block Kit message with a colour
// bar by severity, sent through an incoming webhook or, with a bot token, the
// Web API (chat.postMessage). In bot mode the resolve is a threaded reply
// under the alert's message, which is updated to show resolved; the message's
// channel and ts live in env.State per alert instance, so a restart neither
// posts a second message nor loses the thread.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackutilsx"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var (
	_ notify.Editor   = (*Notifier)(nil)
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Factory  = New
)

// Slack's Block Kit limits (docs.slack.dev/reference/block-kit).
const (
	maxBlocks       = 50   // per message
	maxSectionText  = 3000 // characters in a section's text
	maxFieldText    = 2000 // characters in one section field
	maxHeaderText   = 150  // characters in a header block
	maxFallbackText = 3000 // our cap on `text`; Slack truncates at 40,000
)

// Notifier posts one Slack message per notification (bot mode: or updates
// and threads under the alert's existing message).
type Notifier struct {
	externalURL string
	s           *settings
	client      *http.Client     // capturing transport around env.HTTPClient
	api         *slackapi.Client // bot mode only
	state       notify.StateStore
	log         *slog.Logger
	target      string // webhook mode: scheme and host only, for errors
	redactor    notify.Redactor
	noStateOnce sync.Once
}

// New validates the destination's keys (all problems at once, each at its
// line) and builds the notifier. env.State may be nil when only validating.
func New(d config.Destination, env notify.Env) (notify.Notifier, error) {
	s, deps, err := notify.Prepare(d, env, (*Config).validate)
	if err != nil {
		return nil, err
	}
	base, lg := deps.Client, deps.Logger
	n := &Notifier{externalURL: env.ExternalURL, s: s, state: env.State}
	tr := &transport{next: base.Transport, userAgent: deps.UserAgent}
	if tr.next == nil {
		tr.next = http.DefaultTransport
	}
	if s.botMode() {
		tr.bearer = "Bearer " + s.token
		tr.apiHost = s.apiURL.Host
		n.log = lg.With("mode", "bot", "channel", s.channel)
	} else {
		n.target = "slack webhook " + origin(s.webhookURL)
		n.log = lg.With("mode", "webhook", "host", s.webhookURL.Host)
	}
	n.redactor = redactor(s)
	n.client = &http.Client{Transport: tr, Timeout: base.Timeout, CheckRedirect: base.CheckRedirect}
	if s.botMode() {
		// The token travels as a Bearer header set by the transport (only
		// to api_url's host); slack-go would put it in the form body.
		n.api = slackapi.New(s.token, slackapi.OptionHTTPClient(n.client), slackapi.OptionAPIURL(s.apiURL.String()))
	}
	return n, nil
}

// Send makes one attempt. The outbox retries; this only classifies.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	body, err := n.bodyText(nt)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: "slack: rendering template_file", Err: err}
	}
	msg := render(nt.Event, n.externalURL, body)
	if !n.s.botMode() {
		return n.postWebhook(ctx, msg)
	}
	ev := nt.Event
	if n.state == nil {
		n.noStateOnce.Do(func() {
			n.log.Warn("no state store: slack messages are posted without threading or de-duplication")
		})
	}
	if n.state == nil || ev.InstanceID == "" {
		_, _, err := n.post(ctx, n.s.channel, msg, "")
		return err
	}
	key := stateKey(ev.InstanceID)
	th, found, err := n.loadThread(ctx, key)
	if err != nil {
		return &notify.Error{Retryable: true, Reason: "slack: reading the alert's message ts from the state store", Err: err}
	}
	if ev.Status == event.StatusResolved {
		return n.resolve(ctx, key, th, found, ev, msg, body)
	}
	return n.fire(ctx, key, th, found, ev, msg)
}

// EditsMessages: in bot mode, with a state store, an active seen again
// updates the alert's message (notify.Editor).
func (n *Notifier) EditsMessages() bool { return n.s.botMode() && n.state != nil }

// DigestPolicy is the destination's `digest`.
func (n *Notifier) DigestPolicy() notify.DigestPolicy { return n.s.digest }

// SendDigest posts the digest as one message. In bot mode it is a plain
// new message: threads belong to single alerts, whose state it leaves
// alone. The outbox retries; this only classifies.
func (n *Notifier) SendDigest(ctx context.Context, d notify.Digest) error {
	msg := renderDigest(d, n.s.digest, n.externalURL)
	if !n.s.botMode() {
		return n.postWebhook(ctx, msg)
	}
	_, _, err := n.post(ctx, n.s.channel, msg, "")
	return err
}

// fire posts the alert's message, or updates it when one was posted already
// (the same notification after a crash or restart): never a second message.
func (n *Notifier) fire(ctx context.Context, key string, th thread, found bool, ev event.Event, msg message) error {
	if found {
		err := n.update(ctx, th, msg)
		if !isAPIError(err, "message_not_found") {
			return err
		}
		n.log.Info("the alert's slack message was deleted; posting it again", "instance_id", ev.InstanceID)
	}
	channel, ts, err := n.post(ctx, n.s.channel, msg, "")
	if err != nil {
		return err
	}
	if ev.Kind == "event" {
		return nil // one-shot: no resolve will come to thread under it
	}
	th = thread{Channel: channel, TS: ts, FiredAt: ev.Timestamp}
	if err := n.saveThread(ctx, key, th); err != nil {
		// The message is out; failing now would make the retry post it twice.
		n.log.Error("slack message posted but its ts could not be stored: the resolve will be a new message",
			"instance_id", ev.InstanceID, "err", err)
	}
	return nil
}

// resolve replies in the alert's thread, then updates the original to show
// resolved, then forgets it. Progress is stored, so a retry after a failed
// update does not repeat the reply.
func (n *Notifier) resolve(ctx context.Context, key string, th thread, found bool, ev event.Event, msg message, body string) error {
	if !found {
		// Posted by another mode, or before the state was lost: a new message.
		_, _, err := n.post(ctx, n.s.channel, msg, "")
		return err
	}
	if !th.Replied {
		if _, _, err := n.post(ctx, th.Channel, renderReply(ev, n.externalURL, body, th.FiredAt), th.TS); err != nil {
			return err
		}
		th.Replied = true
		if err := n.saveThread(ctx, key, th); err != nil {
			n.log.Warn("could not record the resolve reply; a retry would repeat it", "instance_id", ev.InstanceID, "err", err)
		}
	}
	// A deleted original has nothing left to update; the reply stands.
	if err := n.update(ctx, th, msg); err != nil && !isAPIError(err, "message_not_found") {
		return err
	}
	if err := n.state.Delete(ctx, key); err != nil {
		// Retrying only repeats the (idempotent) update, then deletes.
		return &notify.Error{Retryable: true, Reason: "slack: deleting the alert's message ts from the state store", Err: err}
	}
	return nil
}

// thread is what the state store keeps per alert instance.
type thread struct {
	Channel string    `json:"channel"` // the channel ID chat.update needs, even when config names #channel
	TS      string    `json:"ts"`
	FiredAt time.Time `json:"fired_at"`
	Replied bool      `json:"replied,omitempty"`
}

// stateKey is the store key of an instance's message.
func stateKey(instanceID string) string { return "ts." + instanceID }

func (n *Notifier) loadThread(ctx context.Context, key string) (thread, bool, error) {
	b, ok, err := n.state.Get(ctx, key)
	if err != nil || !ok {
		return thread{}, false, err
	}
	var th thread
	if err := json.Unmarshal(b, &th); err != nil || th.Channel == "" || th.TS == "" {
		// Unreadable state must not block delivery: treat as never posted.
		n.log.Warn("ignoring unreadable slack message state", "key", key)
		return thread{}, false, nil
	}
	return th, true, nil
}

func (n *Notifier) saveThread(ctx context.Context, key string, th thread) error {
	b, err := json.Marshal(th)
	if err != nil {
		return err
	}
	return n.state.Put(ctx, key, b)
}

// post sends chat.postMessage, in a thread when threadTS is set.
func (n *Notifier) post(ctx context.Context, channel string, msg message, threadTS string) (string, string, error) {
	opts := msg.options()
	if threadTS != "" {
		opts = append(opts, slackapi.MsgOptionTS(threadTS))
	}
	x := &exchange{}
	ch, ts, err := n.api.PostMessageContext(withExchange(ctx, x), channel, opts...)
	if err != nil {
		return "", "", n.classify("slack chat.postMessage", err, x)
	}
	n.log.Debug("slack message posted", "channel_id", ch, "ts", ts, "thread_ts", threadTS)
	return ch, ts, nil
}

func (n *Notifier) update(ctx context.Context, th thread, msg message) error {
	x := &exchange{}
	if _, _, _, err := n.api.UpdateMessageContext(withExchange(ctx, x), th.Channel, th.TS, msg.options()...); err != nil {
		return n.classify("slack chat.update", err, x)
	}
	n.log.Debug("slack message updated", "channel_id", th.Channel, "ts", th.TS)
	return nil
}

func (n *Notifier) postWebhook(ctx context.Context, msg message) error {
	no := false
	wm := &slackapi.WebhookMessage{
		Text:        msg.text,
		Blocks:      &slackapi.Blocks{BlockSet: msg.blocks},
		UnfurlLinks: &no,
		UnfurlMedia: &no,
	}
	if msg.attachment != nil {
		wm.Attachments = []slackapi.Attachment{*msg.attachment}
	}
	x := &exchange{}
	if err := slackapi.PostWebhookCustomHTTPContext(withExchange(ctx, x), n.s.webhookURL.String(), n.client, wm); err != nil {
		return n.classify(n.target, err, x)
	}
	n.log.Debug("slack webhook delivered")
	return nil
}

// retryableAPIErrors are Slack `ok:false` codes that mean "try later"; every
// other code (invalid_auth, channel_not_found, invalid_blocks…) fails the
// same way on every retry.
var retryableAPIErrors = map[string]bool{
	"ratelimited":         true,
	"fatal_error":         true,
	"internal_error":      true,
	"service_unavailable": true,
	"request_timeout":     true,
}

// classify turns a slack-go error into a *notify.Error. x holds what the
// transport saw, because slack-go discards failed response bodies and cannot
// parse an HTTP-date Retry-After.
func (n *Notifier) classify(op string, err error, x *exchange) error {
	var (
		rl     *slackapi.RateLimitedError
		apiErr slackapi.SlackErrorResponse
		sc     slackapi.StatusCodeError
	)
	status := x.status
	switch {
	case errors.As(err, new(*notify.RedirectError)):
		return notify.NetworkError(op, err, n.redactor)
	case errors.As(err, &rl):
		return &notify.Error{Retryable: true, RetryAfter: rl.RetryAfter, Status: http.StatusTooManyRequests,
			Reason: n.redactor.Redact(withBody(fmt.Sprintf("%s: HTTP 429 rate limited", op), x.body))}
	case errors.As(err, &apiErr):
		reason := op + ": " + apiErr.Err
		if details := apiErr.ResponseMetadata.Messages; len(details) > 0 {
			reason += " (" + strings.Join(details, "; ") + ")"
		}
		return &notify.Error{Retryable: retryableAPIErrors[apiErr.Err], RetryAfter: notify.RetryAfterHeader(x.header, time.Now()),
			Status: status, Reason: n.redactor.Redact(reason), Err: n.redactor.Error(apiErr)}
	case errors.As(err, &sc):
		status = sc.Code
	}
	if status != 0 && status != http.StatusOK {
		return notify.AnswerError(op, status, string(x.body), notify.RetryAfterHeader(x.header, time.Now()), n.redactor)
	}
	if status == http.StatusOK {
		// Answered, but not with Slack's JSON: a proxy page or a wrong api_url.
		return &notify.Error{Retryable: true, Status: status, Reason: op + ": unexpected response", Err: n.redactor.Error(err)}
	}
	return notify.NetworkError(op, err, n.redactor)
}

func withBody(reason string, body []byte) string {
	if b := bytes.TrimSpace(body); len(b) > 0 {
		return reason + ": " + string(b)
	}
	return reason
}

// isAPIError reports whether err is Slack's `ok:false` with this code.
func isAPIError(err error, code string) bool {
	var apiErr slackapi.SlackErrorResponse
	return errors.As(err, &apiErr) && apiErr.Err == code
}

// redactor hides the webhook URL (its path is the credential) and the bot
// token, raw and form-encoded.
func redactor(s *settings) notify.Redactor {
	var secrets []string
	if u := s.webhookURL; u != nil {
		secrets = append(secrets, u.String(), u.EscapedPath(), u.Path, u.RawQuery)
	}
	if s.token != "" {
		secrets = append(secrets, s.token, url.QueryEscape(s.token))
	}
	return notify.NewRedactor(2, secrets...) // "/" alone would mangle unrelated text
}

// origin is scheme://host: everything after it may be a credential.
func origin(u *url.URL) string {
	return u.Scheme + "://" + u.Host
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error {
	n.client.CloseIdleConnections()
	return nil
}

// maxErrorBody bounds how much of a failed response is kept for the reason.
const maxErrorBody = 4 << 10

type exchangeKey struct{}

// exchange records the status, headers and (for failures) a body excerpt of
// the response to one call.
type exchange struct {
	status int
	header http.Header
	body   []byte
}

func withExchange(ctx context.Context, x *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, x)
}

// transport sets User-Agent and, in bot mode, the Bearer token, and records
// each response in the request's exchange.
type transport struct {
	next      http.RoundTripper
	userAgent string
	bearer    string // "" in webhook mode
	apiHost   string // the only host the token is sent to (not a redirect target)
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", t.userAgent)
	if t.bearer != "" {
		// On every hop: a redirect re-sends slack-go's original body.
		if err := dropFormToken(r); err != nil {
			return nil, err
		}
		if strings.EqualFold(r.URL.Host, t.apiHost) {
			r.Header.Set("Authorization", t.bearer)
		}
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if x, ok := r.Context().Value(exchangeKey{}).(*exchange); ok {
		x.status, x.header, x.body = resp.StatusCode, resp.Header, nil
		if resp.StatusCode != http.StatusOK {
			excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			x.body = excerpt
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(excerpt), resp.Body), resp.Body}
		}
	}
	return resp, nil
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// underlying transport.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// dropFormToken removes the `token` field slack-go adds to form bodies: the
// header carries it, and a token in a body can end up in a proxy's log.
func dropFormToken(r *http.Request) error {
	if r.Body == nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return nil
	}
	raw, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return err
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return fmt.Errorf("slack request body is not a form")
	}
	form.Del("token")
	body := form.Encode()
	r.Body = io.NopCloser(strings.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// --- rendering ---

// message is one Slack message: `text` for notifications and clients without
// blocks, the header block, and an attachment whose colour bar shows the
// severity around the details.
type message struct {
	text       string
	blocks     []slackapi.Block
	attachment *slackapi.Attachment
}

func (m message) options() []slackapi.MsgOption {
	opts := []slackapi.MsgOption{
		slackapi.MsgOptionText(m.text, false),
		slackapi.MsgOptionBlocks(m.blocks...),
		slackapi.MsgOptionDisableLinkUnfurl(),
		slackapi.MsgOptionDisableMediaUnfurl(),
	}
	if m.attachment != nil {
		opts = append(opts, slackapi.MsgOptionAttachments(*m.attachment))
	}
	return opts
}

// Severity colours: 1 red … 5 grey; resolved green.
var severityColors = map[int]string{1: "#D40E0D", 2: "#F2711C", 3: "#ECB22E", 4: "#1E88E5", 5: "#9E9E9E"}

const resolvedColor = "#2EB67D"

var severityEmoji = map[int]string{1: ":red_circle:", 2: ":large_orange_circle:", 3: ":large_yellow_circle:", 4: ":large_blue_circle:", 5: ":white_circle:"}

// emojiOf marks a status and severity; a severity outside 1–5 looks like 5.
func emojiOf(severity int, status event.Status) string {
	if status == event.StatusResolved {
		return ":white_check_mark:"
	}
	if e, ok := severityEmoji[severity]; ok {
		return e
	}
	return severityEmoji[5]
}

func colorOf(ev event.Event) string {
	if ev.Status == event.StatusResolved {
		return resolvedColor
	}
	if c, ok := severityColors[ev.Severity]; ok {
		return c
	}
	return severityColors[5]
}

// bodyText is the message's main text: the template's output, or the
// event's description. Event values are data, not mrkdwn: escaped, so that
// text from a device (a trap's ifAlias, say) can never become <!channel>.
// A template's own text is mrkdwn and stays as written.
func (n *Notifier) bodyText(nt notify.Notification) (string, error) {
	return notify.ChatText(n.s.tmpl, nt, n.externalURL, esc)
}

func esc(s string) string { return slackutilsx.EscapeMessage(s) }

func title(ev event.Event) string {
	if ev.Status == event.StatusResolved {
		return "RESOLVED: " + ev.Name
	}
	return ev.Priority() + " " + ev.Name
}

// render builds the alert's message: header, body sections, fields and the
// link, within Slack's limits.
func render(ev event.Event, externalURL, body string) message {
	emoji := emojiOf(ev.Severity, ev.Status)
	header := slackapi.NewHeaderBlock(slackapi.NewTextBlockObject(slackapi.PlainTextType,
		truncate(emoji+" "+title(ev), maxHeaderText), true, false))

	fields := []*slackapi.TextBlockObject{
		mrkdwnField("Device", esc(notify.DeviceLabel(ev.Device))),
		mrkdwnField("Site", esc(notify.OrDash(ev.Device.Site))),
		mrkdwnField("Severity", fmt.Sprintf("%s (severity %d)", ev.Priority(), ev.Severity)),
		mrkdwnField("Status", string(ev.Status)),
		mrkdwnField("Event ID", esc(ev.EventID)),
		mrkdwnField("Source", esc(notify.OrDash(ev.Source))),
	}
	if ev.Key != "" {
		fields = append(fields, mrkdwnField("Instance", esc(ev.Key)))
	}
	link := fmt.Sprintf("<%s|Open alert> · %s", ev.AlertURL(externalURL), slackDate(ev.Timestamp))
	linkBlock := slackapi.NewContextBlock("", slackapi.NewTextBlockObject(slackapi.MarkdownType, link, false, false))

	// Every block but the body's: header, fields, context.
	const fixed = 3
	detail := sections(body, maxBlocks-fixed)
	detail = append(detail, slackapi.NewSectionBlock(nil, fields, nil), linkBlock)

	text := emoji + " " + esc(title(ev)+" — "+notify.DeviceLabel(ev.Device))
	if body != "" {
		text += ": " + body
	}
	return message{
		text:   truncate(text, maxFallbackText),
		blocks: []slackapi.Block{header},
		attachment: &slackapi.Attachment{
			Color:    colorOf(ev),
			Fallback: truncate(esc(title(ev)+" — "+notify.DeviceLabel(ev.Device)), maxFallbackText),
			Blocks:   slackapi.Blocks{BlockSet: detail},
		},
	}
}

// renderReply is the resolve's threaded reply: how long the alert lasted,
// then the body.
func renderReply(ev event.Event, externalURL, body string, firedAt time.Time) message {
	summary := fmt.Sprintf(":white_check_mark: *Resolved*: <%s|%s> on %s", ev.AlertURL(externalURL), esc(ev.GenericName()), esc(notify.DeviceLabel(ev.Device)))
	if !firedAt.IsZero() && ev.Timestamp.After(firedAt) {
		summary += " after " + ev.Timestamp.Sub(firedAt).Round(time.Second).String()
	}
	blocks := []slackapi.Block{slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, summary, false, false), nil, nil)}
	blocks = append(blocks, sections(body, maxBlocks-1)...)
	return message{
		text:   truncate(":white_check_mark: "+esc(title(ev)+" — "+notify.DeviceLabel(ev.Device)), maxFallbackText),
		blocks: blocks,
	}
}

func mrkdwnField(name, value string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, truncate("*"+name+"*\n"+value, maxFieldText), false, false)
}

// slackDate renders a time in each reader's own time zone, with UTC as the
// fallback text.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04:05 UTC"))
}

const truncatedMark = "…"

// sections splits text into section blocks of at most maxSectionText
// characters, at most limit of them; what does not fit is cut with a mark.
func sections(text string, limit int) []slackapi.Block {
	var out []slackapi.Block
	for text != "" && len(out) < limit {
		chunk, rest := splitText(text, maxSectionText)
		if rest != "" && len(out) == limit-1 {
			chunk, rest = truncate(text, maxSectionText), ""
		}
		out = append(out, slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, chunk, false, false), nil, nil))
		text = rest
	}
	return out
}

// splitText cuts s after at most max characters: at the last line break, or
// else the last space, in the second half of the window; never inside an
// &entity; or a <link>.
func splitText(s string, max int) (string, string) {
	if utf8.RuneCountInString(s) <= max {
		return s, ""
	}
	cut := byteIndexOfRune(s, max)
	window := s[:cut]
	if i := strings.LastIndexByte(window, '\n'); i > cut/2 {
		return s[:i], strings.TrimLeft(s[i+1:], "\n")
	}
	if i := strings.LastIndexByte(window, ' '); i > cut/2 {
		return s[:i], s[i+1:]
	}
	cut = safeCut(s, cut)
	return s[:cut], s[cut:]
}

// truncate shortens s to at most max characters, ending with a mark.
func truncate(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	cut := safeCut(s, byteIndexOfRune(s, max-utf8.RuneCountInString(truncatedMark)))
	return s[:cut] + truncatedMark
}

// byteIndexOfRune is the byte offset of the n-th rune of s.
func byteIndexOfRune(s string, n int) int {
	i := 0
	for pos := range s {
		if i == n {
			return pos
		}
		i++
	}
	return len(s)
}

// safeCut moves a cut at byte offset cut back so it does not split an
// &entity; or a <link|text> (which would render as garbage or a broken link).
func safeCut(s string, cut int) int {
	head := s[:cut]
	if amp := strings.LastIndexByte(head, '&'); amp >= 0 && !strings.Contains(head[amp:], ";") && cut-amp <= len("&amp;") {
		cut = amp
		head = s[:cut]
	}
	if lt := strings.LastIndexByte(head, '<'); lt > 0 && !strings.Contains(head[lt:], ">") {
		cut = lt
	}
	return cut
}

// renderDigest is a header with the count, one line per alert in as many
// sections as the lines need, and the digest's id; no colour bar, since a
// digest mixes severities.
func renderDigest(d notify.Digest, p notify.DigestPolicy, externalURL string) message {
	v := notify.NewDigestView(d, p, externalURL)
	header := slackapi.NewHeaderBlock(slackapi.NewTextBlockObject(slackapi.PlainTextType, truncate(":package: "+v.Title, maxHeaderText), true, false))
	// Fifty lines of a few hundred characters fill a few sections of the
	// 48 left: the entry count bounds the message, not a size.
	lines := v.Lines(0, utf8.RuneCountInString, func(e notify.DigestEntry) string {
		return fmt.Sprintf("%s *%s* %s · <%s|%s> · %s", emojiOf(e.Severity, e.Status), e.Priority, e.Status, e.URL, esc(e.Name), esc(e.Device))
	}, func(left int) string {
		return fmt.Sprintf("… and %d more: <%s|alert list>", left, v.ListURL)
	})
	blocks := append([]slackapi.Block{header}, sections(strings.Join(lines, "\n"), maxBlocks-2)...)
	blocks = append(blocks, slackapi.NewContextBlock("", slackapi.NewTextBlockObject(slackapi.MarkdownType, "nocbridge digest `"+v.ID+"`", false, false)))
	return message{text: truncate(":package: "+v.Title, maxFallbackText), blocks: blocks}
}
