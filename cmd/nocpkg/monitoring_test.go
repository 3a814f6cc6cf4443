package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

const (
	rulesFile     = "../../configs/prometheus-nocbridge-rules.yml"
	dashboardFile = "../../configs/grafana-nocbridge.json"
)

// codeMetrics reads every metric the code registers, with its label names,
// from the calls to the Prometheus client in internal/ (tests aside).
func codeMetrics(t *testing.T) map[string][]string {
	t.Helper()
	metrics := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("../../internal", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "prometheus" {
				return true
			}
			var name string
			var labels []string
			switch {
			case sel.Sel.Name == "NewDesc" && len(call.Args) >= 3:
				name = stringLit(call.Args[0])
				labels = stringList(call.Args[2])
			case len(call.Args) >= 1:
				name = optsName(call.Args[0])
				if strings.HasSuffix(sel.Sel.Name, "Vec") && len(call.Args) >= 2 {
					labels = stringList(call.Args[1])
				}
			}
			if !strings.HasPrefix(name, "nocbridge_") {
				return true
			}
			metrics[name] = labels
			if strings.HasPrefix(sel.Sel.Name, "NewHistogram") {
				metrics[name+"_bucket"] = append(slices.Clone(labels), "le")
				metrics[name+"_sum"] = labels
				metrics[name+"_count"] = labels
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Spot checks that the reading works: SPEC 7's metrics with their labels.
	for name, want := range map[string][]string{
		"nocbridge_notifications_total":        {"destination", "result"},
		"nocbridge_probes_total":               {"kind", "result"},
		"nocbridge_deadletters":                {"destination"},
		"nocbridge_store_healthy":              nil,
		"nocbridge_traps_dropped_total":        {"reason"},
		"nocbridge_alerts_active":              {"event_id"},
		"nocbridge_observations_dropped_total": {"source"},
	} {
		got, ok := metrics[name]
		if !ok || !slices.Equal(got, want) {
			t.Fatalf("reading the code: %s has labels %q (found %v), want %q", name, got, ok, want)
		}
	}
	return metrics
}

func stringLit(e ast.Expr) string {
	if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
		s, _ := strconv.Unquote(b.Value)
		return s
	}
	return ""
}

func stringList(e ast.Expr) []string {
	c, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil
	}
	var out []string
	for _, el := range c.Elts {
		out = append(out, stringLit(el))
	}
	return out
}

// optsName is the Name of a prometheus.CounterOpts{…} (or &…) literal.
func optsName(e ast.Expr) string {
	if u, ok := e.(*ast.UnaryExpr); ok {
		e = u.X
	}
	c, ok := e.(*ast.CompositeLit)
	if !ok {
		return ""
	}
	for _, el := range c.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok {
			if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
				return stringLit(kv.Value)
			}
		}
	}
	return ""
}

