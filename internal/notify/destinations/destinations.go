// Package destinations is the one registry of destination types. Adding a
// type is a new folder under internal/notify and one line in types.
package destinations

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/discord"
	"github.com/nocbridge/nocbridge/internal/notify/jira"
	lognotify "github.com/nocbridge/nocbridge/internal/notify/log"
	"github.com/nocbridge/nocbridge/internal/notify/opsgenie"
	"github.com/nocbridge/nocbridge/internal/notify/pagerduty"
	"github.com/nocbridge/nocbridge/internal/notify/servicenow"
	"github.com/nocbridge/nocbridge/internal/notify/slack"
	"github.com/nocbridge/nocbridge/internal/notify/teams"
	"github.com/nocbridge/nocbridge/internal/notify/webex"
	"github.com/nocbridge/nocbridge/internal/notify/webhook"
)

var types = map[string]notify.Factory{
	"discord":    discord.New,
	"jira":       jira.New,
	"log":        lognotify.New,
	"opsgenie":   opsgenie.New,
	"pagerduty":  pagerduty.New,
	"servicenow": servicenow.New,
	"slack":      slack.New,
	"teams":      teams.New,
	"webex":      webex.New,
	"webhook":    webhook.New,
}

// Types lists the known destination types, sorted.
func Types() []string {
	out := make([]string, 0, len(types))
	for t := range types {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Build makes the notifier for one destination. Unknown types and every
// config problem come back as config.Errors (FILE:LINE: message). Env gets
// what the caller did not fill in: a discarding logger and an HTTP client
// honouring the destination's timeout, tls and proxy_url. The caller scopes
// env.Logger to the destination (once, so attributes are not repeated).
func Build(d config.Destination, env notify.Env) (notify.Notifier, error) {
	f, ok := types[d.Type]
	if !ok {
		msg := fmt.Sprintf("destination %q: unknown type %q (known: %s)", d.Name, d.Type, strings.Join(Types(), ", "))
		if d.Type == "" {
			msg = fmt.Sprintf("destination %q: type is required (known: %s)", d.Name, strings.Join(Types(), ", "))
		}
		return nil, config.Errors{{File: env.ConfigFile, Line: d.Line, Msg: msg}}
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	if env.HTTPClient == nil {
		c, err := notify.NewHTTPClient(d, env.BaseDir)
		if err != nil {
			return nil, config.Errors{{File: env.ConfigFile, Line: d.Line, Msg: err.Error()}}
		}
		env.HTTPClient = c
	}
	return f(d, env)
}
