package devstate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

func TestRecordAndList(t *testing.T) {
	reg := prometheus.NewRegistry()
	tr, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.Of(
		inventory.Device{Name: "sw2", Address: "192.0.2.2", Site: "HQ"},
		inventory.Device{Name: "sw1", Address: "192.0.2.1", Site: "HQ", Labels: map[string]string{"vendor": "cisco"}},
		inventory.Device{Name: "sw3", Address: "192.0.2.3"},
	)
	sw1, _ := inv.Device("sw1")
	sw2, _ := inv.Device("sw2")
	at := time.Unix(1_700_000_000, 0)
	tr.Record(observation.Observation{Source: observation.ICMP, Device: sw1, Time: at,
		Vars: map[string]any{"up": true, "loss": 0.0, "rtt_ms": 1.5, "sent": 1, "recv": 1}})
	tr.Record(observation.Observation{Source: observation.SNMP, Device: sw1, Time: at, Vars: map[string]any{"cpu": 42.0, "uptime_s": 100.0}})
	// A failed poll keeps the last good values beside the failure.
	tr.Record(observation.Observation{Source: observation.SNMP, Device: sw1, Time: at.Add(time.Minute), Err: errors.New("no answer"), Reason: "timeout"})
	tr.Record(observation.Observation{Source: observation.ICMP, Device: sw2, Time: at, Err: errors.New("resolve failed"),
		Vars: map[string]any{"up": false, "loss": 100.0, "rtt_ms": 0.0, "sent": 0, "recv": 0}})
	tr.Record(observation.Observation{Source: observation.Trap, Device: sw2, Time: at, Vars: map[string]any{"trap": "x"}})

	list := tr.List(inv)
	if len(list) != 3 || list[0].Name != "sw1" || list[1].Name != "sw2" || list[2].Name != "sw3" {
		t.Fatalf("list %+v, want sw1, sw2, sw3 by name", list)
	}
	s1 := list[0]
	if s1.State != "up" || s1.RTTMs != 1.5 || s1.Labels["vendor"] != "cisco" || s1.SNMPState != "timeout" || s1.SNMPError != "no answer" ||
		s1.CPU == nil || *s1.CPU != 42 || s1.UptimeS == nil || s1.Mem != nil || !s1.LastPoll.Equal(at.Add(time.Minute)) {
		t.Errorf("sw1 %+v", s1)
	}
	if s2 := list[1]; s2.State != "down" || s2.LossPct != 100 || s2.Error != "resolve failed" {
		t.Errorf("sw2 %+v", s2)
	}
	if s3 := list[2]; s3.State != "unknown" {
		t.Errorf("sw3 never probed: state %q, want unknown", s3.State)
	}
	want := `
# HELP nocbridge_device_up 1 when the device answered its last ICMP round.
# TYPE nocbridge_device_up gauge
nocbridge_device_up{device="sw1"} 1
nocbridge_device_up{device="sw2"} 0
# HELP nocbridge_probes_total Probes by kind and result (icmp: up, down, error; snmp: ok or the failure reason).
# TYPE nocbridge_probes_total counter
nocbridge_probes_total{kind="icmp",result="error"} 1
nocbridge_probes_total{kind="icmp",result="up"} 1
nocbridge_probes_total{kind="snmp",result="ok"} 1
nocbridge_probes_total{kind="snmp",result="timeout"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A reload that removes sw2 forgets it and its gauge.
	tr.Retain(inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1"}))
	if n := testutil.CollectAndCount(reg, "nocbridge_device_up"); n != 1 {
		t.Errorf("%d nocbridge_device_up series after sw2 was removed, want 1", n)
	}
}

func TestSetUnknown(t *testing.T) {
	tr, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.Of(inventory.Device{Name: "br-sw1", Address: "192.0.2.1", Site: "BR1"},
		inventory.Device{Name: "br-sw2", Address: "192.0.2.2", Site: "BR1"})
	for _, name := range []string{"br-sw1", "br-sw2"} {
		d, _ := inv.Device(name)
		tr.Record(observation.Observation{Source: observation.ICMP, Device: d, Time: time.Unix(1_700_000_000, 0),
			Vars: map[string]any{"up": name == "br-sw1", "loss": 0.0, "rtt_ms": 2.0, "sent": 1, "recv": 1}})
	}
	states := func() string {
		var s []string
		for _, st := range tr.List(inv) {
			s = append(s, st.Name+"="+st.State)
		}
		return strings.Join(s, " ")
	}
	if got := states(); got != "br-sw1=up br-sw2=down" {
		t.Fatalf("before: %s", got)
	}
	tr.SetUnknown([]string{"br-sw1", "br-sw2"}, true)
	if got := states(); got != "br-sw1=unknown br-sw2=unknown" {
		t.Errorf("marked unknown: %s, want both unknown (not down)", got)
	}
	if d, _ := tr.Get(inv, "br-sw1"); d.RTTMs != 2 {
		t.Errorf("marked unknown: last RTT %v, want the last seen kept (2)", d.RTTMs)
	}
	tr.SetUnknown([]string{"br-sw1", "br-sw2"}, false)
	if got := states(); got != "br-sw1=up br-sw2=down" {
		t.Errorf("unmarked: %s, want the last seen states back", got)
	}
}
