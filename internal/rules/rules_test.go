package rules

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

func TestLoadShippedCatalog(t *testing.T) {
	set, err := Load([]string{"../../rules/*.yaml"})
	if err != nil {
		t.Fatalf("shipped rules: %v", err)
	}
	r := set.ByEventID("NETWORK-DEVICES-1-101")
	if r == nil || r.Source != observation.ICMP || r.For != 20*time.Second || r.Severity != 1 {
		t.Fatalf("NETWORK-DEVICES-1-101 = %+v", r)
	}
}

// Every shipped rule names the issue as DNA Center does, the thing and the
// device (its Assurance Issue Name), keeps a generic event_name for the
// payload's name, and carries DNA Center's issue category.
func TestShippedRulesNameTheIssue(t *testing.T) {
	set, err := Load([]string{"../../rules/*.yaml"})
	if err != nil {
		t.Fatalf("shipped rules: %v", err)
	}
	sw := &inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"}
	site := &inventory.Device{Name: "HQ", Role: inventory.SiteRole}
	link := func(vars map[string]any) map[string]any {
		return map[string]any{"IF-MIB::ifIndex": 3, "IF-MIB::ifAdminStatus": 1, "IF-MIB::ifOperStatus": 2}
	}
	withVars := func(extra map[string]any) map[string]any {
		v := link(nil)
		for k, x := range extra {
			v[k] = x
		}
		return v
	}
	tests := []struct {
		eventID   string
		source    observation.Source
		data      TemplateData
		name      string // the rendered name: the Assurance Issue Name
		eventName string
		category  string
	}{
		{"NETWORK-DEVICES-1-101", observation.ICMP, TemplateData{Device: sw, Value: 100.0},
			"Device core-sw1 is unreachable", "Device unreachable", "Availability"},
		{"NETWORK-DEVICES-2-201", observation.SNMP, TemplateData{Device: sw, Value: 97.0},
			"High CPU utilization on core-sw1", "High CPU utilization", "Device"},
		{"NETWORK-INTERFACES-2-301", observation.Trap, TemplateData{Device: sw, Key: "3",
			Vars: withVars(map[string]any{"IF-MIB::ifName": "Gi1/0/3", "IF-MIB::ifDescr": "GigabitEthernet1/0/3"})},
			"Interface Gi1/0/3 is down on core-sw1", "Interface down", "Connectivity"},
		{"NETWORK-INTERFACES-2-301", observation.Trap, TemplateData{Device: sw, Key: "3",
			Vars: withVars(map[string]any{"IF-MIB::ifDescr": "GigabitEthernet1/0/3"})},
			"Interface GigabitEthernet1/0/3 is down on core-sw1", "Interface down", "Connectivity"},
		{"NETWORK-INTERFACES-2-301", observation.Trap, TemplateData{Device: sw, Key: "3", Vars: link(nil)},
			"Interface ifIndex 3 is down on core-sw1", "Interface down", "Connectivity"},
		{"NETWORK-DEVICES-3-102", observation.Trap, TemplateData{Device: sw, Vars: map[string]any{}},
			"Device core-sw1 restarted", "Device restarted", "Availability"},
		{"NETWORK-DEVICES-3-102", observation.SNMP, TemplateData{Device: sw, Value: true},
			"Device core-sw1 restarted", "Device restarted", "Availability"},
		{"SECURITY-SNMP-3-401", observation.Trap, TemplateData{Device: sw, Vars: map[string]any{}},
			"SNMP authentication failure on core-sw1", "SNMP authentication failure", "Device"},
		{"NETWORK-SITES-1-501", observation.Site, TemplateData{Device: site, Key: "HQ",
			Vars: map[string]any{"site": "HQ", "outage": true, "down": 4, "pinged": 5, "ratio": 0.8, "devices": "a, b, c, d"}},
			"Site HQ is unreachable", "Site unreachable", "Availability"},
		{"NETWORK-SITES-1-502", observation.Edge, TemplateData{Device: site, Key: "HQ",
			Vars: map[string]any{"site": "HQ", "unreachable": true, "last_contact_s": 31.5, "devices": 12}},
			"Collector of site HQ is unreachable", "Collector unreachable", "Availability"},
	}
	covered := map[*Rule]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *Rule
			for _, c := range set.Rules {
				if c.EventID == tt.eventID && c.Source == tt.source {
					r = c
				}
			}
			if r == nil {
				t.Fatalf("no shipped %s rule for %s", tt.source, tt.eventID)
			}
			covered[r] = true
			name, _, err := r.Render(tt.data)
			if err != nil || name != tt.name {
				t.Errorf("name %q (err %v), want %q", name, err, tt.name)
			}
			if r.EventName != tt.eventName || r.IssueCategory != tt.category {
				t.Errorf("event_name %q, issue_category %q; want %q and %q", r.EventName, r.IssueCategory, tt.eventName, tt.category)
			}
		})
	}
	for _, r := range set.Rules {
		if !covered[r] {
			t.Errorf("shipped rule %s (%s, %s:%d) is not in this table", r.EventID, r.Source, r.File, r.Line)
		}
	}
}

