package tmpl

import (
	"errors"
	"strings"
	"testing"
	"text/template"
	"time"
)

func bound(t testing.TB, src string) *template.Template {
	t.Helper()
	return Bound(template.Must(template.New("description").Option("missingkey=zero").Parse(src)))
}

func TestExecuteWithinBudget(t *testing.T) {
	data := map[string]any{"Name": "sw1", "Vars": map[string]any{"a": 1, "b": 2}}
	tests := []struct{ src, want string }{
		{"{{ .Name }} is down", "sw1 is down"},
		{"{{ range $k, $v := .Vars }}{{ $k }}={{ $v }} {{ end }}", "a=1 b=2 "},
		{`{{ define "x" }}<{{ . }}>{{ end }}{{ template "x" .Name }}`, "<sw1>"},
		{`{{ printf "%-6s|%5.1f|%[1]q" .Name 2.25 }}`, `sw1   |  2.2|"sw1"`},
		{"{{ range 3 }}{{ if . }}{{ . }}{{ else }}zero{{ end }}{{ end }}", "zero12"},
		{"{{ range .Missing }}x{{ else }}none{{ end }}", "none"},
		{"", ""},
	}
	for _, tt := range tests {
		out, err := Execute(bound(t, tt.src), data)
		if err != nil || string(out) != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.src, out, err, tt.want)
		}
	}
}

func TestBudgetStopsRunawayTemplates(t *testing.T) {
	tests := []struct {
		name, src string
		want      error
	}{
		{"300 MB of output", "{{ range 300000000 }}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{{ end }}", errOutput},
		{"one huge printf", `{{ printf "%300000000d" 1 }}`, errWidth},
		{"huge precision", `{{ printf "%.300000000f" 1.0 }}`, errWidth},
		{"star width", `{{ printf "%*d" 300000000 1 }}`, errWidth},
		{"silent loop", "{{ range 100000000000 }}{{ end }}", errTime},
		{"nested silent loops", "{{ range 1000000 }}{{ range 1000000 }}{{ end }}{{ end }}", errTime},
		{"exponential recursion", `{{ define "a" }}{{ if . }}{{ template "a" slice . 1 }}{{ template "a" slice . 1 }}{{ end }}{{ end }}` +
			`{{ template "a" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }}`, errTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, err := Execute(bound(t, tt.src), nil)
			took := time.Since(start)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrBudget) || out != nil {
				t.Fatalf("got %d bytes, %v; want %v", len(out), err, tt.want)
			}
			if took > MaxTime+time.Second {
				t.Errorf("stopped after %v", took)
			}
			if strings.Count(err.Error(), "printf") > 1 {
				t.Errorf("error %q repeats itself", err)
			}
		})
	}
}

func TestExecuteNeedsBound(t *testing.T) {
	raw := template.Must(template.New("x").Parse("hi"))
	if _, err := Execute(raw, nil); err == nil {
		t.Fatal("an unprepared template rendered")
	}
	if Bound(Bound(raw)) != raw {
		t.Fatal("Bound returned another template")
	}
	if out, err := Execute(raw, nil); err != nil || string(out) != "hi" {
		t.Fatalf("%q, %v", out, err)
	}
}

func TestOrdinaryErrorsPassThrough(t *testing.T) {
	_, err := Execute(bound(t, "{{ .Name.X }}"), map[string]any{"Name": "sw1"})
	if err == nil || errors.Is(err, ErrBudget) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkExecute(b *testing.B) {
	tm := bound(b, "{{ .Name }} ({{ .Address }}) is unreachable")
	data := map[string]any{"Name": "sw1", "Address": "192.0.2.1"}
	for b.Loop() {
		if _, err := Execute(tm, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExecuteUnbudgeted(b *testing.B) {
	tm := template.Must(template.New("x").Parse("{{ .Name }} ({{ .Address }}) is unreachable"))
	data := map[string]any{"Name": "sw1", "Address": "192.0.2.1"}
	for b.Loop() {
		var sb strings.Builder
		if err := tm.Execute(&sb, data); err != nil {
			b.Fatal(err)
		}
	}
}
