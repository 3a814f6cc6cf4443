// Package ruletest runs rule unit tests (SPEC 13.1, `nocbridge test
// rules`): a test file names rule files, an inventory and timed inputs
// (traps, ICMP rounds, SNMP polls), and the notifications that must come
// out. The inputs go through the real rule engine, alert manager and noise
// gate on a simulated clock, so hours of simulated time take milliseconds
// and the result is the same on every run.
//
// Files: file.go reads a test file strictly; sim.go runs one test;
// diff.go compares what came out with what was expected and says how they
// differ.
package ruletest

import (
	"fmt"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/snmp/mib"
	"github.com/nocbridge/nocbridge/internal/trap"
)

// DefaultStart is when simulated time starts unless a file sets `start`:
// a Monday at midnight UTC, so maintenance windows read simply.
var DefaultStart = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC)

// fileYAML is a test file as written.
type fileYAML struct {
	RuleFiles []string        `yaml:"rule_files"`
	Config    string          `yaml:"config"`
	Devices   []config.Device `yaml:"devices"`
	Start     string          `yaml:"start"`
	Tests     []testYAML      `yaml:"tests"`
}

type testYAML struct {
	Name string `yaml:"name"`
	// Until ends the simulation; default: an hour past the last input or
	// expectation, so what those leave pending or clearing still shows.
	Until    config.Duration `yaml:"until"`
	Silences []silenceYAML   `yaml:"silences"`
	Input    []inputYAML     `yaml:"input"`
	Expect   []expectYAML    `yaml:"expect"`
}

type silenceYAML struct {
	Match   config.Match    `yaml:"match"`
	At      config.Duration `yaml:"at"`
	Until   config.Duration `yaml:"until"`
	Comment string          `yaml:"comment"`
}

type inputYAML struct {
	At     config.Duration  `yaml:"at"`
	Every  config.Duration  `yaml:"every"`
	Until  *config.Duration `yaml:"until"`
	Device string           `yaml:"device"`
	Trap   string           `yaml:"trap"`
	Vars   map[string]any   `yaml:"vars"`
	ICMP   *icmpYAML        `yaml:"icmp"`
	SNMP   map[string]any   `yaml:"snmp"`
	// Edge is what the hub of an edge site reports of its collector
	// (SPEC 9); device then names the site.
	Edge *edgeYAML `yaml:"edge"`
}

type edgeYAML struct {
	Unreachable  bool    `yaml:"unreachable"`
	LastContactS float64 `yaml:"last_contact_s"`
}

type icmpYAML struct {
	Loss     float64  `yaml:"loss"`
	RTTms    *float64 `yaml:"rtt_ms"`
	RTTMinms *float64 `yaml:"rtt_min_ms"`
	RTTMaxms *float64 `yaml:"rtt_max_ms"`
}

// expectYAML is one notification that must be sent. Event id, device and
// status say which; key, when given, must match too; the payload fields,
// when given, must equal the DNA Center payload's.
type expectYAML struct {
	At          config.Duration   `yaml:"at"`
	EventID     string            `yaml:"event_id"`
	Device      string            `yaml:"device"`
	Key         *string           `yaml:"key"`
	Status      string            `yaml:"status"`
	Name        *string           `yaml:"name"`
	Description *string           `yaml:"description"`
	Category    *string           `yaml:"category"`
	Domain      *string           `yaml:"domain"`
	SubDomain   *string           `yaml:"sub_domain"`
	Source      *string           `yaml:"source"`
	Severity    *int              `yaml:"severity"`
	Details     map[string]string `yaml:"details"`
	// Destinations, when given, are where routing sent it (the config's
	// subscriptions; without a config every notification goes to "test").
	Destinations []string `yaml:"destinations"`
}

// File is a loaded test file, ready to run.
type File struct {
	Path  string
	Tests []*Test

	cfg        *config.Config
	configured bool // cfg came from a file: its subscriptions route
	rules      *rules.Set
	inv        *inventory.Inventory
	names      *mib.Table
	start      time.Time
}

// Test is one test of a file.
type Test struct {
	Name   string
	Line   int
	until  time.Duration // 0: the default
	inputs []input       // expanded, in time order
	expect []expected
	silent []silenceYAML
}

// input is one observation to make at a time.
type input struct {
	at     time.Duration
	line   int
	device *inventory.Device
	kind   string // "trap", "icmp", "snmp" or "edge"
	vars   map[string]any
}

type expected struct {
	expectYAML
	line int
}

