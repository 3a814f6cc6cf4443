// Package destinations is the one registry of destination types. Adding a
// type is a new folder under internal/notify and one line in types.
package destinations

import (
	"errors"
	"fmt"
	"io"
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

// Set is every configured destination's notifier, by name.
type Set map[string]notify.Notifier

// BuildAll makes the notifiers of every destination in cfg, reporting every
// problem at once as config.Errors and adding the types' warnings to
// cfg.Warnings. state hands each destination its durable
// key/value space; nil when only validating.
func BuildAll(cfg *config.Config, userAgent string, logger *slog.Logger, state func(destination string) (notify.StateStore, error)) (Set, error) {
	set := Set{}
	var errs config.Errors
	for _, d := range cfg.Destinations {
		env := notify.Env{
			ExternalURL: cfg.ExternalURL,
			UserAgent:   userAgent,
			Logger:      logger.With("destination", d.Name, "type", d.Type),
			ConfigFile:  cfg.File,
			BaseDir:     cfg.BaseDir,
			Warnings:    &cfg.Warnings,
		}
		var err error
		if state != nil {
			if env.State, err = state(d.Name); err != nil {
				err = fmt.Errorf("destination %q: state store: %w", d.Name, err)
			}
		}
		var n notify.Notifier
		if err == nil {
			n, err = Build(d, env)
		}
		if err != nil {
			errs = append(errs, positioned(err, cfg.File, d)...)
			continue
		}
		set[d.Name] = n
	}
	if err := errs.Err(); err != nil {
		set.Close(logger)
		return nil, err
	}
	return set, nil
}

// positioned keeps positioned errors and places the rest at the
// destination's line, named after it.
func positioned(err error, file string, d config.Destination) config.Errors {
	var es config.Errors
	if errors.As(err, &es) {
		return es
	}
	msg := err.Error()
	if prefix := fmt.Sprintf("destination %q", d.Name); !strings.HasPrefix(msg, prefix) {
		msg = prefix + ": " + msg
	}
	return config.Errors{{File: file, Line: d.Line, Msg: msg}}
}

// Edits reports whether the destination edits the message it posted for
// an alert (notify.Editor): the destinations alert updates go to.
func (s Set) Edits(destination string) bool {
	e, ok := s[destination].(notify.Editor)
	return ok && e.EditsMessages()
}

// Close releases what the notifiers hold (open log files, idle
// connections). An attempt still running on a closed notifier after a
// reload fails retryably and the outbox retries it on the new one.
func (s Set) Close(logger *slog.Logger) {
	for name, n := range s {
		if c, ok := n.(io.Closer); ok {
			if err := c.Close(); err != nil {
				logger.Warn("closing destination", "destination", name, "err", err)
			}
		}
	}
}
