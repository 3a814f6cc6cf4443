// Package snmp polls devices over SNMP (v1, v2c, v3) on an interval and
// emits what it saw as observations: CPU and memory percent, uptime, whether
// the device restarted, and custom OIDs, or why the poll failed. It knows
// the inventory, never rules. gosnmp sits behind Client; FakeAgent is the
// in-memory agent for tests.
package snmp

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/schedule"
)

// Defaults for zero fields of a Target and its Profile (SPEC section 3).
const (
	DefaultInterval    = 60 * time.Second
	DefaultTimeout     = 2 * time.Second
	DefaultPort        = 161
	DefaultConcurrency = 64
)

// Target is one device to poll.
type Target struct {
	Device   string
	Address  string             // IPv4, IPv6 or DNS name
	Profile  config.SNMPProfile // version and credentials; Port 0: 161
	Interval time.Duration      // 0: DefaultInterval
	Timeout  time.Duration      // per request attempt; 0: DefaultTimeout
	Retries  int                // extra attempts per request
	OIDs     map[string]string

	dev *inventory.Device // the record observations carry (Targets sets it)
}

// Targets are the inventory's polled devices, with their settings, but
// those an edge site's collector polls (Device.Remote).
func Targets(inv *inventory.Inventory) []Target {
	var ts []Target
	for _, d := range inv.Devices() {
		if s := d.SNMP; s != nil && !d.Remote { // an edge site's devices: its collector polls them
			ts = append(ts, Target{Device: d.Name, Address: d.Address, Profile: s.Profile,
				Interval: s.Interval, Timeout: s.Timeout, Retries: s.Retries, OIDs: s.OIDs, dev: d})
		}
	}
	return ts
}

// device is the inventory record of the target, or one made from its name
// and address for a target built by hand.
func (t Target) device() *inventory.Device {
	if t.dev != nil {
		return t.dev
	}
	return &inventory.Device{Name: t.Device, Address: t.Address}
}

// Result is one poll of one device.
type Result struct {
	Device string
	Time   time.Time
	// Vars holds cpu, mem (percent, float64), uptime_s (float64),
	// uptime_reset (bool) and the custom OIDs (float64 when numeric, else
	// string), for what the device has. Nil when the poll failed.
	Vars      map[string]any
	Err       error
	Reason    string // "" ok | timeout | auth | unreachable | error
	CPUSource string // the MIB cpu came from, "" when none
	MemSource string // the MIB mem came from, "" when none

	dev *inventory.Device
}

// Observation is the poll as rules see it: its Vars, or no Vars and the
// failure with its reason.
func (r Result) Observation() observation.Observation {
	return observation.Observation{Source: observation.SNMP, Device: r.dev, Time: r.Time, Vars: r.Vars, Err: r.Err, Reason: r.Reason}
}

// Options configure an Engine.
type Options struct {
	Concurrency int // polls in flight at once; 0: DefaultConcurrency
	Logger      *slog.Logger
	Registerer  prometheus.Registerer // nil: no metrics
	// Client builds the client of a target; nil means gosnmp (NewClient).
	Client func(Target) (Client, error)
}

// Engine polls targets. SetTargets may be called at any time.
type Engine struct {
	log         *slog.Logger
	concurrency int
	newClient   func(Target) (Client, error)
	metrics     metrics

	targets schedule.Latest[Target]
	running atomic.Bool
}

type metrics struct {
	duration *prometheus.HistogramVec
	skipped  prometheus.Counter
}

// New creates an engine; nothing runs before Run.
func New(opts Options) *Engine {
	e := &Engine{
		log:         opts.Logger,
		concurrency: opts.Concurrency,
		newClient:   opts.Client,
		metrics: metrics{
			duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "nocbridge_snmp_poll_duration_seconds",
				Help:    "Duration of SNMP polls of one device, by result (ok or the failure reason).",
				Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
			}, []string{"result"}),
			skipped: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "nocbridge_snmp_polls_skipped_total",
				Help: "SNMP poll slots skipped because the device's previous poll had not finished.",
			}),
		},
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.concurrency <= 0 {
		e.concurrency = DefaultConcurrency
	}
	if e.newClient == nil {
		e.newClient = NewClient
	}
	if opts.Registerer != nil {
		e.metrics.duration = registerOrReuse(opts.Registerer, e.metrics.duration)
		e.metrics.skipped = registerOrReuse(opts.Registerer, e.metrics.skipped)
	}
	return e
}

// registerOrReuse registers c, or returns the collector already registered
// under its name (an engine rebuilt on reload keeps its series).
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// SetTargets replaces the devices to poll. Unchanged targets keep their
// schedule and what was learned about them (sources, last uptime).
func (e *Engine) SetTargets(ts []Target) {
	cp := make([]Target, len(ts))
	for i, t := range ts {
		t.OIDs = maps.Clone(t.OIDs)
		cp[i] = withDefaults(t)
	}
	e.targets.Set(cp)
}

// Run polls until ctx ends, emitting one observation per poll. It returns
// nil on cancel, once every poll in flight has stopped and every socket is
// closed.
func (e *Engine) Run(ctx context.Context, emit observation.Emit) error {
	return e.run(ctx, func(r Result) { emit(r.Observation()) })
}

// run is Run with the polls as Results, reported from a single goroutine,
// one at a time.
func (e *Engine) run(ctx context.Context, report func(Result)) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("snmp: engine is already running")
	}
	defer e.running.Store(false)
	s := newScheduler(ctx, e, report)
	s.loop()
	s.shutdown()
	return nil
}

func withDefaults(t Target) Target {
	if t.Interval <= 0 {
		t.Interval = DefaultInterval
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
	t.Timeout = min(t.Timeout, t.Interval)
	t.Retries = max(t.Retries, 0)
	if t.Profile.Port == 0 {
		t.Profile.Port = DefaultPort
	}
	return t
}

// sameTarget reports whether b can take over a's running poller (all but
// the inventory record, which a reload renews).
func sameTarget(a, b Target) bool {
	a.dev, b.dev = nil, nil
	return reflect.DeepEqual(a, b)
}
