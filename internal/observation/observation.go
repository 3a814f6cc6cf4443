// Package observation is what every source reports: one Observation per
// thing seen of one device (an ICMP round, an SNMP poll, a trap), handed on
// through one non-blocking Emit. It imports only the inventory's Device, so
// every source can import it and none imports another's types.
package observation

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/inventory"
)

// Source names where an observation came from; rules name it in `source:`.
type Source string

const (
	ICMP Source = "icmp"
	SNMP Source = "snmp"
	Trap Source = "trap"
	// Site is derived by noise control from the ICMP rounds of a site's
	// devices (SPEC 11.2): one observation per change of a site's state,
	// about the site's own record (inventory.SiteDevice).
	Site Source = "site"
	// Edge is derived by the hub of edge sites (SPEC 9) from its contact
	// with a site's collector: one observation per change, about the
	// site's own record (inventory.SiteDevice).
	Edge Source = "edge"
)

// Sources lists every source, for validation and metric labels.
var Sources = []Source{ICMP, SNMP, Trap, Site, Edge}

// Schema is a sample of the variables a source's observations carry, each
// with a value of its type, so rule expressions are type-checked at load
// (SNMP custom OIDs, named in config, come on top). Each source's tests
// check that what it emits matches.
func Schema(s Source) map[string]any {
	switch s {
	case ICMP:
		return map[string]any{"up": false, "loss": 0.0, "rtt_ms": 0.0, "rtt_min_ms": 0.0, "rtt_max_ms": 0.0, "sent": 0, "recv": 0}
	case SNMP:
		return map[string]any{"cpu": 0.0, "mem": 0.0, "uptime_s": 0.0, "uptime_reset": false}
	case Trap:
		return map[string]any{"trap": "", "trap_oid": "", "vars": map[string]any{}, "source": "", "version": ""}
	case Site:
		return map[string]any{"site": "", "outage": false, "down": 0, "pinged": 0, "ratio": 0.0, "devices": ""}
	case Edge:
		return map[string]any{"site": "", "unreachable": false, "last_contact_s": 0.0, "devices": 0}
	}
	return nil
}

// Observation is what a source saw of one device at one time.
type Observation struct {
	Source Source
	Device *inventory.Device // from the inventory; shared, never modified
	Time   time.Time
	// Vars are the variables rules see (icmp: up, loss, rtt_ms,
	// rtt_min_ms, rtt_max_ms, sent, recv; snmp: cpu, mem, uptime_s,
	// uptime_reset and custom OIDs; trap: trap, trap_oid, vars, source,
	// version; site: site, outage, down, pinged, ratio, devices; edge:
	// site, unreachable, last_contact_s, devices). Nil when
	// nothing was measured (a failed poll): no rule fires or clears on
	// missing data. Shared by every reader once emitted: never modified.
	Vars map[string]any
	// Err is why the probe failed, and Reason its class (snmp: timeout,
	// auth, unreachable, error); an ICMP round with an error still reports
	// the device as not answering.
	Err    error
	Reason string
	// Ack, when set, is called once the observation's alert transitions
	// are committed (stored, or handed to the outbox), or at once when it
	// caused none; never when committing failed. A cluster's leader
	// acknowledges the observation bus with it, so a leader killed before
	// the commit leaves the observation for the next one. Not carried on
	// the wire.
	Ack func()
	// Seq is the observation's sequence on a cluster's observation bus (0
	// outside a cluster): a trap a new leader gets again, which the
	// previous one had applied to an alert, is not applied twice. Not
	// carried on the wire.
	Seq uint64
}

// Emit hands an observation on. It never blocks: what cannot be handed on
// is dropped and counted.
type Emit func(Observation)

// Queue is the bounded hand-over between the sources and rule evaluation.
type Queue struct {
	ch      chan Observation
	dropped *prometheus.CounterVec
}

// NewQueue makes a queue holding up to size observations; reg receives
// nocbridge_observations_dropped_total{source}.
func NewQueue(size int, reg prometheus.Registerer) (*Queue, error) {
	q := &Queue{
		ch: make(chan Observation, size),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nocbridge_observations_dropped_total",
			Help: "Observations a source could not hand on because rule evaluation was behind (queue full), by source.",
		}, []string{"source"}),
	}
	for _, s := range []Source{ICMP, SNMP, Trap} { // the sources that emit into the queue
		q.dropped.WithLabelValues(string(s)) // present at zero, so a rate() works from the start
	}
	if reg != nil {
		if err := reg.Register(q.dropped); err != nil {
			return nil, fmt.Errorf("observation metrics: %w", err)
		}
	}
	return q, nil
}

// Emit queues o, or drops and counts it when the queue is full.
func (q *Queue) Emit(o Observation) {
	select {
	case q.ch <- o:
	default:
		q.dropped.WithLabelValues(string(o.Source)).Inc()
	}
}

// Drain calls handle for every queued observation, in order, until Close
// and the queue is empty. Run it on one goroutine.
func (q *Queue) Drain(handle func(Observation)) {
	for o := range q.ch {
		handle(o)
	}
}

// Len is how many observations wait: a source that can wait (the hub
// replaying an edge site's backlog from its stream) paces itself by it.
func (q *Queue) Len() int { return len(q.ch) }

// Close ends Drain once the queue is empty. Call it after every source has
// stopped emitting.
func (q *Queue) Close() { close(q.ch) }

// CheckVars reports variables whose type differs from Schema, and for ICMP
// and traps (whose observations always carry every variable) the missing
// ones; SNMP carries what the device has, plus custom OIDs. Sources' tests
// use it to keep what they emit and what rules are checked against the same.
func (o Observation) CheckVars() error {
	schema := Schema(o.Source)
	if schema == nil {
		return fmt.Errorf("unknown source %q", o.Source)
	}
	var errs []error
	for name, sample := range schema {
		v, ok := o.Vars[name]
		switch {
		case !ok && o.Source != SNMP:
			errs = append(errs, fmt.Errorf("%s observation lacks %s", o.Source, name))
		case ok && fmt.Sprintf("%T", v) != fmt.Sprintf("%T", sample):
			errs = append(errs, fmt.Errorf("%s observation: %s is %T, rules are checked against %T", o.Source, name, v, sample))
		}
	}
	if o.Source != SNMP {
		for name := range o.Vars {
			if _, ok := schema[name]; !ok {
				errs = append(errs, fmt.Errorf("%s observation: %s is not in the schema rules are checked against", o.Source, name))
			}
		}
	}
	return errors.Join(errs...)
}
