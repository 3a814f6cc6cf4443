// Package opsgenie is the `opsgenie` destination: the Opsgenie Alert API. A
// firing alert creates an Opsgenie alert with alias = the alert's instance
// id (Opsgenie folds a create for an alias that is already open into that
// alert, so retries and restarts never make a second one); its clearing
// closes the alert by alias.
package opsgenie

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Factory  = New
)

// Notifier creates and closes one Opsgenie alert per alert instance.
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
		api:         notify.NewJSONAPI(deps, "GenieKey "+s.apiKey.Reveal(), []string{s.apiKey.Reveal()}, serviceMessage, ""),
		log:         deps.Logger,
	}, nil
}

// Field limits of the Alert API; longer values are cut, not rejected.
const (
	maxMessage     = 130
	maxDescription = 15000
	maxNote        = 25000
	maxEntity      = 512
	maxTag         = 50
	source         = "nocbridge"
)

type createRequest struct {
	Message     string            `json:"message"`
	Alias       string            `json:"alias"`
	Description string            `json:"description"`
	Priority    string            `json:"priority"`
	Source      string            `json:"source"`
	Entity      string            `json:"entity,omitempty"`
	Tags        []string          `json:"tags,omitempty"`
	Details     map[string]string `json:"details"`
}

type closeRequest struct {
	Source string `json:"source"`
	Note   string `json:"note"`
}

// errorAnswer is the Alert API's error body.
type errorAnswer struct {
	Message string            `json:"message"`
	Errors  map[string]string `json:"errors"`
}

// Send makes one attempt. The outbox retries; the alias makes a repeated
// create fold into the open alert, and closing a closed alert is a no-op.
func (n *Notifier) Send(ctx context.Context, nt notify.Notification) error {
	ev := nt.Event
	text, err := notify.PlainText(n.s.tmpl, nt, n.externalURL)
	if err != nil {
		// A template that fails on this event fails on every retry too.
		return &notify.Error{Reason: "opsgenie: rendering description", Err: err}
	}
	if ev.Status == event.StatusResolved {
		u := n.apiURL("/v2/alerts/"+url.PathEscape(ev.InstanceID)+"/close", url.Values{"identifierType": {"alias"}})
		err := n.api.Call(ctx, http.MethodPost, u, closeRequest{Source: source, Note: notify.Truncate(text, maxNote)}, nil)
		var ne *notify.Error
		if errors.As(err, &ne) && ne.Status == http.StatusNotFound {
			// Closed by hand, expired, or never created: nothing left open.
			n.log.Info("opsgenie alert already closed or unknown", "alias", ev.InstanceID)
			return nil
		}
		if err == nil {
			n.log.Debug("opsgenie close accepted", "alias", ev.InstanceID)
		}
		return err
	}
	details := ev.DNAC(n.externalURL).Details
	details["Event ID"] = ev.EventID
	details["Source"] = ev.Source
	if n.externalURL != "" {
		details["Alert Link"] = ev.AlertURL(n.externalURL)
	}
	req := createRequest{
		Message:     notify.Truncate(notify.Title(ev), maxMessage),
		Alias:       ev.InstanceID,
		Description: notify.Truncate(text, maxDescription),
		Priority:    priority(ev.Severity),
		Source:      source,
		Entity:      notify.Truncate(ev.Device.Name, maxEntity),
		Tags:        tags(ev.EventID, ev.Device.Site, ev.Device.Role),
		Details:     details,
	}
	if err := n.api.Call(ctx, http.MethodPost, n.apiURL("/v2/alerts", nil), req, nil); err != nil {
		return err
	}
	n.log.Debug("opsgenie create accepted", "alias", ev.InstanceID)
	return nil
}

// priority maps severity 1 (most severe) … 5 to Opsgenie's P1 … P5.
func priority(severity int) string {
	return fmt.Sprintf("P%d", min(max(severity, 1), 5))
}

// tags are the non-empty values, each within Opsgenie's tag length.
func tags(values ...string) []string {
	var out []string
	for _, v := range values {
		v = notify.Truncate(strings.TrimSpace(v), maxTag)
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// apiURL is <api_url><path>?<q>.
func (n *Notifier) apiURL(path string, q url.Values) *url.URL {
	return notify.JoinURL(n.s.base, path, q)
}

// serviceMessage is Opsgenie's message plus its per-field errors, or a
// trimmed excerpt of a body that is not its JSON.
func serviceMessage(body []byte) string {
	var ea errorAnswer
	if err := json.Unmarshal(body, &ea); err == nil && (ea.Message != "" || len(ea.Errors) > 0) {
		var messages []string
		if ea.Message != "" {
			messages = []string{ea.Message}
		}
		return notify.JoinFieldErrors(messages, ea.Errors)
	}
	return notify.Excerpt(body)
}

// Close drops idle keep-alive connections, so a notifier replaced by a
// config reload leaves no sockets behind.
func (n *Notifier) Close() error { return n.api.Close() }
