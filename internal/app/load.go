package app

import (
	"log/slog"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/destinations"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/route"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/trap"
)

// generation is one loaded, fully validated config: what a reload swaps.
type generation struct {
	cfg          *config.Config
	rules        *rules.Set
	router       *route.Router
	inventory    *inventory.Inventory
	notifiers    destinations.Set
	destinations []outbox.Destination
	traps        trap.Options // from config; the app adds what it wires
	windows      []*mute.Window
}

// stateFor hands each destination its durable key/value space; nil when
// only validating.
type stateFor func(destination string) (notify.StateStore, error)

// load reads and validates the config, every rule file and every
// destination, reporting every problem at once (config.Errors).
func load(path, version string, logger *slog.Logger, state stateFor) (*generation, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	var errs config.Errors
	g := &generation{cfg: cfg, router: route.New(cfg.Subscriptions), inventory: inventory.New(cfg)}
	g.rules, err = rules.Load(cfg.Rules)
	errs = append(errs, config.AsErrors(err, path)...)
	if g.rules != nil {
		errs = append(errs, g.rules.CheckTemplates(g.inventory)...)
	}
	g.windows, err = mute.Compile(cfg.Maintenance)
	errs = append(errs, config.AsErrors(err, path)...)
	if g.traps, err = trap.OptionsFrom(cfg); err != nil {
		errs = append(errs, config.Error{File: path, Msg: err.Error()})
	}
	g.notifiers, err = destinations.BuildAll(cfg, "nocbridge/"+version, logger, state)
	errs = append(errs, config.AsErrors(err, path)...)
	cfg.Warnings = cfg.Warnings.Sorted() // the destinations' joined the config's
	if err := errs.Err(); err != nil {
		g.notifiers.Close(logger)
		return nil, err
	}
	for _, d := range cfg.Destinations {
		g.destinations = append(g.destinations, outbox.Destination{
			Name:      d.Name,
			Notifier:  g.notifiers[d.Name],
			Retry:     outbox.RetryPolicy{Initial: d.Retry.Initial.D(), Max: d.Retry.Max.D(), MaxAge: d.Retry.MaxAge.D(), ProbeInterval: d.Retry.ProbeInterval.D()},
			RateLimit: d.RateLimit,
			Timeout:   d.Timeout.D(),
			Digest:    notify.DigesterOf(g.notifiers[d.Name]),
		})
	}
	return g, nil
}

// Check validates a config and its rules without starting anything, and
// returns the warnings of a valid one.
func Check(path, version string) (config.Warnings, error) {
	g, err := load(path, version, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return nil, err
	}
	g.notifiers.Close(slog.New(slog.DiscardHandler))
	return g.cfg.Warnings, nil
}

// logWarnings logs what `check` prints as warnings, at start and reload.
func logWarnings(log *slog.Logger, ws config.Warnings) {
	for _, w := range ws {
		log.Warn("config warning: "+w.Msg, "file", w.File, "line", w.Line)
	}
}