var (
	selectorRE = regexp.MustCompile(`\b(nocbridge_[a-z_]+|up)\b\s*(\{([^}]*)\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_]+)\s*(=~|!~|!=|=)`)
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// targetLabels come from the scrape, not the code.
var targetLabels = []string{"job", "instance"}

// checkExpr reports every metric of expr the code does not have, and every
// label it matches on or groups by that none of its metrics carries.
func checkExpr(t *testing.T, where, expr string, metrics map[string][]string) []string {
	t.Helper()
	var names []string
	known := slices.Clone(targetLabels)
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		name := m[1]
		names = append(names, name)
		labels, ok := metrics[name]
		if name == "up" {
			ok = true
		}
		if !ok {
			t.Errorf("%s: %s is not a metric of the code (expr %s)", where, name, expr)
			continue
		}
		known = append(known, labels...)
		for _, lm := range matcherRE.FindAllStringSubmatch(m[3], -1) {
			if !slices.Contains(labels, lm[1]) && !slices.Contains(targetLabels, lm[1]) {
				t.Errorf("%s: %s has no label %s (it has %q)", where, name, lm[1], labels)
			}
		}
	}
	for _, g := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !slices.Contains(known, l) {
				t.Errorf("%s: groups by %s, which none of %q has", where, l, names)
			}
		}
	}
	if len(names) == 0 {
		t.Errorf("%s: no metric in %s", where, expr)
	}
	return names
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// The alerting rules: strict YAML, real metrics and labels, what SPEC 13.3's
// operators need covered; and Prometheus's own checker and unit tests.
func TestPrometheusRules(t *testing.T) {
	metrics := codeMetrics(t)
	data, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	used := map[string]bool{}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := rulesFile + ": " + r.Alert
			if r.Alert == "" || alerts[r.Alert] {
				t.Errorf("%s: an alerting rule needs a unique name", where)
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", where)
			}
			for _, n := range checkExpr(t, where, r.Expr, metrics) {
				used[n] = true
			}
		}
	}
	for _, m := range []string{"up", "nocbridge_store_healthy", "nocbridge_destination_up", "nocbridge_deadletters",
		"nocbridge_observations_dropped_total", "nocbridge_config_last_reload_successful"} {
		if !used[m] {
			t.Errorf("no alerting rule watches %s", m)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		netns.SkipOrFail(t, "promtool is not installed (Debian: prometheus)")
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", "prometheus-rules.test.yml")
	cmd.Dir = "testdata"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	// The unit tests fire every alert.
	tests, err := os.ReadFile("testdata/prometheus-rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for a := range alerts {
		if !regexp.MustCompile(`alertname: ` + a + `\n\s+exp_alerts:`).Match(tests) {
			t.Errorf("testdata/prometheus-rules.test.yml never expects %s to fire", a)
		}
	}
}

type panel struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Panels     []panel     `json:"panels"`
	Targets    []struct {
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
}

// datasource is a panel's or query's data source: the dashboard's variable
// $datasource, so the dashboard imports into any Grafana.
type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func (d *datasource) variable() bool {
	return d != nil && d.Type == "prometheus" && d.UID == "${datasource}"
}

// The dashboard: valid JSON, every panel queries real metrics with real
// labels, and its queries are valid PromQL (promtool checks them as
// recording rules, Grafana's variables filled in).
func TestGrafanaDashboard(t *testing.T) {
	metrics := codeMetrics(t)
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string  `json:"title"`
		UID        string  `json:"uid"`
		Schema     int     `json:"schemaVersion"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	// The model has many keys this test does not read: decoded loosely.
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.Title == "" || dash.UID == "" || dash.Schema == 0 {
		t.Fatalf("%s: title %q, uid %q, schemaVersion %d", dashboardFile, dash.Title, dash.UID, dash.Schema)
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
		if v.Name == "datasource" && (v.Type != "datasource" || v.Query != "prometheus") {
			t.Errorf("variable datasource: type %q, query %v; want a Prometheus data source variable", v.Type, v.Query)
		}
	}
	if !vars["datasource"] {
		t.Error("the dashboard has no datasource variable: it would only work with one named data source")
	}
	used := map[string]bool{}
	var exprs []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q queries nothing", p.Title)
			}
			if !p.Datasource.variable() {
				t.Errorf("panel %q: datasource %+v, want the variable ${datasource}", p.Title, p.Datasource)
			}
			for _, tg := range p.Targets {
				if !tg.Datasource.variable() {
					t.Errorf("panel %q: a query's datasource is %+v, want the variable ${datasource}", p.Title, tg.Datasource)
				}
				for _, v := range regexp.MustCompile(`\$([a-z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
					if !vars[v[1]] && !strings.HasPrefix(v[1], "__") {
						t.Errorf("panel %q: $%s is not a variable of the dashboard", p.Title, v[1])
					}
				}
				for _, n := range checkExpr(t, "panel "+strconv.Quote(p.Title), tg.Expr, metrics) {
					used[n] = true
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(dash.Panels)
	for _, m := range []string{"nocbridge_probes_total", "nocbridge_device_up", "nocbridge_alerts_active", "nocbridge_notifications_total",
		"nocbridge_outbox_pending", "nocbridge_deadletters", "nocbridge_store_healthy", "nocbridge_destination_up",
		"nocbridge_traps_received_total", "nocbridge_traps_dropped_total", "nocbridge_observations_dropped_total"} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		netns.SkipOrFail(t, "promtool is not installed (Debian: prometheus)")
	}
	fill := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*", "$job", "nocbridge")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(fill.Replace(e)) // a JSON string is a YAML string
		rules.WriteString("      - record: dashboard:query" + strconv.Itoa(i) + "\n        expr: " + string(q) + "\n")
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("the dashboard's queries, as rules: %v\n%s\n%s", err, out, rules.String())
	}
}
