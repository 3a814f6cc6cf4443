package config

import (
	"strings"
	"testing"
	"time"
)

type strictInner struct {
	User string `yaml:"user"`
}

type strictShared struct {
	Extra string `yaml:"extra"`
}

type strictTarget struct {
	strictShared `yaml:",inline"`
	Name         string                 `yaml:"name"`
	Count        int                    `yaml:"count"`
	Ratio        float64                `yaml:"ratio"`
	On           *bool                  `yaml:"on"`
	Wait         Duration               `yaml:"wait"`
	Tags         []string               `yaml:"tags"`
	Auth         strictInner            `yaml:"auth"`
	Users        []strictInner          `yaml:"users"`
	Free         map[string]any         `yaml:"free"`
	ByName       map[string]strictInner `yaml:"by_name"`
}

func decodeStrict(t *testing.T, s Strict, src string, out any) Errors {
	t.Helper()
	root, errs := s.Parse([]byte(src))
	if len(errs) > 0 {
		return errs
	}
	return s.Decode(root, out)
}

func TestStrictDecode(t *testing.T) {
	tests := []struct {
		name string
		s    Strict
		yaml string
		want []string
	}{
		{"every problem at once, each at its line", Strict{File: "f.yaml"}, `name: a
count: many
ratio: {x: 1}
on: sometimes
wait: 10
tags: a
auth: {user: u, pass: p}
users:
  - {name: x, user: [u]}
  - plain
by_name: {one: {usr: b}}
colour: red
count: 3
`, []string{
			`f.yaml:2: count must be an integer, not a string`,
			`f.yaml:3: ratio must be a number, not a mapping`,
			`f.yaml:4: on must be true or false, not a string`,
			`f.yaml:5: wait: invalid duration: want a Go duration such as 500ms, 10s or 5m`,
			`f.yaml:6: tags must be a list, not a string`,
			`f.yaml:7: unknown key "pass" in auth (known: user)`,
			`f.yaml:9: unknown key "name" in user "x" (known: user)`,
			`f.yaml:9: user "x": user must be a string, not a list`,
			`f.yaml:10: users[1] must be a mapping, not a string`,
			`f.yaml:11: unknown key "usr" in by_name "one" (known: user)`,
			`f.yaml:12: unknown key "colour" (known: auth, by_name, count, extra, free, name, on, ratio, tags, users, wait)`,
			`f.yaml:13: duplicate key "count" (first at line 2)`,
		}},
		{"skip and prefix", Strict{File: "f.yaml", Prefix: `destination "d": `, Skip: []string{"type", "timeout"}},
			"type: x\ntimeout: [not, checked]\ncount: x\n", []string{`f.yaml:3: destination "d": count must be an integer, not a string`}},
		{"not a mapping, named", Strict{File: "f.yaml", Name: "a rule file"}, "- a\n", []string{`f.yaml:1: a rule file must be a mapping, not a list`}},
		{"not a mapping, prefixed", Strict{File: "f.yaml", Prefix: `destination "d": `}, "- a\n", []string{`f.yaml:1: destination "d": must be a mapping, not a list`}},
		{"two documents", Strict{File: "f.yaml", Name: "a rule file"}, "name: a\n---\nname: b\n", []string{`f.yaml:2: a second YAML document (after ---): a rule file must be one document`}},
		{"syntax", Strict{File: "f.yaml"}, "name: [a\n", []string{`f.yaml:1: invalid YAML: did not find expected ',' or ']'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strictTarget
			errs := decodeStrict(t, tt.s, tt.yaml, &out)
			if got, want := errs.Sorted().Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// What has no problem is decoded; a repeated key keeps its first value, the
// one not reported.
func TestStrictDecodesTheRest(t *testing.T) {
	var out strictTarget
	errs := decodeStrict(t, Strict{File: "f.yaml"}, `name: a
name: b
count: many
extra: e
wait: 5s
free: {anything: [1, {x: y}]}
users: [{user: u1}, {user: u2}]
`, &out)
	if len(errs) != 2 {
		t.Fatalf("errors: %v", errs)
	}
	if out.Name != "a" || out.Count != 0 || out.Extra != "e" || out.Wait.D() != 5*time.Second || out.Free["anything"] == nil || len(out.Users) != 2 {
		t.Errorf("decoded %+v", out)
	}
	if errs := (Strict{}).Decode(nil, &out); errs != nil {
		t.Errorf("nil node: %v", errs)
	}
	if errs := (Strict{}).Decode(nil, out); len(errs) != 1 {
		t.Errorf("non-pointer out: %v", errs)
	}
}

// The decoder never puts a scalar's value into a message, wherever it is:
// a secret pasted under the wrong key must not reach a log.
func TestStrictNeverQuotesValues(t *testing.T) {
	const secret = "hunter2-Zq8vX1pL"
	docs := []string{
		"count: " + secret,
		"ratio: " + secret,
		"on: " + secret,
		"wait: " + secret,
		"tags: " + secret,
		"auth: " + secret,
		"users: [" + secret + "]",
		"by_name: {one: " + secret + "}",
		"{count: " + secret + ", wait: " + secret + "}",
		"count: 1\ncount: " + secret,
		"auth: {user: [" + secret + "], pass: " + secret + "}",
		"users: [{user: {a: " + secret + "}}]",
		"name: !!binary " + secret,
	}
	for _, doc := range docs {
		var out strictTarget
		errs := decodeStrict(t, Strict{File: "f.yaml"}, doc+"\n", &out)
		if len(errs) == 0 {
			t.Errorf("%q: no error", strings.ReplaceAll(doc, secret, "SECRET"))
		}
		if strings.Contains(errs.Error(), secret) {
			t.Errorf("a value appears in the errors:\n%s", strings.ReplaceAll(errs.Error(), secret, "<SECRET>"))
		}
	}
}
