package config

import (
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Noise holds the noise-control settings (SPEC 11) that are not per rule.
type Noise struct {
	Flap       Flap       `yaml:"flap"`
	SiteOutage SiteOutage `yaml:"site_outage"`
}

// Flap is when an alert instance counts as flapping: Changes state changes
// within Window. `flap: false` turns it off (Off); a rule's own `flap:`
// replaces the default of noise.flap.
type Flap struct {
	Off     bool     `yaml:"-"`
	Changes int      `yaml:"changes"`
	Window  Duration `yaml:"window"`
}

// SiteOutage is when failing devices of one site are one outage: at least
// MinDevices and Ratio of its pinged devices start failing within Window.
// `site_outage: false` turns it off.
type SiteOutage struct {
	Off        bool     `yaml:"-"`
	Window     Duration `yaml:"window"`
	MinDevices int      `yaml:"min_devices"`
	Ratio      float64  `yaml:"ratio"`
}

// UnmarshalYAML takes `false`, `true` (the defaults) or the mapping.
func (f *Flap) UnmarshalYAML(n *yaml.Node) error {
	type plain Flap
	return switchable(n, &f.Off, (*plain)(f), "flap")
}

// UnmarshalYAML takes `false`, `true` (the defaults) or the mapping.
func (s *SiteOutage) UnmarshalYAML(n *yaml.Node) error {
	type plain SiteOutage
	return switchable(n, &s.Off, (*plain)(s), "site_outage")
}

// switchType marks settings that are a boolean or a mapping; Strict checks
// the mapping's keys as any other and lets a boolean through.
var switchType = reflect.TypeFor[interface{ onOffSetting() }]()

func (*Flap) onOffSetting()       {}
func (*SiteOutage) onOffSetting() {}

// switchable decodes a setting that is a boolean or a mapping: false sets
// off, true keeps the defaults, a mapping (its keys checked by Strict) is
// decoded into out.
func switchable(n *yaml.Node, off *bool, out any, key string) error {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var on bool
		if err := n.Decode(&on); err != nil {
			return err
		}
		*off = !on
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s must be false or a mapping", n.Line, key)}}
	}
	return n.Decode(out)
}

// Check reports a flap policy that cannot work: fewer than 2 changes can
// never tell a flap from a plain alert, and the window must be positive.
func (f Flap) Check() error {
	switch {
	case f.Off:
		return nil
	case f.Changes < 2:
		return fmt.Errorf("flap: changes %d must be at least 2", f.Changes)
	case f.Window <= 0:
		return fmt.Errorf("flap: window must be a positive duration such as 15m")
	}
	return nil
}

func (l *loader) validateNoise(c *Config) {
	if err := c.Noise.Flap.Check(); err != nil {
		l.bad(l.line("noise", "flap"), "noise: %v", err)
	}
	s := c.Noise.SiteOutage
	if s.Off {
		return
	}
	if s.Window <= 0 {
		l.bad(l.line("noise", "site_outage", "window"), "noise: site_outage: window must be a positive duration such as 1m")
	}
	if s.MinDevices < 1 {
		l.bad(l.line("noise", "site_outage", "min_devices"), "noise: site_outage: min_devices %d must be at least 1", s.MinDevices)
	}
	if s.Ratio <= 0 || s.Ratio > 1 {
		l.bad(l.line("noise", "site_outage", "ratio"), "noise: site_outage: ratio %v must be above 0 and at most 1", s.Ratio)
	}
}
