// Package vantage combines the ICMP results the nodes of a cluster report
// for each device into the one verdict rules see (SPEC 9 "Vantage points"):
// every node probes every device; the leader hands each node's observation
// to Set.Observe, which records it as that node's view of the device and
// returns the observation the rules must see, whose `up` is the verdict of
// the nodes whose results are fresh. So one node's own bad uplink, which
// makes every device look down from there, never raises a false "device
// down": its results are outvoted, counted as overruled and shown (Results,
// Disagreements), never hidden.
//
// It is pure logic over observations: no I/O, no goroutines. Memory is
// bounded by devices × nodes: Retain drops the devices a reload removed,
// and a node's result is forgotten once it is forgetAfter windows old.
package vantage

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// Options configure a Set.
type Options struct {
	// DownWhen is cluster.down_when: all (default) or majority.
	DownWhen config.DownWhen
	// Now is the clock Results and Disagreements judge freshness by (nil:
	// time.Now). Observe judges by the arriving observation's Time.
	Now func() time.Time
	// Registerer takes nocbridge_vantage_disagreements and
	// nocbridge_vantage_overruled_total{node} (nil: not registered).
	Registerer prometheus.Registerer
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
}

// Result is one node's last ICMP round of a device.
type Result struct {
	Node  string    `json:"node"`
	Up    bool      `json:"up"`
	Loss  float64   `json:"loss"`   // percent of echoes lost
	RTTMs float64   `json:"rtt_ms"` // average round-trip time of the replies
	At    time.Time `json:"at"`     // when the node measured it
	// Fresh: younger than the device's freshness window, so it counts
	// in the verdict.
	Fresh bool `json:"fresh"`
	// Error is why the node's round failed, when it says.
	Error string `json:"error,omitempty"`
}

// DeviceResults is a device whose nodes disagree, with the verdict their
// fresh results give now and every node's result.
type DeviceResults struct {
	Device  string   `json:"device"`
	Up      bool     `json:"up"` // the verdict
	Results []Result `json:"results"`
}

// Status is what /api/v1/cluster shows of the vantage points.
type Status struct {
	DownWhen      config.DownWhen `json:"down_when"`
	Disagreements []DeviceResults `json:"disagreements"`
}

// fallbackWindow is the freshness window of a device without ICMP settings
// (not pinged by this node's inventory): that of the default settings,
// 2 × 10 s + 1 s.
const fallbackWindow = 21 * time.Second

// forgetAfter is how many freshness windows a stale result stays visible
// (in Results, as not fresh) before it is forgotten.
const forgetAfter = 10

// Set holds each device's last result per node. Safe for concurrent use.
type Set struct {
	downWhen config.DownWhen
	now      func() time.Time
	log      *slog.Logger

	overruled *prometheus.CounterVec

	mu      sync.Mutex
	devices map[string]*device
	// overruledDevices counts, per node, the devices whose latest result
	// from it was down and outvoted: its transitions are logged once.
	overruledDevices map[string]int
}

type device struct {
	window time.Duration
	nodes  map[string]*view
}

// view is one node's latest round of a device.
type view struct {
	obs       observation.Observation // as the node reported it
	up        bool
	overruled bool // it said down, and the verdict was up
}

// New builds a Set and registers its metrics.
func New(opts Options) (*Set, error) {
	s := &Set{downWhen: opts.DownWhen, now: opts.Now, log: opts.Logger,
		devices: map[string]*device{}, overruledDevices: map[string]int{},
		overruled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nocbridge_vantage_overruled_total",
			Help: "ICMP rounds in which a node saw a device down and the other nodes outvoted it (a false \"device down\" avoided), by node.",
		}, []string{"node"}),
	}
	if s.downWhen == "" {
		s.downWhen = config.DownWhenAll
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "vantage", "down_when", string(s.downWhen))
	if opts.Registerer != nil {
		disagreements := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nocbridge_vantage_disagreements",
			Help: "Devices whose nodes' fresh ICMP results disagree now (some up, some down).",
		}, func() float64 { return float64(len(s.Disagreements())) })
		for _, c := range []prometheus.Collector{s.overruled, disagreements} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("vantage metrics: %w", err)
			}
		}
	}
	return s, nil
}

// DownWhen is the rule the verdict follows.
func (s *Set) DownWhen() config.DownWhen { return s.downWhen }

