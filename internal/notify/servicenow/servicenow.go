// Package servicenow is the `servicenow` destination: one record (an
// incident by default) per alert instance through the Table API, found again
// by correlation_id = the alert's instance id. A firing notification looks
// for an open record first and creates one only when there is none, so a
// retry after a lost response never opens a second incident; a resolved one
// sets the record's state to resolved with a close code and notes.
package servicenow

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"

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
		api:         notify.NewJSONAPI(deps, s.auth, s.secrets, serviceMessage, "Table API JSON (instance hibernating, or a login page?)"),
		log:         deps.Logger.With("table", s.table),
	}, nil
}

const (
	// maxShortDescription is the incident table's default field length.
	maxShortDescription = 160
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
	found, err := n.records(ctx, "correlation_id="+id+"^active=true", "sys_id,number,state", "1")
	if err != nil {
		return err
	}
	if len(found) > 0 {
		n.log.Info("servicenow record already open for this alert, not creating another",
			"number", found[0].Number, "instance_id", id)
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
	if err := n.api.Call(ctx, http.MethodPost, n.tableURL("", url.Values{"sysparm_fields": {"sys_id,number"}}), fields, &created); err != nil {
		return err
	}
	n.log.Info("servicenow record created", "number", created.Result.Number, "sys_id", created.Result.SysID, "instance_id", id)
	return nil
}

// resolve moves every open record of the alert to the resolved state.
func (n *Notifier) resolve(ctx context.Context, nt notify.Notification) error {
	id := nt.Event.InstanceID
	found, err := n.records(ctx, "correlation_id="+id+"^ORDERBYDESCsys_created_on", "sys_id,number,state,active", resolveLookupLimit)
	if err != nil {
		return err
	}
	if len(found) == 0 {
		// The firing notification never reached ServiceNow (filtered, or
		// the record was deleted): there is nothing to resolve.
		n.log.Info("no servicenow record to resolve", "instance_id", id)
		return nil
	}
	notes, err := notify.PlainText(n.s.tmpl, nt, n.externalURL)
	if err != nil {
		return &notify.Error{Reason: "servicenow: rendering close notes", Err: err}
	}
	update := map[string]string{
		"state":       n.s.resolveState,
		"close_code":  n.s.closeCode,
		"close_notes": notes,
	}
	for _, rec := range found {
		if rec.Active == "false" || rec.State == n.s.resolveState {
			n.log.Debug("servicenow record already resolved or closed", "number", rec.Number, "state", rec.State)
			continue
		}
		u := n.tableURL(rec.SysID, url.Values{"sysparm_fields": {"sys_id,number,state"}})
		if err := n.api.Call(ctx, http.MethodPatch, u, update, nil); err != nil {
			return err
		}
		n.log.Info("servicenow record resolved", "number", rec.Number, "instance_id", id)
	}
	return nil
}

// records lists the table's records matching an encoded query: fields of
// each, at most limit.
func (n *Notifier) records(ctx context.Context, query, fields, limit string) ([]record, error) {
	var found struct {
		Result []record `json:"result"`
	}
	q := url.Values{"sysparm_query": {query}, "sysparm_fields": {fields}, "sysparm_limit": {limit}}
	if err := n.api.Call(ctx, http.MethodGet, n.tableURL("", q), nil, &found); err != nil {
		return nil, err
	}
	return found.Result, nil
}

// newRecord is the body of a new record: nocbridge's fields, then the
// configured extra fields over them.
func (n *Notifier) newRecord(nt notify.Notification) (map[string]string, error) {
	ev := nt.Event
	desc, err := notify.PlainText(n.s.tmpl, nt, n.externalURL)
	if err != nil {
		return nil, err
	}
	impact, urgency := impactUrgency(ev.Severity)
	f := map[string]string{
		"short_description":   notify.Truncate(notify.Title(ev), maxShortDescription),
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

// tableURL is <instance>/api/now/table/<table>[/<sys_id>]?<q>.
func (n *Notifier) tableURL(sysID string, q url.Values) *url.URL {
	path := "/api/now/table/" + n.s.table
	if sysID != "" {
		path += "/" + sysID
	}
	return notify.JoinURL(n.s.base, path, q)
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
	return notify.Excerpt(body)
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error { return n.api.Close() }
