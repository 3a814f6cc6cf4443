package rules

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/tmpl"
)

// Expression and template errors read in the project's words: what is
// wrong, where, and never a Go type name.
func TestErrorsInProjectWords(t *testing.T) {
	rule := func(source, override string) string {
		fields := map[string]string{
			"event_id": "NETWORK-DEVICES-1-101", "name": "Down", "source": source, "when": "loss == 100", "severity": "1",
			"description": `"{{ .Device.Name }}"`,
		}
		if source == "trap" {
			fields["when"], fields["resolve_when"] = `trap == "IF-MIB::linkDown"`, `trap == "IF-MIB::linkUp"`
		}
		k, v, _ := strings.Cut(override, ": ")
		fields[k] = v
		var b strings.Builder
		b.WriteString("rules:\n")
		for i, k := range []string{"event_id", "name", "source", "when", "resolve_when", "key", "severity", "description"} {
			if v, ok := fields[k]; ok {
				if i == 0 {
					b.WriteString("  - ")
				} else {
					b.WriteString("    ")
				}
				b.WriteString(k + ": " + v + "\n")
			}
		}
		return b.String()
	}
	tests := []struct{ source, override, want string }{
		{"icmp", `when: loss == "x"`, `when: invalid operation: == (mismatched types number and text) (column 6)`},
		{"icmp", `when: loss`, `when: expected boolean, but got number`},
		{"icmp", `when: device.nme == "x"`, `when: device has no field nme (it has name, address, site, role and labels) (column 8)`},
		{"icmp", `when: len(loss) > 0`, `when: invalid argument for len (type number) (column 1)`},
		{"icmp", `when: up and loss`, `when: invalid operation: and (mismatched types boolean and number) (column 4)`},
		{"trap", `when: trap == 3`, `when: invalid operation: == (mismatched types text and number) (column 6)`},
		{"trap", `when: rtt_ms > 3`, `when: unknown name rtt_ms (column 1); trap rules see device, source, trap, trap_oid, vars, version`},
		{"trap", `key: vars[1]`, `key: cannot use number to get an element from map (column 6)`},
		{"icmp", `description: "{{ .Device.Nmae }}"`, `description template: at <.Device.Nmae>: a device has no field Nmae: it has .Name, .Address, .Site, .Role and .Labels`},
		{"icmp", `description: "{{ .Foo }}"`, `description template: at <.Foo>: there is no .Foo: templates see .Device, .Key, .Value and .Vars`},
		{"icmp", `name: "{{ .Key.X }}"`, `name template: at <.Key.X>: text has no field X`},
		{"icmp", `description: "{{ index .Device.Labels 1 }}"`, `description template: at <index .Device.Labels 1>: error calling index: value has type number; should be text`},
		{"icmp", `description: '{{ lt .Value "a" }}'`, `description template: at <lt .Value "a">: error calling lt: incompatible types for comparison: number and text`},
		{"icmp", `description: "{{ .Vars.x.y }}"`, `description template: at <.Vars.x.y>: there is nothing to read .y from`},
		{"icmp", `description: "{{ nosuch }}"`, `description template: function "nosuch" not defined`},
		{"icmp", `description: "down\n\n{{ .Device.Nmae }}"`, `description template: line 3, at <.Device.Nmae>: a device has no field Nmae: it has .Name, .Address, .Site, .Role and .Labels`},
		{"icmp", `description: '{{ range 300000000 }}{{ printf "%01000d" 0 }}{{ end }}'`, `description template: the output passed 64 KiB (render budget)`},
		{"icmp", `description: '{{ printf "%300000000s" "x" }}'`, `description template: printf: a width or precision above 65536, or given by *, is not allowed (render budget)`},
		{"icmp", `description: "{{ range 100000000000 }}{{ end }}"`, `description template: rendering took longer than 100ms (render budget)`},
	}
	goType := regexp.MustCompile(`float64|\bint\b|\bstring\b|\bbool\b|interface \{\}|inventory\.|rules\.|map\[|\[\]|template: \w+:\d`)
	for _, tt := range tests {
		t.Run(tt.override, func(t *testing.T) {
			_, errs := Parse([]byte(rule(tt.source, tt.override)), "t.yaml")
			if len(errs) != 1 {
				t.Fatalf("errors %v, want one", errs)
			}
			got := errs[0].Msg
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if m := goType.FindString(got); m != "" {
				t.Errorf("%q speaks Go (%q)", got, m)
			}
		})
	}
}

