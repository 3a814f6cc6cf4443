package ruletest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
)

// The shipped catalog's tests pass, and every shipped rule (event id and
// source) is expected to notify in at least one of them.
func TestShippedCatalog(t *testing.T) {
	files, err := filepath.Glob("../../rules/tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule tests found (%v)", err)
	}
	var out bytes.Buffer
	if !Run(t.Context(), files, &out) {
		t.Fatalf("shipped rule tests failed:\n%s", out.String())
	}
	covered := map[string]bool{}
	for _, p := range files {
		f, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range f.Tests {
			for _, e := range tt.expect {
				src := ""
				if e.Source != nil {
					src = *e.Source
				}
				covered[e.EventID] = true
				covered[e.EventID+" "+src] = true
			}
		}
	}
	set, err := rules.Load([]string{"../../rules/*.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	bySource := map[string]int{}
	for _, r := range set.Rules {
		bySource[r.EventID]++
	}
	for _, r := range set.Rules {
		// A rule sharing its event id with another (restarts by trap and
		// by SNMP) must be told apart by an expectation's source.
		if !covered[r.EventID] || (bySource[r.EventID] > 1 && !covered[r.EventID+" "+string(r.Source)]) {
			t.Errorf("shipped rule %s (%s, %s:%d) has no test in rules/tests expecting it", r.EventID, r.Source, r.File, r.Line)
		}
	}
	t.Logf("\n%s", out.String())
}

// writeTest writes a test file beside the rule it tests and returns its path.
func writeTest(t *testing.T, test string) string {
	t.Helper()
	dir := t.TempDir()
	rule := `rules:
  - event_id: NETWORK-INTERFACES-2-301
    event_name: Interface down
    name: 'Interface {{ index .Vars "IF-MIB::ifName" }} is down on {{ .Device.Name }}'
    source: trap
    when: trap == "IF-MIB::linkDown"
    key: vars["IF-MIB::ifIndex"]
    resolve_when: trap == "IF-MIB::linkUp"
    severity: 2
    description: '{{ .Device.Name }} {{ index .Vars "IF-MIB::ifName" }} down'
`
	if err := os.WriteFile(filepath.Join(dir, "if.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(p, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const header = `rule_files: [if.yaml]
devices:
  - {name: sw1, address: 10.0.0.1}
tests:
  - name: down and up
    input:
      - {at: 0s, trap: IF-MIB::linkDown, device: sw1, vars: {IF-MIB::ifIndex: 3, IF-MIB::ifName: Gi1/0/3}}
      - {at: 40s, trap: IF-MIB::linkUp, device: sw1, vars: {IF-MIB::ifIndex: 3}}
    expect:
`

// durations in reports ("in 1.2ms") differ from run to run.
var took = regexp.MustCompile(`simulated in [0-9.]+[µnm]?s\)`)

// A mismatch fails the test with a diff that says what differs, times as
// offsets from the start.
func TestMismatchReports(t *testing.T) {
	tests := []struct {
		name, expect, want string
	}{
		{"passes", `      - {at: 0s, event_id: NETWORK-INTERFACES-2-301, device: sw1, key: "3", status: active, description: sw1 Gi1/0/3 down}
      - {at: 40s, event_id: NETWORK-INTERFACES-2-301, device: sw1, key: "3", status: resolved}
`, `ok   T:5 "down and up" (40s simulated in X)
`},
		{"wrong time", `      - {at: 0s, event_id: NETWORK-INTERFACES-2-301, device: sw1, status: active}
      - {at: 30s, event_id: NETWORK-INTERFACES-2-301, device: sw1, status: resolved}
`, `FAIL T:5 "down and up" (40s simulated in X)
  want:
    0s      active   NETWORK-INTERFACES-2-301 sw1 (line 10)
    30s     resolved NETWORK-INTERFACES-2-301 sw1 (line 11)
  got:
    0s      active   NETWORK-INTERFACES-2-301 sw1 key "3"
    40s     resolved NETWORK-INTERFACES-2-301 sw1 key "3"
  differences:
    line 11: resolved NETWORK-INTERFACES-2-301 sw1 came at 40s, want 30s
`},
		{"missing", `      - {at: 0s, event_id: NETWORK-INTERFACES-2-301, device: sw1, status: active}
      - {at: 40s, event_id: NETWORK-INTERFACES-2-301, device: sw1, status: resolved}
      - {at: 1m30s, event_id: NETWORK-INTERFACES-2-301, device: sw1, status: active}
`, `FAIL T:5 "down and up" (40s simulated in X)
  want:
    0s      active   NETWORK-INTERFACES-2-301 sw1 (line 10)
    40s     resolved NETWORK-INTERFACES-2-301 sw1 (line 11)
    1m30s   active   NETWORK-INTERFACES-2-301 sw1 (line 12)
  got:
    0s      active   NETWORK-INTERFACES-2-301 sw1 key "3"
    40s     resolved NETWORK-INTERFACES-2-301 sw1 key "3"
  differences:
    line 12: missing: 1m30s active NETWORK-INTERFACES-2-301 sw1
`},
		{"extra", `      - {at: 0s, event_id: NETWORK-INTERFACES-2-301, device: sw1, status: active}
`, `FAIL T:5 "down and up" (40s simulated in X)
  want:
    0s      active   NETWORK-INTERFACES-2-301 sw1 (line 10)
  got:
    0s      active   NETWORK-INTERFACES-2-301 sw1 key "3"
    40s     resolved NETWORK-INTERFACES-2-301 sw1 key "3"
  differences:
    unexpected: 40s resolved NETWORK-INTERFACES-2-301 sw1 key "3"
`},
		{"fields differ", `      - at: 0s
        event_id: NETWORK-INTERFACES-2-301
        device: sw1
        key: "3"
        status: active
        name: Interface up
        severity: 1
        destinations: [pager]
        details: {Assurance Issue Name: Interface Gi1/0/3 is down on sw1, Assurance Issue Category: Device, Colour: red}
      - {at: 40s, event_id: NETWORK-INTERFACES-2-301, device: sw1, key: "4", status: resolved}
`, `FAIL T:5 "down and up" (40s simulated in X)
  want:
    0s      active   NETWORK-INTERFACES-2-301 sw1 key "3" (line 10)
    40s     resolved NETWORK-INTERFACES-2-301 sw1 key "4" (line 19)
  got:
    0s      active   NETWORK-INTERFACES-2-301 sw1 key "3"
    40s     resolved NETWORK-INTERFACES-2-301 sw1 key "3"
  differences:
    line 10: 0s active NETWORK-INTERFACES-2-301 sw1 key "3": name "Interface down", want "Interface up"
    line 10: 0s active NETWORK-INTERFACES-2-301 sw1 key "3": severity 2, want 1
    line 10: 0s active NETWORK-INTERFACES-2-301 sw1 key "3": destinations [test], want [pager]
    line 10: 0s active NETWORK-INTERFACES-2-301 sw1 key "3": details["Assurance Issue Category"] "Other", want "Device"
    line 10: 0s active NETWORK-INTERFACES-2-301 sw1 key "3": details["Colour"] absent, want "red"
    line 19: missing: 40s resolved NETWORK-INTERFACES-2-301 sw1 key "4"
    unexpected: 40s resolved NETWORK-INTERFACES-2-301 sw1 key "3"
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTest(t, header+tt.expect)
			var out bytes.Buffer
			ok := Run(t.Context(), []string{p}, &out)
			got := took.ReplaceAllString(strings.ReplaceAll(out.String(), p, "T"), "simulated in X)")
			if got != tt.want {
				t.Errorf("report:\n%s\nwant:\n%s", got, tt.want)
			}
			if ok != (tt.name == "passes") {
				t.Errorf("Run = %v", ok)
			}
		})
	}
}

