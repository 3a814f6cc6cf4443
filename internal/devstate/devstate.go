// Package devstate keeps what was last seen of each device — its last ICMP
// round and SNMP poll, with the failure when there was one, the last hour
// of RTT and loss minute by minute, the last values polled and the last
// poll failures — for /api/v1/devices, the console's device page and the
// per-probe metrics nocbridge_probes_total and nocbridge_device_up. It is
// fed every observation, before rules see them; what it keeps per device is
// bounded (one fixed ring of minutes, a few poll failures, the last poll's
// values) and dropped when the device leaves the inventory.
package devstate

import (
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// Status is one device as /api/v1/devices shows it.
type Status struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Site    string            `json:"site,omitempty"`
	Role    string            `json:"role,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	State   string            `json:"state"` // up | down | unreachable | unknown
	// SuppressedBy are what an unreachable device fails behind: down
	// parents, or "site S" in a site outage (noise control).
	SuppressedBy []string  `json:"suppressed_by,omitempty"`
	LossPct      float64   `json:"loss_pct"`
	RTTMs        float64   `json:"last_rtt_ms"`
	LastProbe    time.Time `json:"last_probe,omitzero"`
	Error        string    `json:"error,omitempty"`
	// SNMP polling: state is ok or the failure reason (timeout, auth,
	// unreachable, error); the last good values stay beside a failure.
	SNMPState string    `json:"snmp_state,omitempty"`
	SNMPError string    `json:"snmp_error,omitempty"`
	LastPoll  time.Time `json:"last_poll,omitzero"`
	CPU       *float64  `json:"last_cpu_pct,omitempty"`
	Mem       *float64  `json:"last_mem_pct,omitempty"`
	UptimeS   *float64  `json:"uptime_s,omitempty"`
}

// Detail is one device as /api/v1/devices/{name} and the console's device
// page show it: its Status, the last hour of ICMP results, the last values
// polled and the last poll failures.
type Detail struct {
	Status
	// Series is the last hour, one Point per minute that had an ICMP
	// round, oldest first; a minute without rounds is absent (a gap in
	// At), so a chart shows no data there rather than a made-up value.
	Series []Point `json:"rtt_series"`
	// SNMP is the last successful poll; nil before the first.
	SNMP *SNMPValues `json:"snmp,omitempty"`
	// PollErrors are the last MaxPollErrors failures, newest first; a
	// failure repeated poll after poll is one entry with its count.
	PollErrors []PollError `json:"poll_errors"`
}

// SNMPValues are what the last successful poll of a device reported: cpu,
// mem (percent), uptime_s, uptime_reset and the custom OIDs (snmp.oids),
// as rules see them, for what the device has.
type SNMPValues struct {
	At     time.Time      `json:"at"`
	Values map[string]any `json:"values"`
}

// PollError is a failed SNMP poll, or a run of polls failing alike (same
// reason and error).
type PollError struct {
	Since  time.Time `json:"since"` // the first poll of the run
	At     time.Time `json:"at"`    // the last one
	Count  int       `json:"count"` // polls in the run
	Reason string    `json:"reason"`
	Error  string    `json:"error"`
}

// MaxPollErrors is how many poll failures (runs of alike ones) a device
// keeps.
const MaxPollErrors = 5

// device is what the tracker keeps of one device; the inventory's fields
// are added when it is read.
type device struct {
	// The last ICMP round; seen is false before the first.
	seen      bool
	up        bool
	loss, rtt float64
	lastProbe time.Time
	probeErr  string
	series    *series // nil before the first round

	// The last SNMP poll: its state (ok or the failure reason) and error,
	// and the values of the last successful one (the observation's own
	// map: observations are never modified once emitted).
	snmpState, snmpErr string
	lastPoll           time.Time
	values             map[string]any
	valuesAt           time.Time
	pollErrs           *pollErrors // nil until a poll fails
}

// pollErrors is a ring of the last MaxPollErrors failures.
type pollErrors struct {
	ring [MaxPollErrors]PollError
	n    int // held, ≤ MaxPollErrors
	next int // where the next one goes
}

func (p *pollErrors) add(at time.Time, reason, msg string) {
	if p.n > 0 {
		last := &p.ring[(p.next+MaxPollErrors-1)%MaxPollErrors]
		if last.Reason == reason && last.Error == msg {
			last.At = at
			last.Count++
			return
		}
	}
	p.ring[p.next] = PollError{Since: at, At: at, Count: 1, Reason: reason, Error: msg}
	p.next = (p.next + 1) % MaxPollErrors
	p.n = min(p.n+1, MaxPollErrors)
}

// newestFirst lists the failures held, newest first.
func (p *pollErrors) newestFirst() []PollError {
	out := make([]PollError, 0, p.n)
	for i := 1; i <= p.n; i++ {
		out = append(out, p.ring[(p.next+MaxPollErrors-i)%MaxPollErrors])
	}
	return out
}

// Tracker records observations per device. Its methods are safe for
// concurrent use.
type Tracker struct {
	mu      sync.RWMutex
	devices map[string]*device
	// unknown are devices whose state is not known now, whatever was last
	// seen (an edge site's devices while its collector is cut off).
	unknown map[string]bool

	probes   *prometheus.CounterVec
	deviceUp *prometheus.GaugeVec
}

// New makes a tracker; reg receives its metrics.
func New(reg prometheus.Registerer) (*Tracker, error) {
	t := &Tracker{
		devices: map[string]*device{},
		unknown: map[string]bool{},
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_probes_total",
			Help: "Probes by kind and result (icmp: up, down, error; snmp: ok or the failure reason)."}, []string{"kind", "result"}),
		deviceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nocbridge_device_up",
			Help: "1 when the device answered its last ICMP round."}, []string{"device"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{t.probes, t.deviceUp} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("device state metrics: %w", err)
			}
		}
	}
	return t, nil
}

// Record notes an ICMP round or SNMP poll; traps change no device state.
func (t *Tracker) Record(o observation.Observation) {
	switch o.Source {
	case observation.ICMP:
		t.recordICMP(o)
	case observation.SNMP:
		t.recordSNMP(o)
	}
}

// deviceLocked is name's record, made on first sight. Hold t.mu.
func (t *Tracker) deviceLocked(name string) *device {
	d := t.devices[name]
	if d == nil {
		d = &device{}
		t.devices[name] = d
	}
	return d
}

func (t *Tracker) recordICMP(o observation.Observation) {
	up, _ := o.Vars["up"].(bool)
	result := "up"
	switch {
	case o.Err != nil:
		result = "error"
	case !up:
		result = "down"
	}
	t.probes.WithLabelValues("icmp", result).Inc()
	gauge := 0.0
	if up {
		gauge = 1
	}
	t.deviceUp.WithLabelValues(o.Device.Name).Set(gauge)

	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.deviceLocked(o.Device.Name)
	d.seen, d.up = true, up
	d.loss, _ = o.Vars["loss"].(float64)
	d.rtt, _ = o.Vars["rtt_ms"].(float64)
	d.lastProbe = o.Time
	d.probeErr = ""
	if o.Err != nil {
		d.probeErr = o.Err.Error()
	}
	if d.series == nil {
		d.series = new(series)
	}
	d.series.add(o.Time, roundOf(o.Vars))
}

func (t *Tracker) recordSNMP(o observation.Observation) {
	result := "ok"
	if o.Err != nil {
		result = o.Reason
	}
	t.probes.WithLabelValues("snmp", result).Inc()

	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.deviceLocked(o.Device.Name)
	d.lastPoll = o.Time
	if o.Err != nil {
		// The last good values stay, with the failure beside them.
		reason := o.Reason
		if reason == "" {
			reason = "error"
		}
		d.snmpState, d.snmpErr = reason, o.Err.Error()
		if d.pollErrs == nil {
			d.pollErrs = new(pollErrors)
		}
		d.pollErrs.add(o.Time, reason, d.snmpErr)
		return
	}
	d.snmpState, d.snmpErr = "ok", ""
	d.values, d.valuesAt = o.Vars, o.Time
}

// SetUnknown marks the devices unknown (true) — their state shows as
// "unknown" whatever was last seen of them, their last values kept — or
// ends that (false). The hub of an edge site marks the site's devices so
// while their collector is cut off: stale ICMP rounds are not a "down".
func (t *Tracker) SetUnknown(names []string, unknown bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		if unknown {
			t.unknown[n] = true
		} else {
			delete(t.unknown, n)
		}
	}
}

// Retain forgets devices no longer in the inventory (after a reload), and
// their nocbridge_device_up series.
func (t *Tracker) Retain(inv *inventory.Inventory) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name := range t.devices {
		if _, ok := inv.Device(name); !ok {
			delete(t.devices, name)
			t.deviceUp.DeleteLabelValues(name)
		}
	}
}

// List is every device of inv with what was last seen of it, by name.
func (t *Tracker) List(inv *inventory.Inventory) []Status {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Status, 0, inv.Len())
	for _, d := range inv.Devices() {
		out = append(out, t.statusLocked(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get is one device of inv with what was last seen of it; false when inv
// has no device of that name.
func (t *Tracker) Get(inv *inventory.Inventory, name string) (Status, bool) {
	d, ok := inv.Device(name)
	if !ok {
		return Status{}, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.statusLocked(d), true
}

// Detail is one device of inv with its last hour of ICMP results, its
// last SNMP values and poll failures; false when inv has no device of that
// name.
func (t *Tracker) Detail(inv *inventory.Inventory, name string) (Detail, bool) {
	dev, ok := inv.Device(name)
	if !ok {
		return Detail{}, false
	}
	now := time.Now()
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := Detail{Status: t.statusLocked(dev), Series: []Point{}, PollErrors: []PollError{}}
	d := t.devices[name]
	if d == nil {
		return out, true
	}
	if d.series != nil {
		out.Series = d.series.points(now)
	}
	if d.values != nil {
		out.SNMP = &SNMPValues{At: d.valuesAt, Values: maps.Clone(d.values)}
	}
	if d.pollErrs != nil {
		out.PollErrors = d.pollErrs.newestFirst()
	}
	return out, true
}

// Series is the device's last hour of ICMP results up to now, one Point
// per minute that had a round, oldest first (see Detail.Series); nil for
// a device never pinged.
func (t *Tracker) Series(device string) []Point {
	now := time.Now()
	t.mu.RLock()
	defer t.mu.RUnlock()
	if d := t.devices[device]; d != nil && d.series != nil {
		return d.series.points(now)
	}
	return nil
}

// statusLocked is the inventory's device dev with what was last seen of
// it. Hold t.mu.
func (t *Tracker) statusLocked(dev *inventory.Device) Status {
	s := Status{Name: dev.Name, Address: dev.Address, Site: dev.Site, Role: dev.Role, Labels: dev.Labels, State: "unknown"}
	d := t.devices[dev.Name]
	if d == nil {
		return s // never seen: unknown
	}
	if d.seen {
		s.State = "down"
		if d.up {
			s.State = "up"
		}
		s.LossPct, s.RTTMs, s.LastProbe, s.Error = d.loss, d.rtt, d.lastProbe, d.probeErr
	}
	s.SNMPState, s.SNMPError, s.LastPoll = d.snmpState, d.snmpErr, d.lastPoll
	s.CPU, s.Mem, s.UptimeS = number(d.values, "cpu"), number(d.values, "mem"), number(d.values, "uptime_s")
	if t.unknown[dev.Name] {
		s.State = "unknown"
	}
	return s
}

// number is vars[key] when it is a number, else nil.
func number(vars map[string]any, key string) *float64 {
	if v, ok := vars[key].(float64); ok {
		return &v
	}
	return nil
}
