// Package noise is noise control (SPEC 11): it sits between the alert
// state machine and routing and decides, per alert transition, whether
// receivers are told now, later or never, so a NOC gets one message per root
// cause and every suppressed thing stays visible.
//
// It keeps two pictures. The device picture (reach.go), fed every ICMP
// round before rules see it, knows which devices fail, which of them are
// unreachable behind failing parents or a failing site, and raises a site's
// own observation when a site goes down at once (site.go). The receivers'
// picture (gate.go), kept per alert key (rule, device, key), knows what
// receivers were told: an active the gate sent, an active it holds back
// (waiting for a parent's verdict, suppressed behind a parent or site,
// muted by a maintenance window or silence) and whether the key flaps.
//
// Two rules hold throughout: an active that was never told sends nothing
// later, and an active that was told always gets its resolve. A transition
// the gate does not manage passes straight to routing, and the alert
// manager remembers where its active went; the gate records (in the store)
// only what it holds back or sends itself, so decisions survive a restart.
package noise

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/store"
)

// Dispatcher is routing and the outbox (route.Dispatcher).
type Dispatcher = event.Dispatcher

// Store persists the gate's records (a store.Bucket). Values are JSON.
type Store = store.Records

// Prober probes devices out of their rounds: the ICMP engine.
type Prober interface {
	ProbeNow(devices ...string)
}

// Mutes are the maintenance windows and silences.
type Mutes interface {
	// MutedBy names what mutes the alert of eventID on d at the time.
	MutedBy(d *inventory.Device, eventID string, at time.Time) []string
	// NextBoundary is the next moment any mute starts or ends.
	NextBoundary(after time.Time) (time.Time, bool)
	// Changed fires when a silence is added or ended or windows reloaded.
	Changed() <-chan struct{}
}

// Options configure a Gate.
type Options struct {
	Store  Store
	Next   Dispatcher
	Prober Prober // nil: no out-of-round probes
	Mutes  Mutes  // nil: nothing is ever muted
	// Emit hands derived observations (a site's own) to rule evaluation:
	// the observation queue. Required.
	Emit       observation.Emit
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time // nil: time.Now
	// History takes each decision: held, suppressed, muted, flapping,
	// released, not sent (nil: none).
	History history.Recorder
}

// Gate is noise control. Observe, Dispatch and the reads may be called from
// any goroutine; Run runs its timers.
type Gate struct {
	store  Store
	next   Dispatcher
	prober Prober
	mutes  Mutes
	emit   observation.Emit
	hist   history.Recorder
	log    *slog.Logger
	now    func() time.Time
	keys   keyLocks
	wake   chan struct{}

	mu    sync.Mutex
	cfg   config.Noise
	rules *rules.Set
	inv   *inventory.Inventory
	devs  map[string]*devState  // by device name: the device picture
	sites map[string]*siteState // by site name
	recs  map[string]*record    // by alert key: the receivers' picture
	// gen counts the changes that can change a held alert's fate (device
	// and site states, mutes, config): a held alert is judged again only
	// after one, or when a deadline of its own comes.
	gen      uint64
	nextMute time.Time          // the mute boundary the last pass planned for
	backs    map[string]*record // held alerts whose cause came back, waiting for the device's next round
	muted    []MutedEvent       // one-shot events not sent because muted (newest last, bounded)

	metrics metrics
}

type metrics struct {
	decisions   *prometheus.CounterVec
	suppressed  *prometheus.Desc
	flapping    *prometheus.Desc
	unreachable *prometheus.Desc
}

// Reasons an alert is held back, as the API and the metrics name them.
const (
	ReasonParentWait  = "parent_wait" // waiting for its parents' verdict (SPEC 11.1 parent first)
	ReasonParent      = "parent"      // unreachable behind failing parents
	ReasonSite        = "site"        // unreachable in a site outage
	ReasonFlapping    = "flapping"
	ReasonMaintenance = "maintenance"
	ReasonSilence     = "silence"
)

// New loads the gate's records from the store.
func New(ctx context.Context, opts Options) (*Gate, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.History == nil {
		opts.History = history.Discard
	}
	g := &Gate{
		store: opts.Store, next: opts.Next, prober: opts.Prober, mutes: opts.Mutes, emit: opts.Emit, hist: opts.History,
		log: opts.Logger, now: opts.Now,
		wake: make(chan struct{}, 1),
		devs: map[string]*devState{}, sites: map[string]*siteState{}, recs: map[string]*record{}, backs: map[string]*record{},
		inv: inventory.Of(), rules: rules.NewSet(nil),
	}
	g.keys.held = map[string]*keyLock{}
	g.metrics = metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_alerts_suppressed_total",
			Help: "Alert transitions noise control held back or dropped, by reason (parent_wait, parent, site, flapping, maintenance, silence)."}, []string{"reason"}),
		suppressed: prometheus.NewDesc("nocbridge_alerts_suppressed",
			"Alerts noise control holds back now, by reason.", []string{"reason"}, nil),
		flapping:    prometheus.NewDesc("nocbridge_alerts_flapping", "Alert keys (rule, device, key) flapping now.", nil, nil),
		unreachable: prometheus.NewDesc("nocbridge_devices_unreachable", "Devices failing behind failing parents or in a site outage.", nil, nil),
	}
	for _, r := range []string{ReasonParentWait, ReasonParent, ReasonSite, ReasonFlapping, ReasonMaintenance, ReasonSilence} {
		g.metrics.decisions.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{g.metrics.decisions, collector{g}} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("noise metrics: %w", err)
			}
		}
	}
	if err := g.load(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// SetProber gives the gate the ICMP engine once it is open (it opens after
// the gate is built).
func (g *Gate) SetProber(p Prober) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.prober = p
}

