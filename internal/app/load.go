package app

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/destinations"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/route"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/snmp/mib"
	"github.com/nocbridge/nocbridge/internal/trap"
)

// generation is one loaded, fully validated config: what a reload swaps.
type generation struct {
	cfg          *config.Config
	rules        *rules.Set
	router       *route.Router
	destinations []outbox.Destination
	notifiers    map[string]notify.Notifier
	devices      []rules.Device
	names        *mib.Table // OID names: built-in plus traps.mib
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
	set, err := rules.Load(cfg.Rules)
	errs = append(errs, config.AsErrors(err, path)...)

	g := &generation{cfg: cfg, rules: set, router: route.New(cfg.Subscriptions), notifiers: map[string]notify.Notifier{}}
	if g.names, err = mibTable(cfg.Traps.MIB); err != nil {
		errs = append(errs, config.Error{File: path, Msg: "traps.mib: " + err.Error()})
	}
	for _, d := range cfg.Devices {
		g.devices = append(g.devices, rules.Device{Name: d.Name, Address: d.Address, Site: d.Site, Role: d.Role, Labels: d.Labels})
	}
	for _, d := range cfg.Destinations {
		n, err := buildNotifier(cfg, d, version, logger, state)
		if err != nil {
			errs = append(errs, destinationErrors(err, path, d)...)
			continue
		}
		g.notifiers[d.Name] = n
		g.destinations = append(g.destinations, outbox.Destination{
			Name:      d.Name,
			Notifier:  n,
			Retry:     outbox.RetryPolicy{Initial: d.Retry.Initial.D(), Max: d.Retry.Max.D(), MaxAge: d.Retry.MaxAge.D()},
			RateLimit: d.RateLimit,
			Timeout:   d.Timeout.D(),
		})
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return g, nil
}

func buildNotifier(cfg *config.Config, d config.Destination, version string, logger *slog.Logger, state stateFor) (notify.Notifier, error) {
	// destinations.Build makes the HTTP client from timeout, tls and proxy_url.
	env := notify.Env{
		ExternalURL: cfg.ExternalURL,
		UserAgent:   "nocbridge/" + version,
		Logger:      logger.With("destination", d.Name, "type", d.Type),
		ConfigFile:  cfg.File,
		BaseDir:     cfg.BaseDir,
	}
	if state != nil {
		var err error
		if env.State, err = state(d.Name); err != nil {
			return nil, fmt.Errorf("destination %q: state store: %w", d.Name, err)
		}
	}
	return destinations.Build(d, env)
}

// destinationErrors keeps positioned errors and places the rest at the
// destination's line.
func destinationErrors(err error, file string, d config.Destination) config.Errors {
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

// close releases what the generation's notifiers hold (open log files, idle
// connections). An attempt still running on an old notifier after a reload
// fails retryably and the outbox retries it on the new one.
func (g *generation) close(logger *slog.Logger) {
	for name, n := range g.notifiers {
		if c, ok := n.(io.Closer); ok {
			if err := c.Close(); err != nil {
				logger.Warn("closing destination", "destination", name, "err", err)
			}
		}
	}
}

// icmpTargets derives the probe targets from the inventory.
func icmpTargets(cfg *config.Config) []icmp.Target {
	var ts []icmp.Target
	for _, d := range cfg.Devices {
		if d.ICMP.Disabled {
			continue
		}
		eff := cfg.EffectiveICMP(d)
		ts = append(ts, icmp.Target{Device: d.Name, Address: d.Address, Interval: eff.Interval.D(), Timeout: eff.Timeout.D(), Count: eff.Count})
	}
	return ts
}

// snmpTargets derives the poll targets: every device with an snmp profile.
func snmpTargets(cfg *config.Config) []snmp.Target {
	var ts []snmp.Target
	for _, d := range cfg.Devices {
		p, ok := cfg.SNMP.Profiles[d.SNMP]
		if d.SNMP == "" || !ok {
			continue
		}
		ts = append(ts, snmp.Target{
			Device: d.Name, Address: d.Address, Profile: p,
			Interval: cfg.SNMP.PollInterval.D(), Timeout: cfg.SNMP.Timeout.D(), Retries: cfg.SNMP.Retries,
			OIDs: cfg.SNMP.OIDs,
		})
	}
	return ts
}

// mibTable adds traps.mib (OID → name, as users write it) to the built-in
// names.
func mibTable(user map[string]string) (*mib.Table, error) {
	if len(user) == 0 {
		return mib.Default, nil
	}
	byName := make(map[string]string, len(user))
	for oid, name := range user {
		byName[name] = oid
	}
	return mib.New(byName)
}

// trapOptions derives the receiver's settings; known looks addresses up in
// the inventory.
func trapOptions(g *generation, known func(netip.Addr) bool, logger *slog.Logger, reg prometheus.Registerer) trap.Options {
	cfg := g.cfg
	opts := trap.Options{
		Listen: cfg.Traps.Listen, Communities: cfg.Traps.Communities, EngineID: cfg.Traps.EngineIDBytes(),
		UnknownSources: cfg.Traps.UnknownSources, RateLimitPerSource: cfg.Traps.RateLimitPerSource,
		Known: known, Names: g.names, Logger: logger, Registerer: reg,
	}
	for _, name := range cfg.Traps.Users {
		opts.Users = append(opts.Users, cfg.SNMP.Profiles[name])
	}
	return opts
}

// Check validates a config and its rules without starting anything.
func Check(path, version string) error {
	_, err := load(path, version, slog.New(slog.DiscardHandler), nil)
	return err
}