// A test file is read strictly: every unknown key and bad value, and every
// input or expectation that cannot be, at its FILE:LINE, all at once.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown keys and bad values", `rule_files: [if.yaml]
devices:
  - {name: sw1, address: 10.0.0.1}
tests:
  - name: x
    inputs: []
    input:
      - {at: soon, trap: IF-MIB::linkDown, device: sw1}
    expect:
      - {at: 0s, event_id: NETWORK-INTERFACES-2-301, device: sw1, status: active, colour: red, severity: high}
`, []string{
			`T:6: unknown key "inputs" in test "x" (known: expect, input, name, silences, until)`,
			`T:8: test "x" input[0]: at: invalid duration: want a Go duration such as 500ms, 10s or 5m`,
			`T:10: unknown key "colour" in test "x" expect[0] (known: at, category, description, destinations, details, device, domain, event_id, key, name, severity, source, status, sub_domain)`,
			`T:10: test "x" expect[0]: severity must be an integer, not a string`,
		}},
		{"inputs and expectations that cannot be", `rule_files: [if.yaml]
devices:
  - {name: sw1, address: 10.0.0.1}
tests:
  - name: x
    input:
      - {at: 0s, trap: IF-MIB::linkDwn, device: sw1}
      - {at: 0s, device: sw9, icmp: {loss: 100}}
      - {at: 0s, device: sw1, icmp: {loss: 100}, snmp: {cpu: 3}}
      - {at: 0s, every: 10s, device: sw1, icmp: {loss: 0}}
      - {at: 0s, device: sw1, icmp: {loss: 150}}
      - {at: 0s, trap: IF-MIB::linkUp, device: sw1, vars: {IF-MIB::ifIndx: 3}}
    expect:
      - {at: 0s, event_id: NETWORK-DEVICES-1-101, device: sw1, status: firing}
      - {at: 0s, status: active}
