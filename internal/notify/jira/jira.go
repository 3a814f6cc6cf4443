// Package jira is the `jira` destination: one Jira Cloud issue per alert
// instance, labelled nocbridge-<instance id>. A firing notification searches
// for that label first and creates the issue only when there is none; a
// resolved one comments on the issue and moves it through the configured
// transition.
package jira

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
	"regexp"
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

// Notifier keeps one Jira issue per alert instance.
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
		log:         lg.With("project", s.project), // env.Logger already names the destination
		now:         time.Now,
	}, nil
}

const (
	maxSummary   = 255
	maxErrorBody = 4 << 10
	maxAnswer    = 1 << 20
	drainLimit   = 256 << 10
	// labelPrefix + instance id is the label that finds an alert's issue.
	labelPrefix = "nocbridge-"
	// statusCategoryDone is the key of Jira's "Done" status category,
	// whatever the workflow calls its statuses.
	statusCategoryDone = "done"
)

// issue is the part of a search hit nocbridge reads.
type issue struct {
	Key    string `json:"key"`
	Fields struct {
		Status status `json:"status"`
	} `json:"fields"`
}

type status struct {
	Name           string `json:"name"`
	StatusCategory struct {
		Key string `json:"key"`
	} `json:"statusCategory"`
}

type transition struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	To   status `json:"to"`
}

// errorAnswer is Jira's error body.
type errorAnswer struct {
	ErrorMessages []string          `json:"errorMessages"`
	Errors        map[string]string `json:"errors"`
}

// Send makes one attempt (of up to a few requests). The outbox retries;
// every step is safe to repeat.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	if nt.Event.Status == event.StatusResolved {
		return n.resolve(ctx, nt)
	}
	return n.open(ctx, nt)
}

// open creates the issue of a firing alert unless one carries its label.
func (n *Notifier) open(ctx context.Context, nt notify.Notification) error {
	ev := nt.Event
	found, err := n.find(ctx, ev.InstanceID)
	if err != nil {
		return err
	}
	if found != nil {
		n.log.Info("jira issue already exists for this alert, not creating another", "issue", found.Key, "instance_id", ev.InstanceID)
		return nil
	}
	desc, err := n.doc(nt)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: "jira: rendering description", Err: err}
	}
	// Priority stays unset: priority schemes differ per project, and a
	// value the scheme lacks fails the whole create.
	body := map[string]any{"fields": map[string]any{
		"project":     map[string]string{"key": n.s.project},
		"issuetype":   map[string]string{"name": n.s.issueType},
		"summary":     truncate(title(ev), maxSummary),
		"description": desc,
		"labels":      []string{"nocbridge", labelPrefix + ev.InstanceID},
	}}
	var created struct {
		Key string `json:"key"`
	}
	if err := n.call(ctx, http.MethodPost, n.apiURL("issue"), body, &created); err != nil {
		return err
	}
	n.log.Info("jira issue created", "issue", created.Key, "instance_id", ev.InstanceID)
	return nil
}

// resolve comments on the alert's issue and transitions it, unless it is
// already in a done status.
func (n *Notifier) resolve(ctx context.Context, nt notify.Notification) error {
	id := nt.Event.InstanceID
	is, err := n.find(ctx, id)
	if err != nil {
		return err
	}
	if is == nil {
		n.log.Info("no jira issue to resolve", "instance_id", id)
		return nil
	}
	if is.Fields.Status.StatusCategory.Key == statusCategoryDone {
		n.log.Debug("jira issue already done", "issue", is.Key, "status", is.Fields.Status.Name)
		return nil
	}
	// The transition is looked up before commenting, so a workflow without
	// it fails without leaving a comment behind.
	issuePath := "issue/" + url.PathEscape(is.Key)
	var avail struct {
		Transitions []transition `json:"transitions"`
	}
	if err := n.call(ctx, http.MethodGet, n.apiURL(issuePath+"/transitions"), nil, &avail); err != nil {
		return err
	}
	tr, ok := pickTransition(avail.Transitions, n.s.resolveTransition)
	if !ok {
		names := make([]string, 0, len(avail.Transitions))
		for _, t := range avail.Transitions {
			names = append(names, fmt.Sprintf("%q (to %q)", t.Name, t.To.Name))
		}
		return &notify.Error{Reason: fmt.Sprintf("jira %s: no transition %q from status %q; available: %s (set resolve_transition)",
			is.Key, n.s.resolveTransition, is.Fields.Status.Name, strings.Join(names, ", "))}
	}
	comment, err := n.doc(nt)
	if err != nil {
		return &notify.Error{Reason: "jira: rendering comment", Err: err}
	}
	if err := n.call(ctx, http.MethodPost, n.apiURL(issuePath+"/comment"), map[string]any{"body": comment}, nil); err != nil {
		return err
	}
	body := map[string]any{"transition": map[string]string{"id": tr.ID}}
	if err := n.call(ctx, http.MethodPost, n.apiURL(issuePath+"/transitions"), body, nil); err != nil {
		return err
	}
	n.log.Info("jira issue resolved", "issue", is.Key, "transition", tr.Name, "instance_id", id)
	return nil
}

// find returns the alert's issue, or nil.
func (n *Notifier) find(ctx context.Context, instanceID string) (*issue, error) {
	jql := fmt.Sprintf("project = %s AND labels = %s", jqlString(n.s.project), jqlString(labelPrefix+instanceID))
	req := map[string]any{"jql": jql, "fields": []string{"status"}, "maxResults": 1}
	var res struct {
		Issues []issue `json:"issues"`
	}
	if err := n.call(ctx, http.MethodPost, n.apiURL("search/jql"), req, &res); err != nil {
		return nil, err
	}
	if len(res.Issues) == 0 {
		return nil, nil
	}
	return &res.Issues[0], nil
}