// Configure installs the noise settings, rules and inventory (at start and
// on reload).
func (g *Gate) Configure(cfg config.Noise, set *rules.Set, inv *inventory.Inventory) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg, g.rules, g.inv = cfg, set, inv
	for name := range g.devs {
		if _, ok := inv.Device(name); !ok {
			delete(g.devs, name)
		}
	}
	for _, st := range g.sites {
		st.dirty = true
	}
	g.poke()
}

// poke makes Run judge held alerts again: something changed. The caller
// holds g.mu (or is New/Configure's caller before Run).
func (g *Gate) poke() {
	g.gen++
	g.wakeRun()
}

func (g *Gate) wakeRun() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// flapPolicy is the rule's own, else noise.flap.
func (g *Gate) flapPolicy(eventID string) config.Flap {
	if r := g.rules.ByEventID(eventID); r != nil && r.Flap != nil {
		return *r.Flap
	}
	return g.cfg.Flap
}

// ruleFor is the rule's `for`: how long a child still down after its parent
// came back must stay down before it is told.
func (g *Gate) ruleFor(eventID string) time.Duration {
	if r := g.rules.ByEventID(eventID); r != nil {
		return r.For
	}
	return 0
}

// holdKind is how history names a hold for reason.
func holdKind(reason string) history.Kind {
	switch reason {
	case ReasonParentWait:
		return history.KindHeld
	case ReasonMaintenance, ReasonSilence:
		return history.KindMuted
	}
	return history.KindSuppressed // parent, site, flapping
}

// note tells history of a decision about ev at the time.
func (g *Gate) note(ev event.Event, kind history.Kind, at time.Time, detail string) {
	g.hist.Record(ev, history.Entry{At: at, Kind: kind, Status: ev.Status, Detail: detail})
}

// noteRec tells history of a decision about the instance rec decided last
// (its flapping ending), which it knows by name only.
func (g *Gate) noteRec(rec *record, kind history.Kind, at time.Time, detail string) {
	id, status, ok := strings.Cut(rec.Last, "/")
	if !ok || id == "" {
		return
	}
	ev := event.Event{InstanceID: id, EventID: rec.EventID, Device: inventory.Device{Name: rec.Device}, Key: rec.Key, Status: event.Status(status)}
	g.note(ev, kind, at, detail)
}

// collector reports the current holds at scrape time.
type collector struct{ g *Gate }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.g.metrics.suppressed
	ch <- c.g.metrics.flapping
	ch <- c.g.metrics.unreachable
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	g.mu.Lock()
	held := map[string]int{}
	for _, r := range []string{ReasonParentWait, ReasonParent, ReasonSite, ReasonFlapping, ReasonMaintenance, ReasonSilence} {
		held[r] = 0
	}
	flapping := 0
	for _, rec := range g.recs {
		if rec.Held != nil {
			held[rec.Reason]++
		}
		if rec.Flapping {
			flapping++
		}
	}
	unreachable := 0
	for name, d := range g.devs {
		if d.failing && g.unreachableLocked(name) {
			unreachable++
		}
	}
	g.mu.Unlock()
	for r, n := range held {
		ch <- prometheus.MustNewConstMetric(g.metrics.suppressed, prometheus.GaugeValue, float64(n), r)
	}
	ch <- prometheus.MustNewConstMetric(g.metrics.flapping, prometheus.GaugeValue, float64(flapping))
	ch <- prometheus.MustNewConstMetric(g.metrics.unreachable, prometheus.GaugeValue, float64(unreachable))
}

// keyLocks serializes the work on one alert key (a transition from the
// alert manager, a release from the timers) without holding the gate's
// lock while the outbox writes.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]*keyLock
}

type keyLock struct {
	mu    sync.Mutex
	users int
}

func (k *keyLocks) lock(key string) func() {
	k.mu.Lock()
	l := k.held[key]
	if l == nil {
		l = &keyLock{}
		k.held[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.held, key)
		}
		k.mu.Unlock()
	}
}