// Load reads and checks a test file: the file strictly (every unknown key
// and bad value at its FILE:LINE), the rule files it names (relative to
// it), its config and devices, and each input and expectation. Problems
// come back all at once as config.Errors.
func Load(path string) (*File, error) {
	data, err := config.ReadFile(path, config.MaxConfigFile)
	if err != nil {
		return nil, config.Errors{{File: path, Msg: fmt.Sprintf("cannot read the test file: %v", err)}}
	}
	strict := config.Strict{File: path, Name: "a rule test file"}
	root, errs := strict.Parse(data)
	if len(errs) > 0 {
		return nil, errs
	}
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, config.Errors{{File: path, Line: 1, Msg: "a rule test file must be a mapping with rule_files and tests"}}
	}
	var fy fileYAML
	errs = strict.Decode(root, &fy)
	if len(errs) > 0 {
		return nil, errs.Sorted()
	}
	l := &loader{path: path, root: root}
	f := l.file(fy)
	if err := l.errs.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

type loader struct {
	path string
	root *yaml.Node
	errs config.Errors
}

func (l *loader) bad(line int, format string, args ...any) {
	l.errs = append(l.errs, config.Error{File: l.path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// line is the line of the node at path (string keys, int indexes), or of
// the deepest step that exists.
func (l *loader) line(path ...any) int {
	n, line := l.root, l.root.Line
	for _, step := range path {
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == s {
						next = n.Content[i+1]
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
			}
		}
		if next == nil {
			return line
		}
		n, line = next, next.Line
	}
	return line
}

func (l *loader) file(fy fileYAML) *File {
	dir := filepath.Dir(l.path)
	f := &File{Path: l.path, start: DefaultStart}
	if fy.Start != "" {
		t, err := time.Parse(time.RFC3339, fy.Start)
		if err != nil {
			l.bad(l.line("start"), "start: want an RFC 3339 time such as 2026-01-05T00:00:00Z")
		}
		f.start = t
	}
	// The config: noise settings, devices, maintenance, trap names.
	f.cfg = config.Defaults()
	if fy.Config != "" {
		cfg, err := config.Load(relativeTo(dir, fy.Config))
		if err != nil {
			l.errs = append(l.errs, config.AsErrors(err, l.path)...)
			return f
		}
		f.cfg, f.configured = cfg, true
	}
	names := map[string]bool{}
	for _, d := range f.cfg.Devices {
		names[d.Name] = true
	}
	for i, d := range fy.Devices {
		switch {
		case d.Name == "":
			l.bad(l.line("devices", i), "devices[%d] has no name", i)
		case names[d.Name]:
			l.bad(l.line("devices", i), "device %q is listed twice (here or in the config)", d.Name)
		}
		names[d.Name] = true
		d.Line = l.line("devices", i)
		f.cfg.Devices = append(f.cfg.Devices, d)
	}
	for i, d := range fy.Devices {
		for _, p := range d.Parents {
			if !names[p] {
				l.bad(l.line("devices", i), "device %q: parent %q is not a device (here or in the config)", d.Name, p)
			}
		}
	}
	f.inv = inventory.New(f.cfg)
	opts, err := trap.OptionsFrom(f.cfg)
	if err != nil {
		l.bad(l.line("config"), "%v", err)
	}
	f.names = opts.Names
	if f.names == nil {
		f.names = mib.Default
	}
	// The rules, relative to the test file.
	if len(fy.RuleFiles) == 0 {
		l.bad(l.root.Line, "rule_files is required: the rule files under test, relative to this file")
	}
	globs := make([]string, len(fy.RuleFiles))
	for i, p := range fy.RuleFiles {
		globs[i] = relativeTo(dir, p)
	}
	if len(globs) > 0 {
		set, err := rules.Load(globs)
		if err != nil {
			l.errs = append(l.errs, config.AsErrors(err, l.path)...)
		} else {
			l.errs = append(l.errs, set.CheckTemplates(f.inv)...)
			f.rules = set
		}
	}
	if len(fy.Tests) == 0 {
		l.bad(l.root.Line, "tests is required: a list of tests, each with input and expect")
	}
	for i, ty := range fy.Tests {
		f.Tests = append(f.Tests, l.test(f, ty, i))
	}
	return f
}

func (l *loader) test(f *File, ty testYAML, i int) *Test {
	t := &Test{Name: ty.Name, Line: l.line("tests", i), until: ty.Until.D(), silent: ty.Silences}
	if t.Name == "" {
		l.bad(t.Line, "tests[%d] has no name", i)
	}
	for j, s := range ty.Silences {
		line := l.line("tests", i, "silences", j)
		if s.Match.Empty() {
			l.bad(line, "silence: match is empty, which would mute every alert; name devices, sites, roles, labels or event_ids")
		}
		if s.Until <= s.At {
			l.bad(line, "silence: until must come after at")
		}
	}
	for j, in := range ty.Input {
		t.inputs = append(t.inputs, l.input(f, in, l.line("tests", i, "input", j))...)
	}
	sortInputs(t.inputs)
	if len(ty.Expect) == 0 && len(ty.Input) == 0 {
		l.bad(t.Line, "test %q has neither input nor expect", t.Name)
	}
	for j, e := range ty.Expect {
		line := l.line("tests", i, "expect", j)
		switch {
		case e.EventID == "":
			l.bad(line, "expect: event_id is required")
		case f.rules != nil && f.rules.ByEventID(e.EventID) == nil:
			l.bad(line, "expect: event_id %s is not a rule of rule_files", e.EventID)
		}
		if e.Device == "" {
			l.bad(line, "expect: device is required")
		}
		if e.Status != "active" && e.Status != "resolved" {
			l.bad(line, "expect: status must be active or resolved")
		}
		t.expect = append(t.expect, expected{expectYAML: e, line: line})
	}
	return t
}

// maxInputs bounds what one input line expands to (every 1s for a year
// would otherwise take the machine).
const maxInputs = 1_000_000

func (l *loader) input(f *File, in inputYAML, line int) []input {
	kinds := 0
	kind := ""
	if in.Trap != "" {
		kinds++
		kind = "trap"
	}
	if in.ICMP != nil {
		kinds++
		kind = "icmp"
	}
	if in.SNMP != nil {
		kinds++
		kind = "snmp"
	}
	if in.Edge != nil {
		kinds++
		kind = "edge"
	}
	if kinds != 1 {
		l.bad(line, "input: give exactly one of trap, icmp, snmp or edge")
		return nil
	}
	if in.Vars != nil && kind != "trap" {
		l.bad(line, "input: vars go with a trap")
	}
	d, ok := f.inv.Device(in.Device)
	if kind == "edge" {
		if d, ok = f.inv.SiteDevice(in.Device); !ok {
			l.bad(line, "input: edge: device %q is not a site of devices (an edge input is about a site)", in.Device)
			return nil
		}
	}
	if !ok {
		if in.Device == "" {
			l.bad(line, "input: device is required")
		} else {
			l.bad(line, "input: unknown device %q (not in devices or the config)", in.Device)
		}
		return nil
	}
	var vars map[string]any
	switch kind {
	case "trap":
		v, err := trapVars(f.names, in.Trap, in.Vars, d)
		if err != nil {
			l.bad(line, "input: %v", err)
			return nil
		}
		vars = v
	case "icmp":
		if in.ICMP.Loss < 0 || in.ICMP.Loss > 100 {
			l.bad(line, "input: icmp loss is a percentage, 0 to 100")
			return nil
		}
		vars = icmpVars(*in.ICMP, d)
	case "edge":
		vars = map[string]any{"site": d.Name, "unreachable": in.Edge.Unreachable, "last_contact_s": in.Edge.LastContactS,
			"devices": len(f.inv.Site(d.Name))}
	case "snmp":
		v, err := snmpVars(in.SNMP)
		if err != nil {
			l.bad(line, "input: %v", err)
			return nil
		}
		vars = v
	}
	at, every, until := in.At.D(), in.Every.D(), time.Duration(-1)
	if in.Until != nil {
		until = in.Until.D()
	}
	switch {
	case at < 0:
		l.bad(line, "input: at must not be negative")
		return nil
	case every < 0:
		l.bad(line, "input: every must be positive")
		return nil
	case every > 0 && until < at:
		l.bad(line, "input: every needs until, at or after at")
		return nil
	case every == 0 && in.Until != nil:
		l.bad(line, "input: until goes with every")
		return nil
	case every > 0 && (until-at)/every >= maxInputs:
		l.bad(line, "input: every %s until %s makes more than %d inputs", every, until, maxInputs)
		return nil
	}
	var out []input
	for t := at; ; t += every {
		out = append(out, input{at: t, line: line, device: d, kind: kind, vars: vars})
		if every == 0 || t+every > until {
			return out
		}
	}
}

// relativeTo is p as the test file means it: relative to its directory
// unless absolute.
func relativeTo(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}