// A template that fails only at run time still gives the event a name and
// a description, naming the rule, the device and the error.
func TestRenderFallsBack(t *testing.T) {
	rs, errs := Parse([]byte(`rules:
  - event_id: NETWORK-INTERFACES-2-301
    name: "Interface {{ .Key }} down"
    source: trap
    when: trap == "IF-MIB::linkDown"
    resolve_when: trap == "IF-MIB::linkUp"
    severity: 2
    description: '{{ range .Vars }}{{ range 100000 }}{{ printf "%01000d" 0 }}{{ end }}{{ end }}'
`), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs) // the sample has no varbinds: it passes
	}
	dev := &inventory.Device{Name: "sw1", Address: "192.0.2.1"}
	name, desc, err := rs[0].Render(TemplateData{Device: dev, Key: "3", Vars: map[string]any{"IF-MIB::ifIndex": 3}})
	if !errors.Is(err, tmpl.ErrBudget) {
		t.Fatalf("err = %v, want the render budget's", err)
	}
	if name != "Interface 3 down" {
		t.Errorf("name = %q, want the rendered one", name)
	}
	want := "NETWORK-INTERFACES-2-301 on sw1: the rule's text could not be rendered (rule NETWORK-INTERFACES-2-301: description: the output passed 64 KiB (render budget))"
	if desc != want {
		t.Errorf("description = %q\nwant %q", desc, want)
	}

	rs, _ = Parse([]byte(`rules:
  - {event_id: NETWORK-DEVICES-1-101, name: "{{ range .Vars }}{{ range 100000 }}x{{ end }}{{ end }}", source: icmp, when: loss == 100, severity: 1, description: ok}
`), "t.yaml")
	name, desc, err = rs[0].Render(TemplateData{Device: dev, Vars: map[string]any{"loss": 100.0}})
	if err == nil || name != "NETWORK-DEVICES-1-101" || !strings.HasPrefix(desc, "NETWORK-DEVICES-1-101 on sw1: the rule's text could not be rendered (rule NETWORK-DEVICES-1-101: name: ") {
		t.Errorf("failed name: %q %q %v", name, desc, err)
	}
}

// check renders every template for every device a rule applies to and a
// sample trap: a template that fails only for some devices, or only on a
// trap's varbinds, is a check error at its line, found fast.
func TestCheckTemplates(t *testing.T) {
	rs, errs := Parse([]byte(`rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Down
    source: icmp
    match: {roles: [core]}
    when: loss == 100
    severity: 1
    description: '{{ range .Device.Labels }}{{ range 300000000 }}{{ printf "%01000d" 0 }}{{ end }}{{ end }}'
  - event_id: NETWORK-INTERFACES-2-301
    name: Interface down
    source: trap
    when: trap == "IF-MIB::linkDown"
    resolve_when: trap == "IF-MIB::linkUp"
    severity: 2
    description: '{{ with index .Vars "IF-MIB::ifIndex" }}{{ .Name }}{{ end }}'
  - event_id: NETWORK-SITES-1-501
    name: "Site {{ .Device.Site }} unreachable"
    source: site
    when: outage
    severity: 1
    description: "{{ .Device.Name }}: {{ .Value }}"
`), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	set := NewSet(rs)
	inv := inventory.Of(
		inventory.Device{Name: "core1", Site: "HQ", Role: "core"},
		inventory.Device{Name: "acc1", Site: "HQ", Role: "access", Labels: map[string]string{"vendor": "cisco"}},
		inventory.Device{Name: "core2", Site: "HQ", Role: "core", Labels: map[string]string{"vendor": "cisco"}},
	)
	start := time.Now()
	got := set.CheckTemplates(inv).Error()
	want := "t.yaml:8: description template for device core2: the output passed 64 KiB (render budget)\n" +
		"t.yaml:15: description template for device core1: at <.Name>: number has no field Name"
	if got != want {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("check took %v", took)
	}
}
