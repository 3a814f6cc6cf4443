// Package tally counts things dropped or held back by reason, once, for
// both Prometheus and the API: a counter vector whose values can also be
// read back as a map, so a status page shows what the metric counts.
package tally

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons is a counter vector over a fixed set of reasons (one label).
type Reasons struct {
	vec *prometheus.CounterVec
	n   map[string]*atomic.Uint64
}

// New makes the counter name, labelled label, with every reason at 0.
func New(name, help, label string, reasons ...string) *Reasons {
	r := &Reasons{vec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label}),
		n: make(map[string]*atomic.Uint64, len(reasons))}
	for _, reason := range reasons {
		r.vec.WithLabelValues(reason)
		r.n[reason] = &atomic.Uint64{}
	}
	return r
}

// Inc counts one for reason, which must be one of New's.
func (r *Reasons) Inc(reason string) {
	r.vec.WithLabelValues(reason).Inc()
	r.n[reason].Add(1)
}

// Counts are the counts by reason.
func (r *Reasons) Counts() map[string]uint64 {
	out := make(map[string]uint64, len(r.n))
	for reason, n := range r.n {
		out[reason] = n.Load()
	}
	return out
}

// Collector is what to register.
func (r *Reasons) Collector() prometheus.Collector { return r.vec }
