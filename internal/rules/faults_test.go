package rules

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// Expression errors are counted per rule and logged once a minute per rule.
func TestFaultsCountEveryErrorAndLogFew(t *testing.T) {
	rs, errs := Parse([]byte(`rules:
  - {event_id: NETWORK-DEVICES-2-201, name: Hot, source: snmp, when: temp_c > 70, severity: 2}
  - {event_id: NETWORK-DEVICES-2-202, name: Cold, source: snmp, when: temp_c < 5, severity: 2}
`), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	set := NewSet(rs)
	var log bytes.Buffer
	reg := prometheus.NewRegistry()
	f, err := NewFaults(slog.New(slog.NewTextHandler(&log, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	obs := observation.Observation{Source: observation.SNMP, Device: &inventory.Device{Name: "sw1"}, Vars: map[string]any{"cpu": 5.0}}
	for range 3 {
		_, errs := set.Evaluate(obs) // temp_c missing: both rules fail
		if len(errs) != 2 {
			t.Fatalf("errors %v, want two", errs)
		}
		var ee *EvalError
		if !errors.As(errs[0], &ee) || ee.EventID != "NETWORK-DEVICES-2-201" || ee.Device != "sw1" {
			t.Fatalf("error %v is not the rule's", errs[0])
		}
		f.Evaluation(errs)
	}
	f.Template("NETWORK-DEVICES-2-201", errors.New("boom"))
	want := `
# HELP nocbridge_rule_errors_total Rule expressions that failed on an observation (the rule skipped it), by event id.
# TYPE nocbridge_rule_errors_total counter
nocbridge_rule_errors_total{event_id="NETWORK-DEVICES-2-201"} 3
nocbridge_rule_errors_total{event_id="NETWORK-DEVICES-2-202"} 3
# HELP nocbridge_template_errors_total Rule templates that failed to render (the event went out with a fallback description), by event id.
# TYPE nocbridge_template_errors_total counter
nocbridge_template_errors_total{event_id="NETWORK-DEVICES-2-201"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := strings.Count(log.String(), "rule evaluation failed"); n != 2 {
		t.Errorf("%d evaluation log lines, want one per rule:\n%s", n, log.String())
	}
	if n := strings.Count(log.String(), "rule template failed"); n != 1 {
		t.Errorf("%d template log lines, want 1:\n%s", n, log.String())
	}
}
