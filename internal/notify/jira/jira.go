// Package jira is the `jira` destination: one Jira Cloud issue per alert
// instance, labelled nocbridge-<instance id>. A firing notification searches
// for that label first and creates the issue only when there is none; a
// resolved one comments on the issue and moves it through the configured
// transition.
package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"

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
		externalURL: env.ExternalURL,
		api:         notify.NewJSONAPI(deps, s.auth, s.secrets, serviceMessage, "Jira REST JSON"),
		log:         deps.Logger.With("project", s.project),
	}, nil
}

const (
	maxSummary = 255
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
		"summary":     notify.Truncate(notify.Title(ev), maxSummary),
		"description": desc,
		"labels":      []string{"nocbridge", labelPrefix + ev.InstanceID},
	}}
	var created struct {
		Key string `json:"key"`
	}
	if err := n.api.Call(ctx, http.MethodPost, n.apiURL("issue"), body, &created); err != nil {
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
	if err := n.api.Call(ctx, http.MethodGet, n.apiURL(issuePath+"/transitions"), nil, &avail); err != nil {
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
	if err := n.api.Call(ctx, http.MethodPost, n.apiURL(issuePath+"/comment"), map[string]any{"body": comment}, nil); err != nil {
		return err
	}
	body := map[string]any{"transition": map[string]string{"id": tr.ID}}
	if err := n.api.Call(ctx, http.MethodPost, n.apiURL(issuePath+"/transitions"), body, nil); err != nil {
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
	if err := n.api.Call(ctx, http.MethodPost, n.apiURL("search/jql"), req, &res); err != nil {
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
	text, err := notify.PlainText(n.s.tmpl, nt, n.externalURL)
	if err != nil {
		return adfNode{}, err
	}
	return adfFromText(text), nil
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

// apiURL is <site>/rest/api/3/<path>.
func (n *Notifier) apiURL(path string) *url.URL {
	return notify.JoinURL(n.s.base, "/rest/api/3/"+path, nil)
}

// serviceMessage joins Jira's errorMessages and field errors, or returns a
// trimmed excerpt of a body that is not its JSON.
func serviceMessage(body []byte) string {
	var ea errorAnswer
	if err := json.Unmarshal(body, &ea); err == nil && (len(ea.ErrorMessages) > 0 || len(ea.Errors) > 0) {
		return notify.JoinFieldErrors(ea.ErrorMessages, ea.Errors)
	}
	return notify.Excerpt(body)
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error { return n.api.Close() }
