package observation

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/inventory"
)

// A full queue never blocks a source: the excess is dropped and counted by
// source, and what was queued is drained in order.
func TestQueueDropsAndCountsWhenFull(t *testing.T) {
	reg := prometheus.NewRegistry()
	q, err := NewQueue(2, reg)
	if err != nil {
		t.Fatal(err)
	}
	dev := &inventory.Device{Name: "sw1"}
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for i := range 3 {
			q.Emit(Observation{Source: Trap, Device: dev, Time: time.Unix(int64(i), 0)})
		}
		q.Emit(Observation{Source: ICMP, Device: dev, Time: time.Unix(9, 0)})
	}()
	select {
	case <-emitted:
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked on a full queue")
	}
	want := `
# HELP nocbridge_observations_dropped_total Observations a source could not hand on because rule evaluation was behind (queue full), by source.
# TYPE nocbridge_observations_dropped_total counter
nocbridge_observations_dropped_total{source="icmp"} 1
nocbridge_observations_dropped_total{source="snmp"} 0
nocbridge_observations_dropped_total{source="trap"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nocbridge_observations_dropped_total"); err != nil {
		t.Error(err)
	}
	q.Close()
	var got []int64
	q.Drain(func(o Observation) { got = append(got, o.Time.Unix()) })
	if len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("drained %v, want the first two in order", got)
	}
}

func TestCheckVars(t *testing.T) {
	icmp := Schema(ICMP)
	cases := []struct {
		name string
		o    Observation
		want string // "" for no error
	}{
		{"icmp as emitted", Observation{Source: ICMP, Vars: icmp}, ""},
		{"icmp loss as int", Observation{Source: ICMP, Vars: map[string]any{"up": true, "loss": 0, "rtt_ms": 0.0, "sent": 1, "recv": 1}}, "loss is int"},
		{"icmp without rtt", Observation{Source: ICMP, Vars: map[string]any{"up": true, "loss": 0.0, "sent": 1, "recv": 1}}, "lacks rtt_ms"},
		{"trap with an extra variable", Observation{Source: Trap, Vars: map[string]any{"trap": "", "trap_oid": "", "vars": map[string]any{}, "source": "", "version": "", "community": ""}}, "community is not in the schema"},
		{"snmp with some values and a custom OID", Observation{Source: SNMP, Vars: map[string]any{"cpu": 5.0, "temp_c": 40.0}}, ""},
		{"snmp cpu as string", Observation{Source: SNMP, Vars: map[string]any{"cpu": "5"}}, "cpu is string"},
		{"unknown source", Observation{Source: "syslog"}, "unknown source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.CheckVars()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckVars: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckVars = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
