package trap

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of nocbridge_traps_dropped_total{reason}.
const (
	ReasonMalformed     = "malformed"
	ReasonCommunity     = "community"
	ReasonAuth          = "auth"
	ReasonUnknownSource = "unknown_source"
	// ReasonUnknownLimit: from an unknown sender while
	// traps.max_unknown_sources others are tracked.
	ReasonUnknownLimit = "unknown_source_limit"
	ReasonRateLimit    = "rate_limit"
	ReasonPanic        = "panic"
	// ReasonDiscovery counts answered SNMPv3 engine discovery probes (sent
	// before v3 informs): not traps, and not failures either.
	ReasonDiscovery = "discovery"
)

var (
	versions = [...]string{Version1, Version2c, Version3}
	reasons  = [...]string{ReasonMalformed, ReasonCommunity, ReasonAuth, ReasonUnknownSource, ReasonUnknownLimit, ReasonRateLimit, ReasonPanic, ReasonDiscovery}
)

// counters count every datagram exactly once: as received (by version) or
// dropped (by reason). Plain atomics keep the hot path free of label
// lookups; the collector exposes them to Prometheus.
type counters struct {
	received [len(versions)]atomic.Uint64
	dropped  [len(reasons)]atomic.Uint64
}

func versionIndex(v string) int {
	for i, s := range versions {
		if s == v {
			return i
		}
	}
	panic("trap: unknown version " + v)
}

func reasonIndex(r string) int {
	for i, s := range reasons {
		if s == r {
			return i
		}
	}
	panic("trap: unknown drop reason " + r)
}

// Stats is a snapshot of the counters.
type Stats struct {
	Received map[string]uint64 // by version
	Dropped  map[string]uint64 // by reason
}

// Total is every datagram counted.
func (s Stats) Total() uint64 {
	var n uint64
	for _, v := range s.Received {
		n += v
	}
	for _, v := range s.Dropped {
		n += v
	}
	return n
}

func (c *counters) snapshot() Stats {
	s := Stats{Received: map[string]uint64{}, Dropped: map[string]uint64{}}
	for i, v := range versions {
		s.Received[v] = c.received[i].Load()
	}
	for i, r := range reasons {
		s.Dropped[r] = c.dropped[i].Load()
	}
	return s
}

var (
	receivedDesc = prometheus.NewDesc("nocbridge_traps_received_total",
		"SNMP notifications accepted for rule evaluation, by SNMP version.", []string{"version"}, nil)
	droppedDesc = prometheus.NewDesc("nocbridge_traps_dropped_total",
		"Datagrams refused by the trap receiver, by reason.", []string{"reason"}, nil)
	unknownDesc = prometheus.NewDesc("nocbridge_traps_unknown_sources",
		"Unknown trap senders tracked now (traps.unknown_sources: accept), at most traps.max_unknown_sources.", nil, nil)
)

type collector struct{ r *Receiver }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- receivedDesc
	ch <- droppedDesc
	ch <- unknownDesc
}

func (k collector) Collect(ch chan<- prometheus.Metric) {
	c := &k.r.counts
	for i, v := range versions {
		ch <- prometheus.MustNewConstMetric(receivedDesc, prometheus.CounterValue, float64(c.received[i].Load()), v)
	}
	for i, r := range reasons {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(c.dropped[i].Load()), r)
	}
	ch <- prometheus.MustNewConstMetric(unknownDesc, prometheus.GaugeValue, float64(k.r.unknown.tracked(time.Now(), k.r.policy.Load().expire)))
}

func register(reg prometheus.Registerer, c collector) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return fmt.Errorf("trap metrics already registered: one receiver per registry")
		}
		return fmt.Errorf("registering trap metrics: %w", err)
	}
	return nil
}
