// Package app wires sources, rules, alerts, routing, the outbox and the
// notifiers, starts them and stops them in reverse order. It holds no
// mechanism of its own, and can run inside a test.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/cluster"
	"github.com/nocbridge/nocbridge/internal/cluster/edge"
	"github.com/nocbridge/nocbridge/internal/cluster/lease"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/console"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/httpapi"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/noise"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/probe"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/route"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/systemd"
	"github.com/nocbridge/nocbridge/internal/trap"
	"github.com/nocbridge/nocbridge/internal/vantage"
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

	gen      atomic.Pointer[generation]
	store    *store.Store
	outbox   *outbox.Outbox
	history  *history.History
	dispatch *route.Dispatcher
	alerts   *alert.Manager
	noise    *noise.Gate
	mutes    *mute.Set // maintenance windows and silences, for the noise gate
	devices  *inventory.Live
	states   *devstate.Tracker
	edge     *edge.Node // edge: or hub: (SPEC 9); nil: neither
	queue    *observation.Queue
	emit     observation.Emit // the sources': the queue alone, the bus in a cluster
	lease    *lease.Lease     // cluster only, as bus and bridge
	bus      *store.Bus
	bridge   *cluster.Bridge
	vantage  *vantage.Set // cluster only: every node's ICMP rounds of each device
	icmp     *icmp.Engine // nil when no device is pinged and ICMP sockets cannot be opened
	snmp     *snmp.Engine
	traps    *trap.Receiver // nil when the config has no traps section
	ready    atomic.Bool
	httpURL  atomic.Value // string, once bound

	reloadMu   sync.Mutex
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

// queueSize bounds the observations waiting for rule evaluation: a burst of
// traps beyond it is dropped and counted, never stalls a source.
const queueSize = 16384

