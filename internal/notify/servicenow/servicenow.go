// Package servicenow is the `servicenow` destination: one record (an
// incident by default) per alert instance through the Table API, found again
// by correlation_id = the alert's instance id. A firing notification looks
// for an open record first and creates one only when there is none, so a
// retry after a lost response never opens a second incident; a resolved one
// sets the record's state to resolved with a close code and notes.
package servicenow

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

// Notifier keeps one ServiceNow record per alert instance.
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
		log:         lg.With("table", s.table), // env.Logger already names the destination
		now:         time.Now,
	}, nil
}

const (
	// maxShortDescription is the incident table's default field length.
	maxShortDescription = 160
	maxErrorBody        = 4 << 10
	maxAnswer           = 1 << 20
	drainLimit          = 256 << 10
	// resolveLookupLimit bounds the records one resolve closes; more than
	// one only exists if someone copied the correlation id by hand.
	resolveLookupLimit = "10"
)

// record is the part of a Table API record nocbridge reads.
type record struct {
	SysID  string `json:"sys_id"`
	Number string `json:"number"`
	State  string `json:"state"`
	Active string `json:"active"`
}

// errorAnswer is the Table API's error body.
type errorAnswer struct {
	Error struct {
		Message string `json:"message"`
		Detail  string `json:"detail"`
	} `json:"error"`
	Status string `json:"status"`
}

// Send makes one attempt (of up to a few requests). The outbox retries;
// every step is safe to repeat.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	if nt.Event.Status == event.StatusResolved {
		return n.resolve(ctx, nt)
	}
	return n.open(ctx, nt)
}

// open creates the record for a firing alert unless an open one exists.
func (n *Notifier) open(ctx context.Context, nt notify.Notification) error {
	id := nt.Event.InstanceID
	var found struct {
		Result []record `json:"result"`
	}
	q := url.Values{
		"sysparm_query":  {"correlation_id=" + id + "^active=true"},
		"sysparm_fields": {"sys_id,number,state"},
		"sysparm_limit":  {"1"},
	}
	if err := n.call(ctx, http.MethodGet, n.tableURL("", q), nil, &found); err != nil {
		return err
	}
	if len(found.Result) > 0 {
		n.log.Info("servicenow record already open for this alert, not creating another",
			"number", found.Result[0].Number, "instance_id", id)
		return nil
	}
	fields, err := n.newRecord(nt)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: "servicenow: rendering description", Err: err}
	}
	var created struct {
		Result record `json:"result"`
	}
	if err := n.call(ctx, http.MethodPost, n.tableURL("", url.Values{"sysparm_fields": {"sys_id,number"}}), fields, &created); err != nil {
		return err
	}
	n.log.Info("servicenow record created", "number", created.Result.Number, "sys_id", created.Result.SysID, "instance_id", id)
	return nil
}

// resolve moves every open record of the alert to the resolved state.
func (n *Notifier) resolve(ctx context.Context, nt notify.Notification) error {
	id := nt.Event.InstanceID
	var found struct {
		Result []record `json:"result"`
	}
	q := url.Values{
		"sysparm_query":  {"correlation_id=" + id + "^ORDERBYDESCsys_created_on"},
		"sysparm_fields": {"sys_id,number,state,active"},
		"sysparm_limit":  {resolveLookupLimit},
	}
	if err := n.call(ctx, http.MethodGet, n.tableURL("", q), nil, &found); err != nil {
		return err
	}
	if len(found.Result) == 0 {
		// The firing notification never reached ServiceNow (filtered, or
		// the record was deleted): there is nothing to resolve.
		n.log.Info("no servicenow record to resolve", "instance_id", id)
		return nil
	}
	notes, err := n.text(nt)
	if err != nil {
		return &notify.Error{Reason: "servicenow: rendering close notes", Err: err}
	}
	update := map[string]string{
		"state":       n.s.resolveState,
		"close_code":  n.s.closeCode,
		"close_notes": notes,
	}
	for _, rec := range found.Result {
		if rec.Active == "false" || rec.State == n.s.resolveState {
			n.log.Debug("servicenow record already resolved or closed", "number", rec.Number, "state", rec.State)
			continue
		}
		u := n.tableURL(rec.SysID, url.Values{"sysparm_fields": {"sys_id,number,state"}})
		if err := n.call(ctx, http.MethodPatch, u, update, nil); err != nil {
			return err
		}
		n.log.Info("servicenow record resolved", "number", rec.Number, "instance_id", id)
	}
	return nil
}

// newRecord is the body of a new record: nocbridge's fields, then the
// configured extra fields over them.
func (n *Notifier) newRecord(nt notify.Notification) (map[string]string, error) {
	ev := nt.Event
	desc, err := n.text(nt)
	if err != nil {
		return nil, err
	}
	impact, urgency := impactUrgency(ev.Severity)
	f := map[string]string{
		"short_description":   truncate(title(ev), maxShortDescription),
		"description":         desc,
		"impact":              impact,
		"urgency":             urgency,
		"category":            "network",
		"cmdb_ci":             ev.Device.Name,
		"correlation_id":      ev.InstanceID,
		"correlation_display": "nocbridge",
	}
	if n.s.assignmentGroup != "" {
		f["assignment_group"] = n.s.assignmentGroup
	}
	for k, v := range n.s.fields {
		f[k] = v
	}
	return f, nil
}

// impactUrgency maps severity 1…5 so that ServiceNow's default priority
// lookup gives priority 1…5 (the same number as DNA Center's P<severity>):
// 1 → impact 1/urgency 1 (Critical), 2 → 1/2 (High), 3 → 2/2 (Moderate),
// 4 → 2/3 (Low), 5 → 3/3 (Planning).
func impactUrgency(severity int) (impact, urgency string) {
	switch {
	case severity <= 1:
		return "1", "1"
	case severity == 2:
		return "1", "2"
	case severity == 3:
		return "2", "2"
	case severity == 4:
		return "2", "3"
	default:
		return "3", "3"
	}
}

// text is the description (firing) or the close notes (resolved): the
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

// title is the short description: "[P1] Device unreachable: core-sw1
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

// tableURL is <instance>/api/now/table/<table>[/<sys_id>]?<q>.
func (n *Notifier) tableURL(sysID string, q url.Values) *url.URL {
	u := *n.s.base
	u.Path += "/api/now/table/" + n.s.table
	if sysID != "" {
		u.Path += "/" + sysID
	}
	u.RawPath = ""
	u.RawQuery = q.Encode()
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
		// A hibernating developer instance or a single-sign-on page
		// answers 200 with HTML. Never act on an answer not understood
		// (creating blindly could duplicate); it may be right next time.
		return &notify.Error{
			Retryable: true,
			Status:    resp.StatusCode,
			Reason:    fmt.Sprintf("%s: HTTP %d: the answer is not Table API JSON (instance hibernating, or a login page?)", target, resp.StatusCode),
			Err:       err,
		}
	}
	return nil
}

// serviceMessage extracts the Table API's error message and detail, or a
// trimmed excerpt of a body that is not its JSON.
func serviceMessage(body []byte) string {
	var ea errorAnswer
	if err := json.Unmarshal(body, &ea); err == nil && ea.Error.Message != "" {
		if ea.Error.Detail != "" && ea.Error.Detail != ea.Error.Message {
			return ea.Error.Message + ": " + ea.Error.Detail
		}
		return ea.Error.Message
	}
	return truncate(strings.TrimSpace(string(body)), 512)
}

// redact removes the password and the encoded credentials from text bound
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
