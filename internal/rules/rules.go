// Package rules loads rule files and turns observations into conditions.
// Expressions (expr-lang/expr) and templates are compiled once per load.
package rules

import (
	"bytes"
	"fmt"
	"text/template"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// Rule is one compiled rule.
type Rule struct {
	EventID     string
	Source      observation.Source
	Kind        string          // event.KindEvent for one-shot rules
	Match       config.Selector // the devices the rule applies to
	Flap        *config.Flap    // the rule's own flap policy; nil: noise.flap
	For         time.Duration
	ClearFor    time.Duration
	Severity    int
	Category    string
	Domain      string
	SubDomain   string
	File        string
	Line        int
	when        *vm.Program
	clearWhen   *vm.Program // nil: not(when)
	key         *vm.Program // trap rules: the instance key
	resolveWhen *vm.Program // trap rules: a later trap that resolves
	value       string      // the variable .Value reports (loss, cpu…)
	name        *template.Template
	description *template.Template
}

// deviceEnv is what expressions see as `device`.
func deviceEnv(d *inventory.Device) map[string]any {
	labels := d.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{"name": d.Name, "address": d.Address, "site": d.Site, "role": d.Role, "labels": labels}
}

// TemplateData is what name and description templates see.
type TemplateData struct {
	Device *inventory.Device
	Key    string
	Value  any
	Vars   map[string]any
}

// Render executes the name and description templates.
func (r *Rule) Render(data TemplateData) (name, description string, err error) {
	var b bytes.Buffer
	if err := r.name.Execute(&b, data); err != nil {
		return "", "", fmt.Errorf("rule %s: name: %w", r.EventID, err)
	}
	name = b.String()
	b.Reset()
	if err := r.description.Execute(&b, data); err != nil {
		return "", "", fmt.Errorf("rule %s: description: %w", r.EventID, err)
	}
	return name, b.String(), nil
}