// New validates the config; nothing is started until Run.
func New(opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &App{opts: opts, log: opts.Logger, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_config_last_reload_successful", Help: "Whether the last config load succeeded."})
	a.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_config_last_reload_success_timestamp_seconds", Help: "Time of the last successful config load."})
	a.reg.MustRegister(a.reloadOK, a.reloadTime)
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

// Ready reports whether the store is open and every listener bound: the
// process is up (the systemd watchdog's question).
func (a *App) Ready() bool { return a.ready.Load() }

// Readiness is /readyz's answer: nil when up and the store can write, else
// why not. A store that cannot write does not stop nocbridge (what it
// cannot store waits in memory), but a load balancer or an operator must
// know.
func (a *App) Readiness() error {
	if !a.Ready() {
		return errors.New("starting or stopping")
	}
	if h := a.store.Health(); !h.OK {
		unsent, unstored := a.alerts.Unsent()
		return fmt.Errorf("state store in %s cannot write since %s (%s): %s; %d alert transition(s) waiting, %d of them held only in memory",
			a.store.Dir(), h.Since.UTC().Format(time.RFC3339), time.Since(h.Since).Round(time.Second), h.Reason, unsent, unstored)
	}
	return a.store.ClusterReady(context.Background())
}

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
	a.store, err = store.Open(ctx, store.Options{Dir: cfg.StateDir, SyncInterval: syncEvery, Cluster: cfg.Cluster, URL: cfg.Store.NATSURL, Edge: cfg.Edge, Hub: cfg.Hub,
		Logger: a.log.With("component", "store"), Registerer: a.reg})
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
	logWarnings(a.log, gen.cfg.Warnings)
	a.gen.Store(gen)
	defer func() { a.gen.Load().notifiers.Close(a.log) }()
	if err := a.build(ctx, gen); err != nil {
		return err
	}
	if err := a.joinCluster(ctx, gen.cfg.Cluster); err != nil {
		return err
	}
	// History's writer stops after the pipeline that writes to it.
	histCtx, stopHistory := context.WithCancel(context.WithoutCancel(ctx))
	histDone := make(chan struct{})
	go func() { defer close(histDone); _ = a.history.Run(histCtx) }()
	defer func() { stopHistory(); <-histDone }()

	// Sockets opened below belong to their Run; if the start fails before
	// the sources run, release them here.
	sourcesStarted := false
	defer func() {
		if !sourcesStarted {
			a.releaseSockets()
		}
	}()
	if err := a.openSources(gen); err != nil {
		return err
	}
	api := a.apiDeps(gen.cfg.HTTP)
	if api.Console, err = a.console(api); err != nil {
		return err
	}
	srv, err := httpapi.Listen(gen.cfg.HTTP, httpapi.Handler(api))
	if err != nil {
		return err
	}
	a.httpURL.Store(srv.Addr())

	// The pipeline (outbox, alert timers, HTTP) outlives the sources, so
	// what the sources saw last is still processed on the way down.
	pipeCtx, stopPipe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPipe()
	var pipe, sources sync.WaitGroup
	errc := make(chan error, 16) // room for every component's error
	goRun := func(wg *sync.WaitGroup, name string, f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	a.store.OnChange(a.storeChanged)
	goRun(&pipe, "store", func() error { return a.store.Run(pipeCtx) })
	goRun(&pipe, "http", func() error { return srv.Serve(pipeCtx) })
	goRun(&pipe, "inventory", func() error { return a.devices.Run(pipeCtx) })
	goRun(&pipe, "silences", func() error { return a.mutes.Run(pipeCtx) })
	if a.lease != nil {
		goRun(&pipe, "lease", func() error { return a.lease.Run(pipeCtx) })
		goRun(&pipe, "bus", func() error { return a.bus.Run(pipeCtx) })
	}
	goRun(&pipe, "edge", func() error { return a.edge.RunPublisher(pipeCtx) })
	// Evaluation and delivery: while this node leads (alone: always).
	termsCtx, stopTerms := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTerms()
	var terms sync.WaitGroup
	goRun(&terms, "leader", func() error { return cluster.Terms(termsCtx, a.leadership(), a.lead(goRun)) })

	sourcesStarted = true
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	emit := a.edge.Emit(a.emit) // an edge's sources feed its buffer for the hub
	if a.icmp != nil {
		goRun(&sources, "icmp", func() error { return a.icmp.Run(srcCtx, emit) })
	}
	goRun(&sources, "snmp", func() error { return a.snmp.Run(srcCtx, emit) })
	goRun(&sources, "edge sites", func() error { return a.edge.RunSource(srcCtx, a.emit) })
	if a.traps != nil {
		goRun(&sources, "traps", func() error { return a.traps.Run(srcCtx, emit) })
	}

	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.ready.Store(true)
	if _, err := systemd.Notify("READY=1\nSTATUS=monitoring"); err != nil {
		a.log.Warn("systemd notify", "err", err)
	}
	go systemd.Watchdog(pipeCtx, a.Ready)
	a.log.Info("nocbridge started", "version", a.opts.Version, "http", srv.Addr(), "devices", gen.inventory.Len(),
		"rules", len(gen.rules.Rules), "destinations", len(gen.destinations), "icmp_privileged", a.icmp != nil && a.icmp.Privileged())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		a.log.Error("component failed, stopping", "err", runErr)
	}
	a.ready.Store(false)
	_, _ = systemd.Notify("STOPPING=1")
	stopSources()
	sources.Wait()
	a.queue.Close()
	stopTerms()
	terms.Wait()
	stopPipe()
	pipe.Wait()
	a.log.Info("nocbridge stopped")
	return runErr
}

// storeChanged: when the store writes again, what it refused is handed
// over at once; systemctl status shows the outage meanwhile.
func (a *App) storeChanged(h store.Health) {
	if !h.OK {
		_, _ = systemd.Notify("STATUS=state store cannot write (" + h.Reason + "): holding alerts in memory")
		return
	}
	_, _ = systemd.Notify("STATUS=monitoring")
	if !a.leads() {
		return
	}
	a.alerts.RetryUnsent()
	a.noise.Retry()
}

// build makes the pipeline's components, sources last.
func (a *App) build(ctx context.Context, gen *generation) error {
	var err error
	if a.history, err = history.New(ctx, a.store, history.Options{Retention: gen.cfg.History.Retention.D(),
		Logger: a.log.With("component", "history"), Registerer: a.reg}); err != nil {
		return err
	}
	if a.outbox, err = outbox.New(ctx, a.store, outbox.Options{Logger: a.log.With("component", "outbox"), Registerer: a.reg, History: a.history}); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	a.outbox.SetDestinations(gen.destinations)
	a.dispatch = route.NewDispatcher(gen.router, a.outbox)
	a.dispatch.SetEditors(gen.notifiers.Edits)
	if a.queue, err = observation.NewQueue(queueSize, a.reg); err != nil {
		return err
	}
	silences, err := a.store.Bucket(ctx, "silences")
	if err != nil {
		return fmt.Errorf("silences bucket: %w", err)
	}
	if a.mutes, err = mute.New(ctx, silences, gen.windows, mute.Options{Logger: a.log.With("component", "mute"), Registerer: a.reg}); err != nil {
		return err
	}
	decisions, err := a.store.Bucket(ctx, "noise")
	if err != nil {
		return fmt.Errorf("noise-control bucket: %w", err)
	}
	// A site's own observations go straight to alert state: they come from
	// the evaluation goroutine and the gate's timers, after the sources'
	// queue may be closed.
	siteCtx := context.WithoutCancel(ctx)
	a.noise, err = noise.New(ctx, noise.Options{Store: decisions, Next: a.dispatch, Mutes: a.mutes,
		Emit:   func(o observation.Observation) { _ = a.alerts.Observe(siteCtx, o) },
		Logger: a.log.With("component", "noise"), Registerer: a.reg, History: a.history})
	if err != nil {
		return err
	}
	a.noise.Configure(gen.cfg.Noise, gen.rules, gen.inventory)
	alerts, err := a.store.Bucket(ctx, "alerts")
	if err != nil {
		return fmt.Errorf("alert state bucket: %w", err)
	}
	if a.alerts, err = alert.New(ctx, alerts, a.noise, alert.Options{Logger: a.log.With("component", "alert"), Registerer: a.reg, History: a.history}); err != nil {
		return err
	}
	a.devices = inventory.NewLive(gen.inventory, a.log.With("component", "inventory"))
	if a.states, err = devstate.New(a.reg); err != nil {
		return err
	}
	a.edge, err = edge.Start(ctx, gen.cfg, a.store, edge.NodeOptions{Inventory: a.devices.Load, Devices: a.states, Backlog: a.queue.Len,
		Logger: a.log.With("component", "edge"), Registerer: a.reg})
	return err
}

// openSources opens the sources' sockets now, so a permission problem or a
// port conflict fails the start.
func (a *App) openSources(gen *generation) error {
	// ICMP sockets need privileges (SPEC 3); a deployment where no device is
	// pinged (traps and polling only) must not need them.
	e, err := icmp.New(icmp.Options{Privileged: icmp.Mode(gen.cfg.ICMP.Privileged), Logger: a.log.With("component", "icmp")})
	switch targets := icmp.Targets(gen.inventory); {
	case err == nil:
		a.icmp = e
		a.icmp.SetTargets(targets)
		a.noise.SetProber(e) // parent first: failing devices' parents are probed at once
	case len(targets) > 0:
		return err
	default:
		a.log.Warn("running without ICMP: no device is pinged and ICMP sockets cannot be opened", "err", err)
	}
	a.snmp = snmp.New(snmp.Options{Logger: a.log.With("component", "snmp"), Registerer: a.reg})
	a.snmp.SetTargets(snmp.Targets(gen.inventory))
	if gen.cfg.Traps.Listen == "" {
		return nil
	}
	if a.traps, err = trap.New(a.trapOptions(gen)); err != nil {
		return fmt.Errorf("trap receiver: %w", err)
	}
	return nil
}

// releaseSockets closes what openSources opened, for a start that failed
// before the sources ran.
func (a *App) releaseSockets() {
	if a.icmp != nil {
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		_ = a.icmp.Run(cancelled, func(observation.Observation) {}) // closes its sockets
	}
	if a.traps != nil {
		_ = a.traps.Close()
	}
}

func (a *App) trapOptions(gen *generation) trap.Options {
	opts := gen.traps
	opts.Inventory, opts.Logger, opts.Registerer = a.devices.Load, a.log.With("component", "trap"), a.reg
	return opts
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
	if err == nil && a.icmp == nil && len(icmp.Targets(gen.inventory)) > 0 {
		gen.notifiers.Close(a.log)
		err = fmt.Errorf("%s: devices now need ICMP, but nocbridge started without ICMP sockets: allow ping sockets (net.ipv4.ping_group_range) or grant CAP_NET_RAW, then restart", a.opts.ConfigPath)
	}
	if err != nil {
		a.reloadOK.Set(0)
		a.log.Error("config reload rejected; the running config stays", "file", a.opts.ConfigPath, "errors", err.Error())
		return err
	}
	logWarnings(a.log, gen.cfg.Warnings)
	old := a.gen.Swap(gen)
	a.warnRestartOnly(old.cfg, gen.cfg)
	a.devices.Store(gen.inventory)
	a.states.Retain(gen.inventory)
	if a.vantage != nil {
		a.vantage.Retain(gen.inventory)
	}
	a.outbox.SetDestinations(gen.destinations)
	a.dispatch.SetRouter(gen.router)
	a.dispatch.SetEditors(gen.notifiers.Edits)
	a.noise.Configure(gen.cfg.Noise, gen.rules, gen.inventory)
	a.mutes.SetWindows(gen.windows)
	old.notifiers.Close(a.log)
	if a.icmp != nil {
		a.icmp.SetTargets(icmp.Targets(gen.inventory))
	}
	a.snmp.SetTargets(snmp.Targets(gen.inventory))
	if a.traps != nil && gen.cfg.Traps.Listen == old.cfg.Traps.Listen && gen.cfg.Traps.EngineID == old.cfg.Traps.EngineID {
		if err := a.traps.Reload(a.trapOptions(gen)); err != nil {
			a.log.Error("applying trap settings after reload", "err", err)
		}
	}
	if a.leads() { // a follower's apply when it leads
		if err := a.alerts.SetRules(ctx, gen.rules, gen.inventory); err != nil {
			a.log.Error("applying rules after reload", "err", err)
		}
	}
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.log.Info("config reloaded", "devices", gen.inventory.Len(), "rules", len(gen.rules.Rules), "destinations", len(gen.destinations))
	return nil
}

// warnRestartOnly names the settings a reload cannot apply: they are bound
// at start.
func (a *App) warnRestartOnly(old, cfg *config.Config) {
	if old.HTTP.Listen != cfg.HTTP.Listen {
		a.log.Warn("http.listen changed: takes effect at the next restart", "running", old.HTTP.Listen)
	}
	if !reflect.DeepEqual(old.HTTP.TLS, cfg.HTTP.TLS) {
		a.log.Warn("http.tls changed: takes effect at the next restart")
	}
	if old.StateDir != cfg.StateDir {
		a.log.Warn("state_dir changed: takes effect at the next restart", "running", old.StateDir)
	}
	if !reflect.DeepEqual(old.Cluster, cfg.Cluster) || old.Store.NATSURL != cfg.Store.NATSURL || !reflect.DeepEqual(old.Edge, cfg.Edge) || !reflect.DeepEqual(old.Hub, cfg.Hub) {
		a.log.Warn("cluster, edge, hub or store.nats_url changed: takes effect at the next restart")
	}
	switch {
	case a.traps == nil && cfg.Traps.Listen != "":
		a.log.Warn("traps section added: the trap receiver starts at the next restart")
	case a.traps != nil && (cfg.Traps.Listen != old.Traps.Listen || cfg.Traps.EngineID != old.Traps.EngineID):
		a.log.Warn("traps.listen or traps.engine_id changed: takes effect at the next restart; other trap settings stay as they were",
			"running_listen", old.Traps.Listen)
	}
}

func (a *App) stateFor(ctx context.Context) stateFor {
	return func(dest string) (notify.StateStore, error) { return a.store.DestinationState(ctx, dest) }
}

// apiDeps are the API's read models and its access rules; the listener
// (h.Listen) is bound once, so whether it is Public is too.
func (a *App) apiDeps(h config.HTTP) httpapi.Deps {
	d := httpapi.Deps{
		Logger:   a.log.With("component", "http"),
		Gatherer: a.reg,
		Ready:    a.Readiness,
		Alerts:   a.alerts.Instances,
		Devices: func() []devstate.Status {
			list := a.states.List(a.devices.Load())
			a.noise.Annotate(list)
			return list
		},
		Device: func(name string) (devstate.Detail, bool) {
			d, ok := a.states.Detail(a.devices.Load(), name)
			if ok {
				one := []devstate.Status{d.Status}
				a.noise.Annotate(one)
				d.Status = one[0]
			}
			return d, ok
		},
		Noise: a.noise,
		Destinations: func() []string {
			var names []string
			for _, d := range a.gen.Load().destinations {
				names = append(names, d.Name)
			}
			return names
		},
		Outbox:      leaderOutbox{a.outbox, a},
		Silences:    a.mutes,
		Prober:      a.prober(),
		History:     a.history,
		Token:       func() config.Secret { return a.gen.Load().cfg.HTTP.Token },
		Public:      !config.LoopbackListen(h.Listen),
		MetricsAuth: func() bool { return a.gen.Load().cfg.HTTP.MetricsAuth },
		Cluster:     a.edge.ClusterInfo(a.clusterInfo),
	}
	if a.vantage != nil {
		d.ClusterVantage, d.Vantage = a.vantage.Status, a.vantage.Results
	}
	return d
}

// console is the operator's console over the API's read models, history,
// the device series and the outbox, mutes and prober the API uses.
func (a *App) console(api httpapi.Deps) (*console.Console, error) {
	d := console.Deps{Logger: a.log.With("component", "console"), Registerer: a.reg,
		ExternalURL: func() string { return a.gen.Load().cfg.ExternalURL },
		Alerts:      api.Alerts, Devices: api.Devices, Destinations: api.Destinations, Token: api.Token,
		Device: func(name string) (devstate.Status, bool) { d, ok := api.Device(name); return d.Status, ok },
		Series: a.states, History: a.history, Noise: a.noise, Outbox: leaderOutbox{a.outbox, a}, Mutes: a.mutes,
		Prober: console.ProbeWith(api.Prober),
		Store: func() error {
			if h := a.store.Health(); !h.OK {
				return errors.New(h.Reason)
			}
			return nil
		},
		ClusterVantage: api.ClusterVantage, Vantage: api.Vantage}
	if a.lease != nil || a.edge != nil {
		d.Cluster = api.Cluster // the cluster page, linked from the navigation
	}
	return console.New(d)
}

// prober probes a device by hand with the running config and the live inventory.
func (a *App) prober() *probe.Prober {
	return probe.New(probe.Options{Logger: a.log.With("component", "probe"), Registerer: a.reg, Current: func() probe.Snapshot {
		g := a.gen.Load()
		return probe.Snapshot{Config: g.cfg, Inventory: a.devices.Load(), Traps: g.traps}
	}})
}
