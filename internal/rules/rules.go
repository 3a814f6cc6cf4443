// Package rules loads rule files and turns observations into conditions.
// Expressions (expr-lang/expr) and templates are compiled once per load;
// templates render within the budget of package tmpl.
package rules

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/tmpl"
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
	nameLine    int // of the name and description keys, for check errors
	descLine    int
	when        *vm.Program
	clearWhen   *vm.Program // nil: not(when)
	key         *vm.Program // trap rules: the instance key
	resolveWhen *vm.Program // trap rules: a later trap that resolves
	value       string      // the variable .Value reports (loss, cpu…)
	name        *template.Template
	description *template.Template

	// EventName is the generic name every device's event carries (the
	// DNA Center payload's name); "" when the rule sets none.
	EventName string
	// IssueCategory is DNA Center's Assurance Issue Category, spelt as
	// event.IssueCategories has it; "" when the rule sets none.
	IssueCategory string
}

// deviceVars is what expressions see as `device`: a struct, so that a
// misspelt field is a check error.
type deviceVars struct {
	Name    string            `expr:"name"`
	Address string            `expr:"address"`
	Site    string            `expr:"site"`
	Role    string            `expr:"role"`
	Labels  map[string]string `expr:"labels"`
}

func deviceEnv(d *inventory.Device) deviceVars {
	labels := d.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return deviceVars{Name: d.Name, Address: d.Address, Site: d.Site, Role: d.Role, Labels: labels}
}

// TemplateData is what name and description templates see.
type TemplateData struct {
	Device *inventory.Device
	Key    string
	Value  any
	Vars   map[string]any
}

// Render executes the name and description templates within the render
// budget. When one fails, err says why (in the project's words) and the
// event still has a name and description: the rule's plain event_name (its
// event id when it sets none), and a description naming the rule, the
// device and the error.
func (r *Rule) Render(data TemplateData) (name, description string, err error) {
	name, nerr := render(r.name, data)
	description, derr := render(r.description, data)
	switch {
	case nerr != nil && derr != nil:
		err = fmt.Errorf("rule %s: name: %w; description: %w", r.EventID, nerr, derr)
	case nerr != nil:
		err = fmt.Errorf("rule %s: name: %w", r.EventID, nerr)
	case derr != nil:
		err = fmt.Errorf("rule %s: description: %w", r.EventID, derr)
	default:
		return name, description, nil
	}
	if nerr != nil {
		name = r.EventID
		if r.EventName != "" {
			name = r.EventName
		}
	}
	device := "an unknown device"
	if data.Device != nil {
		device = data.Device.Name
	}
	msg := err.Error()
	if len(msg) > maxFallbackError {
		msg = strings.ToValidUTF8(msg[:maxFallbackError], "") + "…"
	}
	return name, fmt.Sprintf("%s on %s: the rule's text could not be rendered (%s)", r.EventID, device, msg), err
}

// maxFallbackError bounds the error a fallback description quotes.
const maxFallbackError = 512

// render executes one template within the budget.
func render(t *template.Template, data TemplateData) (string, error) {
	out, err := tmpl.Execute(t, data)
	if err != nil {
		return "", inWords{err}
	}
	return string(out), nil
}