// pickTransition prefers a transition named want over one merely leading
// to a status named want.
func pickTransition(ts []transition, want string) (transition, bool) {
	for _, t := range ts {
		if strings.EqualFold(t.Name, want) {
			return t, true
		}
	}
	for _, t := range ts {
		if strings.EqualFold(t.To.Name, want) {
			return t, true
		}
	}
	return transition{}, false
}

// jqlString quotes s as a JQL string literal.
func jqlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// doc is the issue description (firing) or the resolve comment: the
// template's output when set, else the default text, as an ADF document.
func (n *Notifier) doc(nt notify.Notification) (adfNode, error) {
	if n.s.tmpl != nil {
		out, err := notify.RenderTemplate(n.s.tmpl, notify.NewTemplateData(nt.Event, nt.ID, n.externalURL))
		if err != nil {
			return adfNode{}, err
		}
		return adfFromText(string(out)), nil
	}
	return adfFromText(describe(nt.Event, nt.Event.AlertURL(n.externalURL))), nil
}

// adfNode is a node of the Atlassian Document Format, the rich-text JSON
// that REST v3 takes for descriptions and comments.
type adfNode struct {
	Type    string    `json:"type"`
	Version int       `json:"version,omitempty"` // the doc node only
	Text    string    `json:"text,omitempty"`
	Marks   []adfMark `json:"marks,omitempty"`
	Content []adfNode `json:"content,omitempty"`
}

type adfMark struct {
	Type  string            `json:"type"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

var (
	// urlRE finds links to mark in plain text; closing punctuation is left out.
	urlRE = regexp.MustCompile(`https?://[^\s<>"]*[^\s<>".,;:!?)\]'}]`)
	// blankLineRE separates paragraphs.
	blankLineRE = regexp.MustCompile(`\n[ \t]*\n\s*`)
)

// adfFromText turns plain text into an ADF document: blank lines separate
// paragraphs, line breaks become hard breaks, URLs become links. ADF rejects
// empty text nodes, so none are made; empty text gives one empty paragraph
// (a doc needs content).
func adfFromText(text string) adfNode {
	doc := adfNode{Type: "doc", Version: 1}
	text = strings.ReplaceAll(strings.TrimSpace(text), "\r\n", "\n")
	for _, para := range blankLineRE.Split(text, -1) {
		if strings.TrimSpace(para) == "" {
			continue
		}
		p := adfNode{Type: "paragraph"}
		for i, line := range strings.Split(para, "\n") {
			if i > 0 {
				p.Content = append(p.Content, adfNode{Type: "hardBreak"})
			}
			p.Content = append(p.Content, textNodes(line)...)
		}
		doc.Content = append(doc.Content, p)
	}
	if len(doc.Content) == 0 {
		doc.Content = []adfNode{{Type: "paragraph"}}
	}
	return doc
}

func textNodes(line string) []adfNode {
	var out []adfNode
	plain := func(s string) {
		if s != "" {
			out = append(out, adfNode{Type: "text", Text: s})
		}
	}
	last := 0
	for _, m := range urlRE.FindAllStringIndex(line, -1) {
		plain(line[last:m[0]])
		href := line[m[0]:m[1]]
		out = append(out, adfNode{Type: "text", Text: href, Marks: []adfMark{{Type: "link", Attrs: map[string]string{"href": href}}}})
		last = m[1]
	}
	plain(line[last:])
	return out
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

// title is the issue summary: one line, "[P1] Device unreachable: core-sw1
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

// apiURL is <site>/rest/api/3/<path>.
func (n *Notifier) apiURL(path string) *url.URL {
	u := *n.s.base
	u.Path += "/rest/api/3/" + path
	u.RawPath = ""
	return &u
}

// call makes one request and decodes a 2xx JSON answer into out (when not
// nil). Anything else is a classified *notify.Error.
func (n *Notifier) call(ctx context.Context, method string, u *url.URL, body, out any) error {
	target := method + " " + notify.RedactURL(u)
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &notify.Error{Reason: target + ": encoding request", Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return &notify.Error{Reason: target + ": building request", Err: err}
	}
	req.Header.Set("Authorization", n.s.auth)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", n.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return n.networkError(target, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
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
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		// Never act on an answer not understood (creating blindly could
		// duplicate); a login page or proxy hiccup may be gone next time.
		return &notify.Error{
			Retryable: true,
			Status:    resp.StatusCode,
			Reason:    fmt.Sprintf("%s: HTTP %d: the answer is not Jira REST JSON", target, resp.StatusCode),
			Err:       err,
		}
	}
	return nil
}

// serviceMessage joins Jira's errorMessages and field errors, or returns a
// trimmed excerpt of a body that is not its JSON.
func serviceMessage(body []byte) string {
	var ea errorAnswer
	if err := json.Unmarshal(body, &ea); err == nil && (len(ea.ErrorMessages) > 0 || len(ea.Errors) > 0) {
		parts := append([]string(nil), ea.ErrorMessages...)
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

// redact removes the API token and the encoded credentials from text bound
// for a dead letter or log: a proxy echoing the request must not leak them.
func (n *Notifier) redact(s string) string {
	for _, v := range n.s.secrets {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "<redacted>")
		}
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