// Observe records node's ICMP round o and returns the observation rules
// must see. Observations of other sources, and ICMP ones without an `up`
// (nothing measured), pass through unchanged.
//
// The returned observation has o's Source, Device and Time, and `up` is the
// verdict of the device's fresh results (o's among them; fresh: measured
// less than the device's window before o.Time, the window being 2 × its
// ICMP interval + its timeout): with down_when all the device is down only
// when every fresh result says down, with majority when more than half do.
// A single node's verdict is its own result. When o agrees with the
// verdict, o itself is returned; when it does not, the other variables
// (loss, RTTs, sent, recv) and Err/Reason are those of the most recent
// fresh result that agrees (ties: the first node by name), so they never
// contradict `up`.
func (s *Set) Observe(node string, o observation.Observation) observation.Observation {
	if o.Source != observation.ICMP || o.Device == nil {
		return o
	}
	up, ok := o.Vars["up"].(bool)
	if !ok {
		return o
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[o.Device.Name]
	if d == nil {
		d = &device{nodes: map[string]*view{}}
		s.devices[o.Device.Name] = d
	}
	d.window = windowOf(o.Device)
	s.forget(d, o.Time)
	old := d.nodes[node]
	kept := o
	kept.Ack = nil // acknowledging is the arriving observation's, once
	v := &view{obs: kept, up: up}
	d.nodes[node] = v
	verdict, chosen := d.verdict(o.Time, s.downWhen)
	if !up && verdict {
		v.overruled = true
		s.overruled.WithLabelValues(node).Inc()
	}
	switch wasOverruled := old != nil && old.overruled; {
	case v.overruled && !wasOverruled:
		s.overruledDevices[node]++
		if s.overruledDevices[node] == 1 {
			s.log.Warn("a node sees devices down that the other nodes reach: outvoted (its own uplink may be failing)",
				"node", node, "device", o.Device.Name)
		}
	case !v.overruled && wasOverruled:
		s.unoverrule(node)
	}
	if up == verdict {
		return o
	}
	out := chosen.obs
	out.Source, out.Device, out.Time, out.Ack = o.Source, o.Device, o.Time, o.Ack
	return out
}

// unoverrule notes that node's latest result of a device is no longer an
// outvoted down; holds s.mu.
func (s *Set) unoverrule(node string) {
	s.overruledDevices[node]--
	if s.overruledDevices[node] <= 0 {
		delete(s.overruledDevices, node)
		s.log.Info("a node's results are no longer outvoted", "node", node)
	}
}

// forget drops d's results older than forgetAfter windows before ref;
// holds s.mu.
func (s *Set) forget(d *device, ref time.Time) {
	for node, v := range d.nodes {
		if ref.Sub(v.obs.Time) > forgetAfter*d.window {
			if v.overruled {
				s.unoverrule(node)
			}
			delete(d.nodes, node)
		}
	}
}

// windowOf is how long a device's result stays fresh: two intervals (one
// round may be lost or late) plus the timeout of the round in flight.
func windowOf(dev *inventory.Device) time.Duration {
	if dev.ICMP == nil || dev.ICMP.Interval <= 0 {
		return fallbackWindow
	}
	return 2*dev.ICMP.Interval + dev.ICMP.Timeout
}

// fresh reports whether a result measured at is fresh at ref.
func (d *device) fresh(at, ref time.Time) bool { return ref.Sub(at) < d.window }

// verdict is whether the device is up by its fresh results at ref, and the
// most recent fresh result that agrees with it (ties: first node by name).
// At least one result is fresh whenever ref is a result's own time.
func (d *device) verdict(ref time.Time, rule config.DownWhen) (bool, *view) {
	var fresh []*view
	down := 0
	for _, v := range d.sortedViews() {
		if d.fresh(v.obs.Time, ref) {
			fresh = append(fresh, v)
			if !v.up {
				down++
			}
		}
	}
	up := verdictOf(len(fresh), down, rule)
	var chosen *view
	for _, v := range fresh {
		if v.up == up && (chosen == nil || v.obs.Time.After(chosen.obs.Time)) {
			chosen = v
		}
	}
	return up, chosen
}

// verdictOf is the verdict of n fresh results of which down say down. No
// fresh result at all is no evidence of an outage: up.
func verdictOf(n, down int, rule config.DownWhen) bool {
	if n == 0 {
		return true
	}
	if rule == config.DownWhenMajority {
		return 2*down <= n
	}
	return down < n
}

// sortedViews are d's views by node name.
func (d *device) sortedViews() []*view {
	nodes := make([]string, 0, len(d.nodes))
	for n := range d.nodes {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	out := make([]*view, len(nodes))
	for i, n := range nodes {
		out[i] = d.nodes[n]
	}
	return out
}

// results are d's results at ref, by node.
func (d *device) results(ref time.Time) []Result {
	out := make([]Result, 0, len(d.nodes))
	for node, v := range d.nodes {
		r := Result{Node: node, Up: v.up, At: v.obs.Time, Fresh: d.fresh(v.obs.Time, ref)}
		r.Loss, _ = v.obs.Vars["loss"].(float64)
		r.RTTMs, _ = v.obs.Vars["rtt_ms"].(float64)
		if v.obs.Err != nil {
			r.Error = v.obs.Err.Error()
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Result) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// Results are each node's last result of the device, sorted by node, fresh
// as of now; nil when no node reported one.
func (s *Set) Results(device string) []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[device]
	if d == nil || len(d.nodes) == 0 {
		return nil
	}
	return d.results(s.now())
}

// Disagreements are the devices whose fresh results disagree now (some
// nodes see it up, some down), sorted by device, with every node's result.
func (s *Set) Disagreements() []DeviceResults {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := []DeviceResults{}
	for name, d := range s.devices {
		n, down := 0, 0
		for _, v := range d.nodes {
			if d.fresh(v.obs.Time, now) {
				n++
				if !v.up {
					down++
				}
			}
		}
		if down == 0 || down == n {
			continue
		}
		out = append(out, DeviceResults{Device: name, Up: verdictOf(n, down, s.downWhen), Results: d.results(now)})
	}
	slices.SortFunc(out, func(a, b DeviceResults) int { return cmp.Compare(a.Device, b.Device) })
	return out
}

// Status is the rule and the disagreements now, for /api/v1/cluster.
func (s *Set) Status() Status {
	return Status{DownWhen: s.downWhen, Disagreements: s.Disagreements()}
}

// Retain keeps the devices of inv and drops the others' results (a reload
// removed them).
func (s *Set) Retain(inv *inventory.Inventory) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, d := range s.devices {
		if _, ok := inv.Device(name); ok {
			continue
		}
		for node, v := range d.nodes {
			if v.overruled {
				s.unoverrule(node)
			}
		}
		delete(s.devices, name)
	}
}
