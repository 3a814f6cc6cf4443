package vantage

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

var start = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// testInv has core-sw1, pinged every 10 s with a 1 s timeout (a 21 s
// freshness window), and acc-sw7.
func testInv() *inventory.Inventory {
	return inventory.Of(
		inventory.Device{Name: "core-sw1", Address: "192.0.2.1", ICMP: &inventory.ICMP{Interval: 10 * time.Second, Timeout: time.Second, Count: 3}},
		inventory.Device{Name: "acc-sw7", Address: "192.0.2.7", ICMP: &inventory.ICMP{Interval: 10 * time.Second, Timeout: time.Second, Count: 3}},
	)
}

// icmp is a round of dev as a node's prober reports it: up with an RTT
// that names the node (nb2 → 2 ms), or down with 100 % loss and an error.
func icmp(dev *inventory.Device, node string, at time.Time, up bool) observation.Observation {
	o := observation.Observation{Source: observation.ICMP, Device: dev, Time: at}
	if up {
		rtt := float64(node[len(node)-1] - '0')
		o.Vars = map[string]any{"up": true, "loss": 0.0, "rtt_ms": rtt, "rtt_min_ms": rtt, "rtt_max_ms": rtt, "sent": 3, "recv": 3}
	} else {
		o.Vars = map[string]any{"up": false, "loss": 100.0, "rtt_ms": 0.0, "rtt_min_ms": 0.0, "rtt_max_ms": 0.0, "sent": 3, "recv": 0}
		o.Err = fmt.Errorf("no reply from %s", node)
	}
	return o
}

// round is one node's result arriving at the leader, and the `up` the
// rules must then see.
type round struct {
	at   time.Duration // after start
	node string
	up   bool
	want bool
}

// every is rounds every 10 s from 0 for n rounds, each node in order
// reporting what see says of it, the rules seeing want.
func every(n int, nodes []string, see map[string]bool, want bool) []round {
	var out []round
	for i := range n {
		for _, node := range nodes {
			out = append(out, round{at: time.Duration(i) * 10 * time.Second, node: node, up: see[node], want: want})
		}
	}
	return out
}

func then(offset time.Duration, rs []round) []round {
	out := make([]round, len(rs))
	for i, r := range rs {
		r.at += offset
		out[i] = r
	}
	return out
}

