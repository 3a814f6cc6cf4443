package rules

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/tmpl"
)

// Set is every loaded rule, indexed by source.
type Set struct {
	Rules    []*Rule
	bySource map[observation.Source][]*Rule
}

// ForSource returns the rules that evaluate observations of source.
func (s *Set) ForSource(source observation.Source) []*Rule {
	if s == nil {
		return nil
	}
	return s.bySource[source]
}

// ByEventID finds a rule.
func (s *Set) ByEventID(id string) *Rule {
	for _, r := range s.Rules {
		if r.EventID == id {
			return r
		}
	}
	return nil
}

type fileYAML struct {
	Rules []ruleYAML `yaml:"rules"`
}

type ruleYAML struct {
	EventID     string          `yaml:"event_id"`
	Name        string          `yaml:"name"`
	EventName   string          `yaml:"event_name"`
	Source      string          `yaml:"source"`
	Kind        string          `yaml:"kind"`
	Match       config.Selector `yaml:"match"`
	When        string          `yaml:"when"`
	For         config.Duration `yaml:"for"`
	ClearWhen   string          `yaml:"clear_when"`
	ClearFor    config.Duration `yaml:"clear_for"`
	Key         string          `yaml:"key"`
	ResolveWhen string          `yaml:"resolve_when"`
	Value       string          `yaml:"value"`
	Severity    int             `yaml:"severity"`
	Category    string          `yaml:"category"`
	Domain      string          `yaml:"domain"`
	SubDomain   string          `yaml:"sub_domain"`
	Description string          `yaml:"description"`
	Flap        *config.Flap    `yaml:"flap"` // nil: noise.flap; `flap: false`: never flapping

	IssueCategory string `yaml:"issue_category"` // DNA Center's Assurance Issue Category
}