`, []string{
			`T:7: input: trap "IF-MIB::linkDwn": not a name nocbridge knows (write its numeric OID, or name it in the config's traps.mib)`,
			`T:8: input: unknown device "sw9" (not in devices or the config)`,
			`T:9: input: give exactly one of trap, icmp, snmp or edge`,
			`T:10: input: every needs until, at or after at`,
			`T:11: input: icmp loss is a percentage, 0 to 100`,
			`T:12: input: var "IF-MIB::ifIndx": not a name nocbridge knows (write its numeric OID, or name it in the config's traps.mib)`,
			`T:14: expect: event_id NETWORK-DEVICES-1-101 is not a rule of rule_files`,
			`T:14: expect: status must be active or resolved`,
			`T:15: expect: event_id is required`,
			`T:15: expect: device is required`,
		}},
		{"a parent that is not a device", "rule_files: [if.yaml]\ndevices:\n  - {name: sw1, parents: [core9]}\ntests: [{name: x, expect: []}]\n", []string{
			`T:3: device "sw1": parent "core9" is not a device (here or in the config)`,
			`T:4: test "x" has neither input nor expect`,
		}},
		{"no rules, no tests", "devices: []\n", []string{
			`T:1: rule_files is required: the rule files under test, relative to this file`,
			`T:1: tests is required: a list of tests, each with input and expect`,
		}},
		{"a rule file that is not there", "rule_files: [missing.yaml]\ntests: [{name: x, input: [], expect: []}]\n", []string{
			`DIR/missing.yaml: rules glob matches no file`,
			`T:2: test "x" has neither input nor expect`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTest(t, tt.file)
			_, err := Load(p)
			if err == nil {
				t.Fatal("loaded")
			}
			msg := strings.ReplaceAll(err.Error(), p, "T")
			got := strings.Split(strings.ReplaceAll(msg, filepath.Dir(p), "DIR"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// A day of ten-second rounds for a site of devices, with outages, runs on
// the simulated clock in well under a second.
func TestSimulatedDayIsFast(t *testing.T) {
	p, err := filepath.Abs("../../rules/network-devices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file := `rule_files: [` + p + `]
devices:
  - {name: a, address: 10.0.0.1, site: S}
  - {name: b, address: 10.0.0.2, site: S}
tests:
  - name: a day
    input:
      - {at: 0s, every: 10s, until: 11h59m50s, device: a, icmp: {loss: 0, rtt_ms: 1}}
      - {at: 12h1m10s, every: 10s, until: 24h, device: a, icmp: {loss: 0, rtt_ms: 1}}
      - {at: 0s, every: 1m, until: 24h, device: b, snmp: {cpu: 10, uptime_s: 1000}}
      - {at: 5s, every: 1h, until: 24h, device: b, icmp: {loss: 100}}
      - {at: 15s, every: 1h, until: 24h, device: b, icmp: {loss: 0, rtt_ms: 2}}
      - {at: 12h, every: 10s, until: 12h1m, device: a, icmp: {loss: 100}}
    expect:
      - {at: 12h20s, event_id: NETWORK-DEVICES-1-101, device: a, status: active}
      - {at: 12h1m20s, event_id: NETWORK-DEVICES-1-101, device: a, status: resolved}
`
	path := writeTest(t, file)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// The best of three runs: the machine may be busy with other tests.
	took := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		report, ok, err := f.Check(context.Background(), f.Tests[0])
		took = min(took, time.Since(start))
		if err != nil || !ok {
			t.Fatalf("%v\n%s", err, report)
		}
	}
	t.Logf("%d inputs over 24h simulated in %s (best of 3)", len(f.Tests[0].inputs), took)
	if took > time.Second {
		t.Errorf("a simulated day took %s, want well under a second", took)
	}
}

func TestOffset(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {40 * time.Second, "40s"}, {5 * time.Minute, "5m"}, {80 * time.Minute, "1h20m"},
		{12*time.Hour + 20*time.Second, "12h20s"}, {150500 * time.Millisecond, "2m30.5s"}, {time.Millisecond, "0.001s"},
	}
	for _, tt := range tests {
		if got := offset(tt.d); got != tt.want {
			t.Errorf("offset(%s) = %q, want %q", tt.d, got, tt.want)
		}
		if back, err := time.ParseDuration(tt.want); err != nil || back != tt.d {
			t.Errorf("%q reads back as %s (%v)", tt.want, back, err)
		}
	}
}

// An ICMP sample becomes the round the engine would report for the
// device's count of echoes: some loss means some lost and, below 100, some
// answered.
func TestICMPVars(t *testing.T) {
	rtt := 2.5
	tests := []struct {
		count       int
		loss        float64
		recv        int
		up          bool
		rtt, lo, hi float64
	}{
		{1, 0, 1, true, 2.5, 2.5, 2.5},
		{1, 100, 0, false, 0, 0, 0},
		{1, 50, 1, true, 2.5, 2.5, 2.5},
		{3, 33.3, 2, true, 2.5, 2.5, 2.5},
		{3, 1, 2, true, 2.5, 2.5, 2.5},
		{3, 99, 1, true, 2.5, 2.5, 2.5},
	}
	for _, tt := range tests {
		d := &inventory.Device{Name: "sw1", ICMP: &inventory.ICMP{Count: tt.count}}
		v := icmpVars(icmpYAML{Loss: tt.loss, RTTms: &rtt}, d)
		want := map[string]any{"up": tt.up, "loss": tt.loss, "rtt_ms": tt.rtt, "rtt_min_ms": tt.lo, "rtt_max_ms": tt.hi, "sent": tt.count, "recv": tt.recv}
		if !maps.Equal(v, want) {
			t.Errorf("count %d loss %v: %v, want %v", tt.count, tt.loss, v, want)
		}
	}
	// The same keys and types as the engine's rounds.
	v := icmpVars(icmpYAML{}, &inventory.Device{Name: "sw1"})
	for k, sample := range observation.Schema(observation.ICMP) {
		if fmt.Sprintf("%T", v[k]) != fmt.Sprintf("%T", sample) {
			t.Errorf("%s is %T, want %T", k, v[k], sample)
		}
	}
}
