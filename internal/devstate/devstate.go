// Package devstate keeps what was last seen of each device — its last ICMP
// round and SNMP poll, with the failure when there was one — for
// /api/v1/devices, and the per-probe metrics nocbridge_probes_total and
// nocbridge_device_up. It is fed every observation, before rules see them.
package devstate

import (
	"fmt"
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

// Tracker records observations per device. Its methods are safe for
// concurrent use.
type Tracker struct {
	mu     sync.RWMutex
	status map[string]Status

	probes   *prometheus.CounterVec
	deviceUp *prometheus.GaugeVec
}

// New makes a tracker; reg receives its metrics.
func New(reg prometheus.Registerer) (*Tracker, error) {
	t := &Tracker{
		status: map[string]Status{},
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
	s := t.status[o.Device.Name]
	s.LossPct, _ = o.Vars["loss"].(float64)
	s.RTTMs, _ = o.Vars["rtt_ms"].(float64)
	s.LastProbe = o.Time
	s.State = "down"
	if up {
		s.State = "up"
	}
	s.Error = ""
	if o.Err != nil {
		s.Error = o.Err.Error()
	}
	t.status[o.Device.Name] = s
}

func (t *Tracker) recordSNMP(o observation.Observation) {
	result := "ok"
	if o.Err != nil {
		result = o.Reason
	}
	t.probes.WithLabelValues("snmp", result).Inc()

	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.status[o.Device.Name]
	s.LastPoll = o.Time
	s.SNMPState, s.SNMPError = "ok", ""
	if o.Err != nil {
		s.SNMPState, s.SNMPError = o.Reason, o.Err.Error()
		t.status[o.Device.Name] = s
		return // the last good values stay, with the failure beside them
	}
	for key, field := range map[string]**float64{"cpu": &s.CPU, "mem": &s.Mem, "uptime_s": &s.UptimeS} {
		if v, ok := o.Vars[key].(float64); ok {
			*field = &v
		}
	}
	t.status[o.Device.Name] = s
}

// Retain forgets devices no longer in the inventory (after a reload), and
// their nocbridge_device_up series.
func (t *Tracker) Retain(inv *inventory.Inventory) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name := range t.status {
		if _, ok := inv.Device(name); !ok {
			delete(t.status, name)
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
		s := t.status[d.Name]
		s.Name, s.Address, s.Site, s.Role, s.Labels = d.Name, d.Address, d.Site, d.Role, d.Labels
		if s.State == "" {
			s.State = "unknown"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Point is one minute of a device's ICMP results, for the console's chart
// of the last hour: RTT of the replies (0 when none came back) and the loss
// over every echo sent in that minute.
type Point struct {
	At       time.Time `json:"at"` // the minute's start
	RTTMinMs float64   `json:"rtt_min_ms"`
	RTTAvgMs float64   `json:"rtt_avg_ms"`
	RTTMaxMs float64   `json:"rtt_max_ms"`
	LossPct  float64   `json:"loss_pct"`
	Rounds   int       `json:"rounds"` // ICMP rounds that minute
}