func join(parts ...[]round) []round {
	var out []round
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var three = []string{"nb1", "nb2", "nb3"}

func TestObserveVerdict(t *testing.T) {
	allUp := map[string]bool{"nb1": true, "nb2": true, "nb3": true}
	badUplink := map[string]bool{"nb1": true, "nb2": true, "nb3": false}
	tests := []struct {
		name      string
		downWhen  config.DownWhen
		rounds    []round
		overruled map[string]float64 // nocbridge_vantage_overruled_total by node
	}{
		{name: "nb3's uplink bad, all: never down", downWhen: config.DownWhenAll,
			rounds: every(6, three, badUplink, true), overruled: map[string]float64{"nb3": 6}},
		{name: "nb3's uplink bad, majority: never down", downWhen: config.DownWhenMajority,
			rounds: every(6, three, badUplink, true), overruled: map[string]float64{"nb3": 6}},
		{name: "nb3's uplink bad from the start, nb3 first, majority", downWhen: config.DownWhenMajority,
			rounds: join(
				[]round{{0, "nb3", false, false}, {0, "nb1", true, true}, {0, "nb2", true, true}}, // nb3 alone at first: its own result
				then(10*time.Second, every(3, []string{"nb3", "nb1", "nb2"}, badUplink, true))),
			overruled: map[string]float64{"nb3": 3}},
		{name: "real outage, all: down once every fresh node sees it", downWhen: config.DownWhenAll,
			rounds: join(every(2, three, allUp, true), []round{
				{20 * time.Second, "nb1", false, true},
				{20 * time.Second, "nb2", false, true},
				{20 * time.Second, "nb3", false, false},
				{30 * time.Second, "nb1", false, false},
				{30 * time.Second, "nb2", false, false},
				{30 * time.Second, "nb3", false, false},
			}),
			overruled: map[string]float64{"nb1": 1, "nb2": 1}},
		{name: "real outage, majority: down at 2 of 3", downWhen: config.DownWhenMajority,
			rounds: join(every(2, three, allUp, true), []round{
				{20 * time.Second, "nb1", false, true},
				{20 * time.Second, "nb2", false, false},
				{20 * time.Second, "nb3", false, false},
				{30 * time.Second, "nb1", false, false},
			}),
			overruled: map[string]float64{"nb1": 1}},
		{name: "recovery seen by one node first, all: up at once", downWhen: config.DownWhenAll,
			rounds: join(every(2, three, map[string]bool{}, false), []round{
				{20 * time.Second, "nb2", true, true},
				{20 * time.Second, "nb1", false, true},
			}),
			overruled: map[string]float64{"nb1": 1}},
		{name: "recovery, majority: up when no more than half see it down", downWhen: config.DownWhenMajority,
			rounds: join(every(2, three, map[string]bool{}, false), []round{
				{20 * time.Second, "nb2", true, false},
				{20 * time.Second, "nb1", true, true},
			})},
		{name: "nb3 goes silent: counts for 21 s, then not", downWhen: config.DownWhenAll,
			rounds: join(every(1, three, allUp, true), []round{
				{10 * time.Second, "nb1", false, true}, {10 * time.Second, "nb2", false, true},
				{20 * time.Second, "nb1", false, true}, {20 * time.Second, "nb2", false, true}, // nb3's up at 0 is 20 s old: fresh
				{21 * time.Second, "nb1", false, false}, // 21 s: stale
				{30 * time.Second, "nb2", false, false},
			}),
			overruled: map[string]float64{"nb1": 2, "nb2": 2}},
		{name: "nb1 goes silent, majority: 1 of the 2 left is not more than half", downWhen: config.DownWhenMajority,
			rounds: join(every(1, three, allUp, true), []round{
				{10 * time.Second, "nb2", false, true}, {10 * time.Second, "nb3", true, true},
				{30 * time.Second, "nb2", false, true}, {30 * time.Second, "nb3", true, true},
				{40 * time.Second, "nb3", false, false},
			}),
			overruled: map[string]float64{"nb2": 2}},
		{name: "two nodes, all", downWhen: config.DownWhenAll,
			rounds:    []round{{0, "nb1", true, true}, {0, "nb2", false, true}, {10 * time.Second, "nb1", false, false}},
			overruled: map[string]float64{"nb2": 1}},
		{name: "two nodes, majority: one of two is not more than half", downWhen: config.DownWhenMajority,
			rounds: []round{{0, "nb1", true, true}, {0, "nb2", false, true}, {10 * time.Second, "nb2", false, true},
				{10 * time.Second, "nb1", false, false}},
			overruled: map[string]float64{"nb2": 2}},
		{name: "one node, all: its own result", downWhen: config.DownWhenAll,
			rounds: []round{{0, "nb1", true, true}, {10 * time.Second, "nb1", false, false}, {20 * time.Second, "nb1", true, true}}},
		{name: "one node, majority: its own result", downWhen: config.DownWhenMajority,
			rounds: []round{{0, "nb1", false, false}, {10 * time.Second, "nb1", true, true}, {20 * time.Second, "nb1", false, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			s, err := New(Options{DownWhen: tt.downWhen, Now: func() time.Time { return start }, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			dev, _ := testInv().Device("core-sw1")
			for i, r := range tt.rounds {
				in := icmp(dev, r.node, start.Add(r.at), r.up)
				got := s.Observe(r.node, in)
				if err := got.CheckVars(); err != nil {
					t.Fatalf("round %d (%s at %s): %v", i, r.node, r.at, err)
				}
				if up := got.Vars["up"].(bool); up != r.want {
					t.Errorf("round %d: %s says up=%v at %s: rules see up=%v, want %v", i, r.node, r.up, r.at, up, r.want)
				}
				if got.Time != in.Time || got.Device != dev || got.Source != observation.ICMP {
					t.Errorf("round %d: returned %s %v at %s, want the arriving observation's source, device and time", i, got.Source, got.Device, got.Time)
				}
				if r.up == r.want && !reflect.DeepEqual(got, in) {
					t.Errorf("round %d: a result that agrees with the verdict must pass unchanged: %+v, want %+v", i, got, in)
				}
				if up := got.Vars["up"].(bool); up != r.up && ((up && got.Vars["recv"] == 0) || (!up && got.Vars["recv"] != 0) || (up && got.Err != nil)) {
					t.Errorf("round %d: overruled result's vars contradict up=%v: %v err %v", i, up, got.Vars, got.Err)
				}
			}
			for _, node := range three {
				want := tt.overruled[node]
				if got := testutil.ToFloat64(s.overruled.WithLabelValues(node)); got != want {
					t.Errorf("nocbridge_vantage_overruled_total{node=%q} = %v, want %v", node, got, want)
				}
			}
		})
	}
}

// An outvoted result is replaced by the most recent fresh result that
// agrees with the verdict: its loss, RTTs, sent and recv, and no error.
func TestObserveVarsFromAgreeingResult(t *testing.T) {
	s, err := New(Options{DownWhen: config.DownWhenMajority})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := testInv().Device("core-sw1")
	s.Observe("nb1", icmp(dev, "nb1", start, true))
	s.Observe("nb2", icmp(dev, "nb2", start.Add(time.Second), true))
	in := icmp(dev, "nb3", start.Add(2*time.Second), false)
	got := s.Observe("nb3", in)
	want := icmp(dev, "nb2", start.Add(2*time.Second), true) // nb2's vars, the arriving time
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// Under majority a lone up is outvoted by two fresh downs: the most
	// recent down's vars, with its error.
	s.Observe("nb1", icmp(dev, "nb1", start.Add(10*time.Second), false))
	got = s.Observe("nb2", icmp(dev, "nb2", start.Add(11*time.Second), true))
	if got.Vars["up"] != false || got.Vars["recv"] != 0 || got.Err == nil || got.Err.Error() != "no reply from nb1" {
		t.Errorf("lone up outvoted: %+v, want nb1's down round", got)
	}
}

// Other sources, and ICMP observations without `up`, pass through
// untouched and are not recorded.
func TestObservePassesThrough(t *testing.T) {
	s, err := New(Options{DownWhen: config.DownWhenAll})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := testInv().Device("core-sw1")
	for _, o := range []observation.Observation{
		{Source: observation.SNMP, Device: dev, Time: start, Vars: map[string]any{"cpu": 3.0}},
		{Source: observation.Trap, Device: dev, Time: start, Vars: map[string]any{"trap": "linkDown"}},
		{Source: observation.ICMP, Device: dev, Time: start, Err: errors.New("resolve: no such host")},
		{Source: observation.ICMP, Time: start, Vars: map[string]any{"up": false}},
	} {
		if got := s.Observe("nb1", o); !reflect.DeepEqual(got, o) {
			t.Errorf("%s observation changed: %+v, want %+v", o.Source, got, o)
		}
	}
	if r := s.Results("core-sw1"); r != nil {
		t.Errorf("results after non-ICMP observations: %+v", r)
	}
}

// Results, Disagreements and the gauge follow the clock: a node that went
// silent stops counting after the device's window (2 × 10 s + 1 s), and is
// still shown, not fresh. Time is the synctest bubble's.
func TestResultsAndDisagreements(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		s, err := New(Options{DownWhen: config.DownWhenAll, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		inv := testInv()
		core, _ := inv.Device("core-sw1")
		acc, _ := inv.Device("acc-sw7")
		t0 := time.Now()
		s.Observe("nb2", icmp(core, "nb2", t0, true))
		s.Observe("nb1", icmp(core, "nb1", t0, true))
		s.Observe("nb3", icmp(core, "nb3", t0, false))
		for _, node := range three {
			s.Observe(node, icmp(acc, node, t0, true))
		}
		want := []Result{
			{Node: "nb1", Up: true, RTTMs: 1, At: t0, Fresh: true},
			{Node: "nb2", Up: true, RTTMs: 2, At: t0, Fresh: true},
			{Node: "nb3", Up: false, Loss: 100, At: t0, Fresh: true, Error: "no reply from nb3"},
		}
		if got := s.Results("core-sw1"); !reflect.DeepEqual(got, want) {
			t.Errorf("Results:\n got %+v\nwant %+v", got, want)
		}
		if got := s.Results("no-such"); got != nil {
			t.Errorf("Results of an unknown device: %+v", got)
		}
		wantDis := []DeviceResults{{Device: "core-sw1", Up: true, Results: want}}
		if got := s.Disagreements(); !reflect.DeepEqual(got, wantDis) {
			t.Errorf("Disagreements:\n got %+v\nwant %+v", got, wantDis)
		}
		gauge := `
# HELP nocbridge_vantage_disagreements Devices whose nodes' fresh ICMP results disagree now (some up, some down).
# TYPE nocbridge_vantage_disagreements gauge
nocbridge_vantage_disagreements %d
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(gauge, 1)), "nocbridge_vantage_disagreements"); err != nil {
			t.Error(err)
		}
		if st := s.Status(); st.DownWhen != config.DownWhenAll || len(st.Disagreements) != 1 {
			t.Errorf("Status: %+v", st)
		}

		// nb3 goes silent; nb1 and nb2 keep reporting core-sw1 up.
		time.Sleep(20 * time.Second)
		s.Observe("nb1", icmp(core, "nb1", time.Now(), true))
		s.Observe("nb2", icmp(core, "nb2", time.Now(), true))
		if got := s.Disagreements(); len(got) != 1 { // nb3's down is 20 s old: fresh
			t.Errorf("at 20 s: %+v, want nb3 still disagreeing", got)
		}
		time.Sleep(time.Second)
		if got := s.Disagreements(); len(got) != 0 {
			t.Errorf("at 21 s: %+v, want none (nb3's result is stale)", got)
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(gauge, 0)), "nocbridge_vantage_disagreements"); err != nil {
			t.Error(err)
		}
		got := s.Results("core-sw1")
		if len(got) != 3 || got[2].Node != "nb3" || got[2].Fresh || !got[0].Fresh || !got[1].Fresh {
			t.Errorf("at 21 s, Results: %+v, want nb3 shown, not fresh", got)
		}

		// Past forgetAfter windows, a silent node's result is forgotten
		// when the device is next observed.
		time.Sleep(forgetAfter * 21 * time.Second)
		s.Observe("nb1", icmp(core, "nb1", time.Now(), true))
		if got := s.Results("core-sw1"); len(got) != 1 || got[0].Node != "nb1" {
			t.Errorf("after %d windows: %+v, want nb1's alone", forgetAfter, got)
		}
	})
}

// A reload drops the devices it removed, and their nodes' counts.
func TestRetain(t *testing.T) {
	s, err := New(Options{DownWhen: config.DownWhenAll, Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	inv := testInv()
	core, _ := inv.Device("core-sw1")
	acc, _ := inv.Device("acc-sw7")
	for _, d := range []*inventory.Device{core, acc} {
		s.Observe("nb1", icmp(d, "nb1", start, true))
		s.Observe("nb3", icmp(d, "nb3", start, false))
	}
	if n := s.overruledDevices["nb3"]; n != 2 {
		t.Fatalf("nb3 outvoted on %d devices, want 2", n)
	}
	s.Retain(inventory.Of(inventory.Device{Name: "core-sw1", Address: "192.0.2.1"}))
	if r := s.Results("acc-sw7"); r != nil {
		t.Errorf("acc-sw7 after the reload removed it: %+v", r)
	}
	if r := s.Results("core-sw1"); len(r) != 2 {
		t.Errorf("core-sw1 after a reload that kept it: %+v", r)
	}
	if d := s.Disagreements(); len(d) != 1 || d[0].Device != "core-sw1" {
		t.Errorf("Disagreements after the reload: %+v", d)
	}
	if n := s.overruledDevices["nb3"]; n != 1 {
		t.Errorf("nb3 outvoted on %d devices after the reload, want 1", n)
	}
	s.Retain(inventory.Of())
	if len(s.devices) != 0 || len(s.overruledDevices) != 0 {
		t.Errorf("after a reload to no devices: %d devices, overruled %v", len(s.devices), s.overruledDevices)
	}
}

// Registering twice on one registry is an error, not a panic.
func TestNewRegisterError(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Registerer: reg}); err == nil || !strings.Contains(err.Error(), "vantage metrics") {
		t.Errorf("second registration: %v", err)
	}
}

// A cluster's leader acknowledges the bus through Observation.Ack: the
// observation returned carries the arriving one's Ack, never a kept
// result's, whichever result its vars come from.
func TestObserveKeepsTheArrivingAck(t *testing.T) {
	s, err := New(Options{DownWhen: config.DownWhenMajority})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := testInv().Device("core-sw1")
	acked := map[string]int{}
	with := func(o observation.Observation, name string) observation.Observation {
		o.Ack = func() { acked[name]++ }
		return o
	}
	for i, node := range []string{"nb1", "nb2"} {
		if got := s.Observe(node, with(icmp(dev, node, start.Add(time.Duration(i)*time.Second), true), node)); got.Ack != nil {
			got.Ack()
		}
	}
	got := s.Observe("nb3", with(icmp(dev, "nb3", start.Add(2*time.Second), false), "nb3")) // outvoted: nb2's vars
	if got.Ack == nil {
		t.Fatal("the outvoted round lost its Ack")
	}
	got.Ack()
	if acked["nb1"] != 1 || acked["nb2"] != 1 || acked["nb3"] != 1 {
		t.Errorf("acknowledged %v; want each arriving round once, nb2's not again for nb3's", acked)
	}
}