// Load reads every file matched by the globs. All problems come back at once
// as config.Errors.
func Load(globs []string) (*Set, error) {
	var files []string
	var errs config.Errors
	for _, g := range globs {
		m, err := filepath.Glob(g)
		if err != nil {
			errs = append(errs, config.Error{File: g, Msg: fmt.Sprintf("bad rules glob: %v", err)})
			continue
		}
		if len(m) == 0 {
			errs = append(errs, config.Error{File: g, Msg: "rules glob matches no file"})
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	var all []*Rule
	for _, f := range files {
		data, err := config.ReadFile(f, config.MaxConfigFile)
		if err != nil {
			errs = append(errs, config.Error{File: f, Msg: err.Error()})
			continue
		}
		rs, es := Parse(data, f)
		errs = append(errs, es...)
		all = append(all, rs...)
	}
	seen := map[string]*Rule{}
	seenSource := map[string]*Rule{}
	for _, r := range all {
		// One event may come from several sources (a restart seen as a
		// coldStart trap or as sysUpTime going backwards) when it is a
		// one-shot kind: event, which keeps no alert state under its id.
		prev, dup := seen[r.EventID]
		if same := seenSource[r.EventID+"\x00"+string(r.Source)]; same != nil {
			prev, dup = same, true
		} else if dup && prev.Kind == event.KindEvent && r.Kind == event.KindEvent {
			dup = false
		}
		if dup {
			errs = append(errs, config.Error{File: r.File, Line: r.Line,
				Msg: fmt.Sprintf("event_id %s already defined at %s:%d", r.EventID, prev.File, prev.Line)})
			continue
		}
		seen[r.EventID] = r
		seenSource[r.EventID+"\x00"+string(r.Source)] = r
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return NewSet(all), nil
}

// CheckTemplates renders every rule's templates, within the render budget,
// for every device of inv the rule applies to (site rules: every site's
// record; trap rules: an unknown sender's too) over sample variables of the
// rule's source, a linkDown's varbinds for traps. A rule's first failing
// device gives its check errors, at the templates' lines.
func (s *Set) CheckTemplates(inv *inventory.Inventory) config.Errors {
	var errs config.Errors
	for _, r := range s.Rules {
		devices := inv.Devices()
		switch r.Source {
		case observation.Site, observation.Edge:
			devices = nil
			for _, site := range inv.Sites() {
				d, _ := inv.SiteDevice(site)
				devices = append(devices, d)
			}
		case observation.Trap:
			devices = append(slices.Clip(devices), inventory.UnknownSender(netip.MustParseAddr("192.0.2.1")))
		}
		data := sampleData(r)
		for _, d := range devices {
			if !d.In(r.Match) {
				continue
			}
			data.Device = d
			if es := r.renderErrors(data, " for device "+d.Name); len(es) > 0 {
				errs = append(errs, es...)
				break
			}
		}
	}
	return errs
}

// sampleData is what a rule's templates see, but the device: the sample
// variables of its source, as Evaluate hands them on.
func sampleData(r *Rule) TemplateData {
	env := observation.Schema(r.Source)
	if r.Source == observation.Trap {
		env["trap"], env["trap_oid"], env["source"], env["version"] = "IF-MIB::linkDown", "1.3.6.1.6.3.1.1.5.3", "192.0.2.1", "2c"
		env["vars"] = map[string]any{"SNMPv2-MIB::sysUpTime": 123456, "SNMPv2-MIB::snmpTrapOID": "1.3.6.1.6.3.1.1.5.3",
			"IF-MIB::ifIndex": 3, "IF-MIB::ifDescr": "GigabitEthernet1/0/3", "IF-MIB::ifName": "Gi1/0/3",
			"IF-MIB::ifAdminStatus": 1, "IF-MIB::ifOperStatus": 2}
		return TemplateData{Key: "3", Value: env[r.value], Vars: env["vars"].(map[string]any)}
	}
	return TemplateData{Value: env[r.value], Vars: env}
}

// NewSet indexes rules.
func NewSet(rs []*Rule) *Set {
	s := &Set{Rules: rs, bySource: map[observation.Source][]*Rule{}}
	for _, r := range rs {
		s.bySource[r.Source] = append(s.bySource[r.Source], r)
	}
	return s
}

// Parse compiles the rules of one file. Every problem comes back at once:
// the strict decoder's (unknown keys, wrong kinds) and the compile checks',
// each at its line; a check is left out where the decoder already explained
// the line.
func Parse(data []byte, file string) ([]*Rule, config.Errors) {
	strict := config.Strict{File: file, Name: "a rule file"}
	root, errs := strict.Parse(data)
	if len(errs) > 0 {
		return nil, errs
	}
	if root == nil {
		return nil, config.Errors{{File: file, Msg: "the file is empty: a rule file holds a rules list"}}
	}
	var fy fileYAML
	errs = strict.Decode(root, &fy)
	flagged := map[int]bool{}
	for _, e := range errs {
		flagged[e.Line] = true
	}
	ruleNodes := ruleItemNodes(root)
	if len(ruleNodes) != len(fy.Rules) {
		return nil, errs // an alias, say: lines would not match
	}
	var out []*Rule
	for i, ry := range fy.Rules {
		lines := map[string]int{}
		line := ruleNodes[i].Line
		for j := 0; j+1 < len(ruleNodes[i].Content); j += 2 {
			if k := ruleNodes[i].Content[j].Value; lines[k] == 0 { // a repeated key: the decoder kept the first
				lines[k] = ruleNodes[i].Content[j+1].Line
			}
		}
		at := func(key string) int {
			if l, ok := lines[key]; ok {
				return l
			}
			return line
		}
		r, es := compile(ry, file, line, at)
		for _, e := range es {
			if !flagged[e.Line] {
				errs = append(errs, e)
			}
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, errs
}

// ruleItemNodes are the entries of the rules list that decode into a rule,
// for their keys' lines: the decoder drops an entry that is no mapping.
func ruleItemNodes(root *yaml.Node) []*yaml.Node {
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "rules" && root.Content[i+1].Kind == yaml.SequenceNode {
			return slices.DeleteFunc(slices.Clone(root.Content[i+1].Content), func(n *yaml.Node) bool { return n.Kind != yaml.MappingNode })
		}
	}
	return nil
}

// envFor is a typed sample environment, so expressions are type-checked at
// load: a typo in a variable name is a check error, not a silent false.
func envFor(source observation.Source) map[string]any {
	env := observation.Schema(source)
	env["device"] = deviceEnv(&inventory.Device{})
	return env
}

func compile(ry ruleYAML, file string, line int, at func(string) int) (*Rule, config.Errors) {
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Error{File: file, Line: at(key), Msg: fmt.Sprintf(format, args...)})
	}
	r := &Rule{
		EventID: ry.EventID, Source: observation.Source(ry.Source), Kind: ry.Kind, Match: ry.Match,
		For: ry.For.D(), ClearFor: ry.ClearFor.D(), Severity: ry.Severity,
		Category: ry.Category, Domain: ry.Domain, SubDomain: ry.SubDomain, Flap: ry.Flap,
		File: file, Line: line,
	}
	if !event.ValidID(ry.EventID) {
		bad("event_id", "event_id %q is not of the form TYPE-SUBDOMAIN-SEVERITY-NUMBER (e.g. NETWORK-DEVICES-1-101)", ry.EventID)
	}
	knownSource := slices.Contains(observation.Sources, r.Source)
	if !knownSource {
		bad("source", "source %q: want icmp, snmp or trap", ry.Source)
	}
	if ry.Kind != "" && ry.Kind != event.KindEvent {
		bad("kind", "kind %q: want event or nothing", ry.Kind)
	}
	if ry.Severity < 1 || ry.Severity > 5 {
		bad("severity", "severity %d: want 1 (most severe) to 5", ry.Severity)
	}
	if r.Category == "" {
		r.Category = "ALERT"
	}
	if !slices.Contains(event.Categories, r.Category) {
		bad("category", "category %q: want %s or %s", r.Category, strings.Join(event.Categories[:len(event.Categories)-1], ", "), event.Categories[len(event.Categories)-1])
	}
	if ry.Name == "" {
		bad("event_id", "rule %s has no name", ry.EventID)
	}
	r.EventName = ry.EventName
	switch {
	case strings.Contains(ry.EventName, "{{"):
		bad("event_name", "event_name is plain text, the same for every device (the DNA Center payload's name, which receivers match on): put what names the device in name, a template")
	case strings.ContainsAny(ry.EventName, "\r\n"):
		bad("event_name", "event_name must be one line")
	}
	if ry.IssueCategory != "" {
		i := slices.IndexFunc(event.IssueCategories, func(c string) bool { return strings.EqualFold(c, ry.IssueCategory) })
		if i < 0 {
			bad("issue_category", "issue_category: not one of DNA Center's issue categories (%s)", strings.Join(event.IssueCategories, ", "))
		} else {
			r.IssueCategory = event.IssueCategories[i]
		}
	}
	if ry.Flap != nil {
		if err := ry.Flap.Check(); err != nil {
			bad("flap", "%v", err)
		}
	}
	if r.For < 0 || r.ClearFor < 0 {
		bad("for", "for and clear_for must not be negative")
	}
	if len(errs) > 0 && !knownSource {
		// Expressions cannot be checked without knowing their variables.
		return nil, errs
	}
	env := envFor(r.Source)
	opts := []expr.Option{expr.Env(env), expr.AsBool()}
	if r.Source == observation.SNMP {
		// Custom OIDs are named in config, not known to the rule file.
		opts = append(opts, expr.AllowUndefinedVariables())
	}
	compileBool := func(key, src string) *vm.Program {
		p, err := expr.Compile(src, opts...)
		if err != nil {
			bad(key, "%s: %s", key, exprError(err, r.Source, env))
			return nil
		}
		return p
	}
	if ry.When == "" {
		bad("event_id", "rule %s has no when", ry.EventID)
	} else {
		r.when = compileBool("when", ry.When)
	}
	if ry.ClearWhen != "" {
		r.clearWhen = compileBool("clear_when", ry.ClearWhen)
	}
	if ry.ResolveWhen != "" {
		if r.Source != observation.Trap {
			bad("resolve_when", "resolve_when is for trap rules only")
		}
		r.resolveWhen = compileBool("resolve_when", ry.ResolveWhen)
	}
	if ry.Key != "" {
		p, err := expr.Compile(ry.Key, expr.Env(env))
		if err != nil {
			bad("key", "key: %s", exprError(err, r.Source, env))
		}
		r.key = p
	}
	if ry.Kind == event.KindEvent && (ry.ClearWhen != "" || ry.ResolveWhen != "") {
		bad("kind", "a kind: event rule never resolves: drop clear_when/resolve_when")
	}
	if r.Source == observation.Trap && ry.Kind != event.KindEvent && ry.ResolveWhen == "" {
		bad("event_id", "trap rule %s needs resolve_when, or kind: event", ry.EventID)
	}
	r.value = ry.Value
	if r.value == "" && r.when != nil {
		r.value = firstIdentifier(r.when.Node())
	}
	r.nameLine, r.descLine = at("name"), at("description")
	r.name = compileTemplate("name", ry.Name, bad)
	r.description = compileTemplate("description", ry.Description, bad)
	if r.name != nil && r.description != nil {
		// Render against a sample so field typos ({{ .Device.Nmae }}) fail at load.
		sample := TemplateData{Device: &inventory.Device{Name: "sw1", Address: "192.0.2.1", Labels: map[string]string{}}, Key: "1", Value: 1.0, Vars: map[string]any{}}
		errs = append(errs, r.renderErrors(sample, "")...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// compileTemplate parses a name or description template, bound to the
// render budget.
func compileTemplate(key, src string, bad func(key, format string, args ...any)) *template.Template {
	t, err := template.New(key).Option("missingkey=zero").Parse(src)
	if err != nil {
		bad(key, "%s template: %s", key, words(err.Error()))
		return nil
	}
	return tmpl.Bound(t)
}

// renderErrors renders the rule's templates over data within the budget:
// a check error for each that fails, at its key's line, saying for what.
func (r *Rule) renderErrors(data TemplateData, what string) config.Errors {
	var errs config.Errors
	for _, t := range []struct {
		key  string
		line int
		t    *template.Template
	}{{"name", r.nameLine, r.name}, {"description", r.descLine, r.description}} {
		if _, err := render(t.t, data); err != nil {
			errs = append(errs, config.Error{File: r.File, Line: t.line, Msg: fmt.Sprintf("%s template%s: %v", t.key, what, err)})
		}
	}
	return errs
}

// exprError is an expression's compile error in words; an unknown name
// comes with the names the rule's source has.
func exprError(err error, source observation.Source, env map[string]any) string {
	msg := words(err.Error())
	if strings.HasPrefix(msg, "unknown name ") {
		names := slices.Sorted(maps.Keys(env))
		msg += fmt.Sprintf("; %s rules see %s", source, strings.Join(names, ", "))
	}
	return msg
}

// firstIdentifier names the metric a rule tests: the first variable of when
// that is not the device.
func firstIdentifier(node ast.Node) string {
	v := &identVisitor{}
	ast.Walk(&node, v)
	for _, n := range v.names {
		if n != "device" {
			return n
		}
	}
	return ""
}

type identVisitor struct{ names []string }

func (v *identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		v.names = append(v.names, id.Value)
	}
}

func oneLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
