// Package app wires sources, rules, alerts, routing, the outbox and the
// notifiers, starts them and stops them in reverse order. It can run inside
// a test.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/httpapi"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/systemd"
	"github.com/nocbridge/nocbridge/internal/trap"
)

// Options configure an App.
type Options struct {
	ConfigPath string
	Version    string
	Logger     *slog.Logger
}

// App is one running nocbridge.
type App struct {
	opts Options
	log  *slog.Logger
	reg  *prometheus.Registry

	gen     atomic.Pointer[generation]
	store   *store.Store
	outbox  *outbox.Outbox
	alerts  *alert.Manager
	icmp    *icmp.Engine
	snmp    *snmp.Engine
	traps   *trap.Receiver // nil when the config has no traps section
	devices *deviceTracker
	ready   atomic.Bool
	httpURL atomic.Value // string, once bound

	reloadMu   sync.Mutex
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	probes     *prometheus.CounterVec
	deviceUp   *prometheus.GaugeVec
}

// New validates the config; nothing is started until Run.
func New(opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &App{opts: opts, log: opts.Logger, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_config_last_reload_successful", Help: "Whether the last config load succeeded."})
	a.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful config load."})
	a.probes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_probes_total", Help: "Probe rounds by kind and result (up, down, error)."}, []string{"kind", "result"})
	a.deviceUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nocbridge_device_up", Help: "1 when the device answered its last ICMP round."}, []string{"device"})
	a.reg.MustRegister(a.reloadOK, a.reloadTime, a.probes, a.deviceUp)
	// Validate early so `run` on a bad config fails before opening anything.
	if _, err := load(opts.ConfigPath, opts.Version, a.log, nil); err != nil {
		return nil, err
	}
	return a, nil
}

// Registry exposes the metrics registry (tests read it).
func (a *App) Registry() *prometheus.Registry { return a.reg }

// HTTPAddr is the bound API address once Run has started listening.
func (a *App) HTTPAddr() string {
	s, _ := a.httpURL.Load().(string)
	return s
}

// Ready reports whether the store is open and every listener bound.
func (a *App) Ready() bool { return a.ready.Load() }

// Run starts everything and blocks until ctx is done or a component fails.
func (a *App) Run(ctx context.Context) (err error) {
	// The store comes first: destinations keep their state in it.
	cfg, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		return err
	}
	syncEvery := time.Duration(0)
	if cfg.Store.Sync != "always" && cfg.Store.Sync != "" {
		if syncEvery, err = time.ParseDuration(cfg.Store.Sync); err != nil {
			return fmt.Errorf("store.sync: %w", err)
		}
	}
	a.store, err = store.Open(ctx, store.Options{Dir: cfg.StateDir, SyncInterval: syncEvery, Logger: a.log.With("component", "store")})
	if err != nil {
		return fmt.Errorf("opening state store in %s: %w", cfg.StateDir, err)
	}
	defer func() {
		if cerr := a.store.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	gen, err := load(a.opts.ConfigPath, a.opts.Version, a.log, a.stateFor(ctx))
	if err != nil {
		return err
	}
	a.gen.Store(gen)
	a.devices = newDeviceTracker(gen.cfg.Devices)

	a.outbox, err = outbox.New(ctx, a.store, outbox.Options{Logger: a.log.With("component", "outbox"), Registerer: a.reg})
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	a.outbox.SetDestinations(gen.destinations)

	kv, err := a.store.KV(ctx, "alerts")
	if err != nil {
		return fmt.Errorf("alert state bucket: %w", err)
	}
	a.alerts, err = alert.New(ctx, kvStore{kv}, dispatcher{a}, alert.Options{Logger: a.log.With("component", "alert"), Registerer: a.reg})
	if err != nil {
		return err
	}

	// Sockets opened below belong to their Run; if the start fails before
	// the sources run, release them here.
	sourcesStarted := false
	defer func() {
		if sourcesStarted {
			return
		}
		if a.icmp != nil {
			cancelled, cancel := context.WithCancel(context.Background())
			cancel()
			_ = a.icmp.Run(cancelled, func(icmp.Result) {}) // closes its sockets
		}
		if a.traps != nil {
			_ = a.traps.Close()
		}
	}()

	// ICMP sockets need privileges (SPEC 3); a deployment where no device is
	// pinged (traps and polling only) must not need them.
	icmpEngine, err := icmp.New(icmp.Options{Privileged: icmp.Mode(gen.cfg.ICMP.Privileged), Logger: a.log.With("component", "icmp")})
	switch {
	case err == nil:
		a.icmp = icmpEngine
		a.icmp.SetTargets(icmpTargets(gen.cfg))
	case len(icmpTargets(gen.cfg)) > 0:
		return err
	default:
		a.log.Warn("running without ICMP: no device is pinged and ICMP sockets cannot be opened", "err", err)
	}
	a.snmp = snmp.New(snmp.Options{Logger: a.log.With("component", "snmp"), Registerer: a.reg})
	a.snmp.SetTargets(snmpTargets(gen.cfg))

	if gen.cfg.Traps.Listen != "" {
		// Bound now, so a port conflict or missing CAP_NET_BIND_SERVICE fails the start.
		a.traps, err = trap.New(trapOptions(gen, a.devices.known, a.log.With("component", "trap"), a.reg))
		if err != nil {
			return fmt.Errorf("trap receiver: %w", err)
		}
	}

	srv, err := httpapi.Listen(gen.cfg.HTTP.Listen, httpapi.Handler(a.apiDeps()))
	if err != nil {
		return err
	}
	a.httpURL.Store(srv.Addr())

	// Pipeline (outbox, alert timers, HTTP) outlives the sources so that
	// what the sources saw last is still processed on the way down.
	pipeCtx, stopPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipe()
	var pipe sync.WaitGroup
	// Room for every component's error, so none blocks after the first.
	pipeErr := make(chan error, 8)
	goRun := func(wg *sync.WaitGroup, errc chan error, name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goRun(&pipe, pipeErr, "outbox", func() error { return a.outbox.Run(pipeCtx) })
	goRun(&pipe, pipeErr, "http", func() error { return srv.Serve(pipeCtx) })

	// Alert state: resolve what vanished from config and send what was
	// stored but not handed to the outbox before a crash.
	if err := a.alerts.SetRules(ctx, gen.rules, gen.devices); err != nil {
		a.log.Error("restoring alert state", "err", err)
	}
	goRun(&pipe, pipeErr, "alerts", func() error { return a.alerts.Run(pipeCtx) })

	sourcesStarted = true
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	var sources sync.WaitGroup
	observations := make(chan rules.Observation, 4096)
	if a.icmp != nil {
		goRun(&sources, pipeErr, "icmp", func() error { return a.icmp.Run(srcCtx, a.icmpResult(srcCtx, observations)) })
	}
	goRun(&sources, pipeErr, "snmp", func() error { return a.snmp.Run(srcCtx, a.snmpResult(srcCtx, observations)) })
	if a.traps != nil {
		goRun(&sources, pipeErr, "traps", func() error { return a.traps.Run(srcCtx, a.trapHandler(srcCtx, observations)) })
	}
	var observer sync.WaitGroup
	observer.Add(1)
	go func() {
		defer observer.Done()
		for obs := range observations {
			_ = a.alerts.Observe(pipeCtx, obs) // failures are logged by the manager and retried from the store
		}
	}()

	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.ready.Store(true)
	if _, err := systemd.Notify("READY=1\nSTATUS=monitoring"); err != nil {
		a.log.Warn("systemd notify", "err", err)
	}
	go systemd.Watchdog(pipeCtx, a.Ready)
	a.log.Info("nocbridge started", "version", a.opts.Version, "http", srv.Addr(), "devices", len(gen.devices),
		"rules", len(gen.rules.Rules), "destinations", len(gen.destinations), "icmp_privileged", a.icmp != nil && a.icmp.Privileged())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-pipeErr:
		a.log.Error("component failed, stopping", "err", runErr)
	}
	a.ready.Store(false)
	_, _ = systemd.Notify("STOPPING=1")
	stopSources()
	sources.Wait()
	close(observations)
	observer.Wait()
	stopPipe()
	pipe.Wait()
	a.gen.Load().close(a.log)
	a.log.Info("nocbridge stopped")
	return runErr
}

// Reload loads the config again and swaps it in atomically; a bad config is
// rejected and the running one stays.
func (a *App) Reload(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if !a.Ready() {
		// Starting or stopping: the pieces a reload swaps are not all there.
		a.log.Warn("config reload ignored: nocbridge is starting or stopping; send SIGHUP again once it is ready")
		return errors.New("reload ignored: nocbridge is not running (starting or stopping)")
	}
	_, _ = systemd.Reloading()
	defer func() { _, _ = systemd.Notify("READY=1") }()
	gen, err := load(a.opts.ConfigPath, a.opts.Version, a.log, a.stateFor(ctx))
	if err == nil && a.icmp == nil && len(icmpTargets(gen.cfg)) > 0 {
		gen.close(a.log)
		err = fmt.Errorf("%s: devices now need ICMP, but nocbridge started without ICMP sockets: allow ping sockets (net.ipv4.ping_group_range) or grant CAP_NET_RAW, then restart", a.opts.ConfigPath)
	}
	if err != nil {
		a.reloadOK.Set(0)
		a.log.Error("config reload rejected; the running config stays", "file", a.opts.ConfigPath, "errors", err.Error())
		return err
	}
	old := a.gen.Load()
	if old != nil && old.cfg.HTTP.Listen != gen.cfg.HTTP.Listen {
		a.log.Warn("http.listen changed: takes effect at the next restart", "running", old.cfg.HTTP.Listen)
	}
	if old != nil && old.cfg.StateDir != gen.cfg.StateDir {
		a.log.Warn("state_dir changed: takes effect at the next restart", "running", old.cfg.StateDir)
	}
	a.gen.Store(gen)
	a.devices.setInventory(gen.cfg.Devices)
	a.outbox.SetDestinations(gen.destinations)
	if old != nil {
		old.close(a.log)
	}
	if a.icmp != nil {
		a.icmp.SetTargets(icmpTargets(gen.cfg))
	}
	a.snmp.SetTargets(snmpTargets(gen.cfg))
	a.reloadTraps(old, gen)
	if err := a.alerts.SetRules(ctx, gen.rules, gen.devices); err != nil {
		a.log.Error("applying rules after reload", "err", err)
	}
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.log.Info("config reloaded", "devices", len(gen.devices), "rules", len(gen.rules.Rules), "destinations", len(gen.destinations))
	return nil
}

func (a *App) stateFor(ctx context.Context) stateFor {
	if a.store == nil {
		return nil
	}
	return func(dest string) (notify.StateStore, error) {
		return a.store.StateStore(ctx, "dest_"+sanitizeBucket(dest))
	}
}

// icmpResult turns probe rounds into metrics, device status and observations.
func (a *App) icmpResult(ctx context.Context, out chan<- rules.Observation) func(icmp.Result) {
	return func(r icmp.Result) {
		dev, ok := a.devices.device(r.Device)
		if !ok {
			return // removed by a reload while the round ran
		}
		result := "up"
		switch {
		case r.Err != nil:
			result = "error"
		case r.Recv == 0:
			result = "down"
		}
		a.probes.WithLabelValues("icmp", result).Inc()
		up := 0.0
		if r.Recv > 0 {
			up = 1
		}
		a.deviceUp.WithLabelValues(r.Device).Set(up)
		a.devices.recordICMP(r)
		obs := rules.Observation{Source: rules.SourceICMP, Device: dev, Time: r.Time, Vars: r.RuleVars()}
		select {
		case out <- obs:
		case <-ctx.Done():
		}
	}
}

// snmpResult turns polls into metrics, device status and observations. A
// failed poll is no observation: metric rules neither fire nor resolve on
// missing data.
func (a *App) snmpResult(ctx context.Context, out chan<- rules.Observation) func(snmp.Result) {
	return func(r snmp.Result) {
		dev, ok := a.devices.device(r.Device)
		if !ok {
			return
		}
		result := "ok"
		if r.Err != nil {
			result = r.Reason
		}
		a.probes.WithLabelValues("snmp", result).Inc()
		a.devices.recordSNMP(r)
		if r.Err != nil || r.Vars == nil {
			return
		}
		select {
		case out <- rules.Observation{Source: rules.SourceSNMP, Device: dev, Time: r.Time, Vars: r.Vars}:
		case <-ctx.Done():
		}
	}
}

// trapHandler turns accepted traps into observations. A trap from an address
// outside the inventory (accepted by traps.unknown_sources) is evaluated for
// a device named by its address.
func (a *App) trapHandler(ctx context.Context, out chan<- rules.Observation) func(trap.Trap) {
	return func(t trap.Trap) {
		dev, ok := a.devices.byAddress(t.Source)
		if !ok {
			dev = rules.Device{Name: t.Source.String(), Address: t.Source.String()}
		}
		select {
		case out <- rules.Observation{Source: rules.SourceTrap, Device: dev, Time: t.Time, Vars: t.RuleVars()}:
		case <-ctx.Done():
		}
	}
}

// reloadTraps applies a reload's trap settings. Listen and engine_id are
// bound at start; a change to them waits for the next restart.
func (a *App) reloadTraps(old, gen *generation) {
	switch {
	case a.traps == nil && gen.cfg.Traps.Listen != "":
		a.log.Warn("traps section added: the trap receiver starts at the next restart")
	case a.traps == nil:
	case gen.cfg.Traps.Listen != old.cfg.Traps.Listen || gen.cfg.Traps.EngineID != old.cfg.Traps.EngineID:
		a.log.Warn("traps.listen or traps.engine_id changed: takes effect at the next restart; other trap settings stay as they were",
			"running_listen", old.cfg.Traps.Listen)
	default:
		if err := a.traps.Reload(trapOptions(gen, a.devices.known, a.log.With("component", "trap"), a.reg)); err != nil {
			a.log.Error("applying trap settings after reload", "err", err)
		}
	}
}

// dispatcher routes events and stores them in the outbox.
type dispatcher struct{ a *App }

func (d dispatcher) Dispatch(ctx context.Context, ev event.Event, resolveTo []string) ([]string, error) {
	var items []outbox.Item
	var wantResolve []string
	if ev.Status == event.StatusResolved {
		for _, dest := range resolveTo {
			items = append(items, outbox.Item{Destination: dest, Event: ev})
		}
	} else {
		for _, t := range d.a.gen.Load().router.Match(ev) {
			items = append(items, outbox.Item{Destination: t.Destination, Event: ev})
			if t.SendResolved && ev.Kind != rules.KindEvent {
				wantResolve = append(wantResolve, t.Destination)
			}
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	if err := d.a.outbox.Enqueue(ctx, items...); err != nil {
		return nil, err
	}
	return wantResolve, nil
}