func TestInvalidRules(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/invalid-rules.yaml", []string{
			"testdata/invalid-rules.yaml:5: when: unknown name losss (column 1); icmp rules see device, loss, recv, rtt_max_ms, rtt_min_ms, rtt_ms, sent, up",
			"testdata/invalid-rules.yaml:7: description template: unexpected \"}\" in operand",
			"testdata/invalid-rules.yaml:8: event_id \"bad-id\" is not of the form TYPE-SUBDOMAIN-SEVERITY-NUMBER (e.g. NETWORK-DEVICES-1-101)",
			"testdata/invalid-rules.yaml:10: source \"smtp\": want icmp, snmp or trap",
			"testdata/invalid-rules.yaml:12: severity 9: want 1 (most severe) to 5",
			"testdata/invalid-rules.yaml:13: trap rule NETWORK-INTERFACES-2-301 needs resolve_when, or kind: event",
			"testdata/invalid-rules.yaml:18: category \"CRITICAL\": want ALERT, ERROR, WARN or INFO",
		}},
		{"testdata/unknown-key.yaml", []string{
			`testdata/unknown-key.yaml:7: unknown key "forr" in rule "Device unreachable" (known: category, clear_for, clear_when, description, domain, event_id, event_name, flap, for, issue_category, key, kind, match, name, resolve_when, severity, source, sub_domain, value, when)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load([]string{tt.file})
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// Every problem in a rule file comes back at once, at its line, in words:
// the decoder's and the compile checks' alike.
func TestParseReportsEveryProblem(t *testing.T) {
	const rule = `rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
`
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"several decoding problems", rule + `    severity: high
    for: soon
    clear_for: 30
    forr: 10s
    when: loss > 50
    match: {roles: core, site: HQ}
`, []string{
			`t.yaml:6: rule "Device unreachable": severity must be an integer, not a string`,
			`t.yaml:7: rule "Device unreachable": for: invalid duration: want a Go duration such as 500ms, 10s or 5m`,
			`t.yaml:8: rule "Device unreachable": clear_for: invalid duration: want a Go duration such as 500ms, 10s or 5m`,
			`t.yaml:9: unknown key "forr" in rule "Device unreachable" (known: category, clear_for, clear_when, description, domain, event_id, event_name, flap, for, issue_category, key, kind, match, name, resolve_when, severity, source, sub_domain, value, when)`,
			`t.yaml:10: duplicate key "when" in rule "Device unreachable" (first at line 5)`,
			`t.yaml:11: rule "Device unreachable" match: roles must be a list, not a string`,
			`t.yaml:11: unknown key "site" in rule "Device unreachable" match (known: devices, labels, roles, sites)`,
		}},
		{"decoding and compile problems together", rule + `    severity: 1
    clear_when: losss == 0
  - event_id: bad-id
    name: Slow
    source: icmp
    when: rtt_ms > 100
    severity: [2]
    description: "{{ .Device.Name }"
  - just a string
  - {event_id: NETWORK-DEVICES-1-103, name: Lost, source: icmp, when: loss > 0, severity: 9}
`, []string{
			`t.yaml:7: clear_when: unknown name losss (column 1); icmp rules see device, loss, recv, rtt_max_ms, rtt_min_ms, rtt_ms, sent, up`,
			`t.yaml:8: event_id "bad-id" is not of the form TYPE-SUBDOMAIN-SEVERITY-NUMBER (e.g. NETWORK-DEVICES-1-101)`,
			`t.yaml:12: rule "Slow": severity must be an integer, not a list`,
			`t.yaml:13: description template: unexpected "}" in operand`,
			`t.yaml:14: rules[2] must be a mapping, not a string`,
			`t.yaml:15: severity 9: want 1 (most severe) to 5`,
		}},
		{"event_name and issue_category", rule + `    severity: 1
    event_name: "Device {{ .Device.Name }} unreachable"
    issue_category: Outage
  - event_id: NETWORK-DEVICES-1-102
    name: Lost
    source: icmp
    when: loss > 0
    severity: 1
    event_name: "Lost\npackets"
`, []string{
			`t.yaml:7: event_name is plain text, the same for every device (the DNA Center payload's name, which receivers match on): put what names the device in name, a template`,
			`t.yaml:8: issue_category: not one of DNA Center's issue categories (Availability, Connectivity, Connected, Device, Onboarding, Utilization, Application, Sensor Test, AP Anomaly, System, Unknown)`,
			`t.yaml:14: event_name must be one line`,
		}},
		{"rules not a list", "rules: {event_id: X}\n", []string{`t.yaml:1: rules must be a list, not a mapping`}},
		{"not a mapping", "- event_id: X\n", []string{`t.yaml:1: a rule file must be a mapping, not a list`}},
		{"two documents", rule + "    severity: 1\n---\nrules: []\n", []string{`t.yaml:7: a second YAML document (after ---): a rule file must be one document`}},
		{"empty", "# nothing yet\n", []string{`t.yaml: the file is empty: a rule file holds a rules list`}},
		{"syntax", "rules: [\n", []string{`t.yaml:1: invalid YAML: did not find expected node content`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse([]byte(tt.yaml), "t.yaml")
			if got, want := errs.Sorted().Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// A value never reaches a message, even a secret pasted under a rule key.
func TestParseNeverQuotesValues(t *testing.T) {
	const secret = "s3cr3t-Tok3n-9vQx"
	_, errs := Parse([]byte(`rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
    severity: `+secret+`
    for: `+secret+`
    clear_for: [`+secret+`]
    match: {roles: `+secret+`, labels: [`+secret+`]}
`), "t.yaml")
	if len(errs) != 5 {
		t.Errorf("%d errors, want 5:\n%s", len(errs), strings.ReplaceAll(errs.Error(), secret, "<SECRET>"))
	}
	if strings.Contains(errs.Error(), secret) {
		t.Errorf("a value appears in the errors:\n%s", strings.ReplaceAll(errs.Error(), secret, "<SECRET>"))
	}
}

func TestEvaluateICMP(t *testing.T) {
	rs, errs := Parse([]byte(`
rules:
  - event_id: NETWORK-DEVICES-1-101
    name: "Device {{ .Device.Name }} unreachable"
    source: icmp
    match: {roles: [core]}
    when: loss == 100
    clear_when: loss == 0
    severity: 1
    description: "{{ .Device.Name }} lost {{ .Value }}%"
`), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	set := NewSet(rs)
	core := &inventory.Device{Name: "core1", Address: "192.0.2.1", Role: "core"}
	tests := []struct {
		name          string
		dev           *inventory.Device
		loss          float64
		wantN         int
		firing, clear bool
	}{
		{"down", core, 100, 1, true, false},
		{"up", core, 0, 1, false, true},
		{"partial loss: neither (hysteresis)", core, 50, 1, false, false},
		{"role not matched", &inventory.Device{Name: "acc", Role: "access"}, 100, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conds, errs := set.Evaluate(observation.Observation{Source: observation.ICMP, Device: tt.dev, Time: time.Unix(1, 0),
				Vars: map[string]any{"up": tt.loss < 100, "loss": tt.loss, "rtt_ms": 1.0, "sent": 1, "recv": 0}})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if len(conds) != tt.wantN {
				t.Fatalf("%d conditions, want %d", len(conds), tt.wantN)
			}
			if tt.wantN == 0 {
				return
			}
			c := conds[0]
			if c.Firing != tt.firing || c.Clear != tt.clear || c.Value != tt.loss {
				t.Errorf("got firing=%v clear=%v value=%v", c.Firing, c.Clear, c.Value)
			}
			name, desc, err := c.Rule.Render(TemplateData{Device: c.Device, Value: c.Value})
			if err != nil || name != "Device core1 unreachable" || !strings.HasPrefix(desc, "core1 lost") {
				t.Errorf("render = %q %q %v", name, desc, err)
			}
		})
	}
}

func TestEvaluateTrapKeyAndResolve(t *testing.T) {
	rs, errs := Parse([]byte(`
rules:
  - event_id: NETWORK-INTERFACES-2-301
    name: Interface down
    source: trap
    when: trap == "IF-MIB::linkDown"
    resolve_when: trap == "IF-MIB::linkUp"
    key: vars["IF-MIB::ifIndex"]
    severity: 2
    description: "{{ .Device.Name }} interface {{ .Key }} down"
`), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	set := NewSet(rs)
	obs := func(trap string, idx int) observation.Observation {
		return observation.Observation{Source: observation.Trap, Device: &inventory.Device{Name: "sw"}, Vars: map[string]any{
			"trap": trap, "trap_oid": "", "vars": map[string]any{"IF-MIB::ifIndex": idx}, "source": "192.0.2.1", "version": "2c"}}
	}
	c, _ := set.Evaluate(obs("IF-MIB::linkDown", 3))
	if len(c) != 1 || !c[0].Firing || c[0].Key != "3" {
		t.Fatalf("linkDown: %+v", c)
	}
	c, _ = set.Evaluate(obs("IF-MIB::linkUp", 3))
	if len(c) != 1 || !c[0].Resolve || c[0].Key != "3" {
		t.Fatalf("linkUp: %+v", c)
	}
	if c, _ = set.Evaluate(obs("SNMPv2-MIB::coldStart", 3)); len(c) != 0 {
		t.Fatalf("unrelated trap produced %+v", c)
	}
}

func TestDuplicateEventIDs(t *testing.T) {
	rule := func(source observation.Source, kind string) string {
		when := map[observation.Source]string{observation.Trap: `trap == "SNMPv2-MIB::coldStart"`, observation.SNMP: "uptime_reset", observation.ICMP: "loss == 100"}[source]
		extra := ""
		if kind != "" {
			extra = "\n    kind: " + kind
		} else if source == observation.Trap {
			extra = "\n    resolve_when: trap == \"SNMPv2-MIB::warmStart\""
		}
		return "  - event_id: NETWORK-DEVICES-3-102\n    name: Device restarted\n    source: " + string(source) + extra + "\n    when: " + when + "\n    severity: 3\n"
	}
	tests := []struct {
		name  string
		rules []string
		ok    bool
	}{
		{"one-shot events from two sources", []string{rule(observation.Trap, event.KindEvent), rule(observation.SNMP, event.KindEvent)}, true},
		{"one-shot events from one source twice", []string{rule(observation.Trap, event.KindEvent), rule(observation.Trap, event.KindEvent)}, false},
		{"a stateful rule shares the id", []string{rule(observation.SNMP, event.KindEvent), rule(observation.ICMP, "")}, false},
		{"three sources, one repeated", []string{rule(observation.Trap, event.KindEvent), rule(observation.SNMP, event.KindEvent), rule(observation.Trap, event.KindEvent)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir+"/r.yaml", "rules:\n"+strings.Join(tt.rules, ""))
			_, err := Load([]string{dir + "/r.yaml"})
			if tt.ok && err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "event_id NETWORK-DEVICES-3-102 already defined at")) {
				t.Fatalf("Load: %v; want a duplicate event_id error", err)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A failed poll carries no variables: no rule fires or clears on it, even
// one whose expression would hold on missing values.
func TestObservationWithoutVarsIsNoData(t *testing.T) {
	rs, errs := Parse([]byte(`
rules:
  - event_id: NETWORK-DEVICES-2-201
    name: High CPU
    source: snmp
    when: cpu == nil || cpu > 90
    severity: 2
    description: "{{ .Device.Name }} CPU high"
`), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	set := NewSet(rs)
	dev := &inventory.Device{Name: "sw1"}
	failed := observation.Observation{Source: observation.SNMP, Device: dev, Err: errors.New("timeout"), Reason: "timeout"}
	if conds, errs := set.Evaluate(failed); len(conds) != 0 || len(errs) != 0 {
		t.Errorf("failed poll: conditions %+v, errors %v; want none", conds, errs)
	}
	polled := failed
	polled.Err, polled.Reason, polled.Vars = nil, "", map[string]any{"cpu": 95.0}
	if conds, _ := set.Evaluate(polled); len(conds) != 1 || !conds[0].Firing {
		t.Errorf("poll with cpu 95: conditions %+v, want one firing", conds)
	}
}

func TestRuleFlapPolicy(t *testing.T) {
	rs, errs := Parse([]byte(`
rules:
  - {event_id: NETWORK-DEVICES-1-101, name: a, source: icmp, when: "loss == 100", severity: 1}
  - {event_id: NETWORK-DEVICES-1-102, name: b, source: icmp, when: "loss == 100", severity: 1, flap: false}
  - {event_id: NETWORK-DEVICES-1-103, name: c, source: icmp, when: "loss == 100", severity: 1, flap: {changes: 3, window: 5m}}
`), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if rs[0].Flap != nil || rs[1].Flap == nil || !rs[1].Flap.Off || rs[2].Flap == nil || rs[2].Flap.Changes != 3 || rs[2].Flap.Window.D() != 5*time.Minute {
		t.Errorf("flap policies %+v %+v %+v", rs[0].Flap, rs[1].Flap, rs[2].Flap)
	}
	_, errs = Parse([]byte(`
rules:
  - {event_id: NETWORK-DEVICES-1-101, name: a, source: icmp, when: "loss == 100", severity: 1, flap: {changes: 1, window: 5m}}
  - {event_id: NETWORK-DEVICES-1-102, name: b, source: icmp, when: "loss == 100", severity: 1, flap: sometimes}
`), "t.yaml")
	want := "t.yaml:3: flap: changes 1 must be at least 2\nt.yaml:4: rule \"b\": flap must be false, true (the defaults) or a mapping, not a string"
	if errs.Sorted().Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", errs, want)
	}
}

// A name template that fails at run time (here: past the render budget)
// falls back to the rule's plain
// event_name (its event id without one), and says why.
func TestRenderNameFallback(t *testing.T) {
	tests := []struct {
		name, eventName, want string
	}{
		{"with event_name", "    event_name: Interface down\n", "Interface down"},
		{"without event_name", "", "NETWORK-INTERFACES-2-301"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, errs := Parse([]byte(`
rules:
  - event_id: NETWORK-INTERFACES-2-301
    name: '{{ range .Vars }}{{ range 100000 }}{{ printf "%01000d" 0 }}{{ end }}{{ end }}'
`+tt.eventName+`    source: trap
    kind: event
    when: trap == "IF-MIB::linkDown"
    severity: 2
    description: down
`), "t.yaml")
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			name, desc, err := rs[0].Render(TemplateData{Device: &inventory.Device{Name: "sw1"}, Key: "3", Vars: map[string]any{"ifName": 7}})
			if err == nil || name != tt.want || !strings.HasPrefix(desc, "NETWORK-INTERFACES-2-301 on sw1: the rule's text could not be rendered (") {
				t.Errorf("Render = %q, %q, %v; want %q, the fallback description and an error", name, desc, err, tt.want)
			}
		})
	}
}
