package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/lograte"
)

// Faults counts what rules fail at while running, by event id: expression
// errors in nocbridge_rule_errors_total and template errors (the event went
// out with Render's fallback) in nocbridge_template_errors_total. It logs
// each rule's at most once a minute, with how many it left out, so a rule
// failing on every trap of a storm cannot flood the journal.
type Faults struct {
	log      *slog.Logger
	logs     *lograte.Limiter // by kind and event id
	exprErrs *prometheus.CounterVec
	tmplErrs *prometheus.CounterVec
}

// NewFaults registers the counters with reg (none when nil).
func NewFaults(log *slog.Logger, reg prometheus.Registerer) (*Faults, error) {
	if log == nil {
		log = slog.Default()
	}
	f := &Faults{
		log: log, logs: lograte.New(time.Minute),
		exprErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_rule_errors_total",
			Help: "Rule expressions that failed on an observation (the rule skipped it), by event id."}, []string{"event_id"}),
		tmplErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_template_errors_total",
			Help: "Rule templates that failed to render (the event went out with a fallback description), by event id."}, []string{"event_id"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{f.exprErrs, f.tmplErrs} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("rule metrics: %w", err)
			}
		}
	}
	return f, nil
}

// Evaluation counts and logs the errors Set.Evaluate returned.
func (f *Faults) Evaluation(errs []error) {
	for _, err := range errs {
		var ee *EvalError
		id := ""
		if errors.As(err, &ee) {
			id = ee.EventID
		}
		f.exprErrs.WithLabelValues(id).Inc()
		f.logs.Log(f.log, slog.LevelWarn, "expr\x00"+id, "rule evaluation failed: the rule skipped this observation", "event_id", id, "err", err)
	}
}

// Template counts and logs a failed render of rule eventID (Rule.Render's
// error).
func (f *Faults) Template(eventID string, err error) {
	f.tmplErrs.WithLabelValues(eventID).Inc()
	f.logs.Log(f.log, slog.LevelWarn, "tmpl\x00"+eventID, "rule template failed: the event went out with a fallback description", "event_id", eventID, "err", err)
}
