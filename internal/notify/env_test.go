package notify

import (
	"errors"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/config"
)

type prepareConfig struct {
	URL  string `yaml:"url"`
	Room string `yaml:"room"`
}

// validate reports both keys missing, room first, to show Prepare sorts.
func (c *prepareConfig) validate(env Env, d config.Destination) (string, config.Errors) {
	check := NewConfigCheck(env, d)
	if c.Room == "" {
		check.Bad("room", "room is required")
	}
	if c.URL == "" {
		check.Bad("url", "url is required")
	}
	return c.URL + "#" + c.Room, check.Errors()
}

func TestPrepare(t *testing.T) {
	for _, tc := range []struct {
		name       string
		yaml       string
		want       string
		wantErrors []string
	}{
		{name: "valid", yaml: "type: x\nurl: https://h\nroom: r1\n", want: "https://h#r1"},
		{name: "unknown key stops before validate", yaml: "type: x\nurl: https://h\nrom: r1\n",
			wantErrors: []string{`c.yaml:3: destination "d1": unknown key "rom"`}},
		{name: "every problem, sorted by line", yaml: "type: x\nroom: \"\"\nurl: \"\"\n",
			wantErrors: []string{`c.yaml:2: destination "d1": room is required`, `c.yaml:3: destination "d1": url is required`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, deps, err := Prepare(parseDest(t, tc.yaml), Env{ConfigFile: "c.yaml"}, (*prepareConfig).validate)
			if tc.wantErrors == nil {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				if s != tc.want || deps.Client == nil || deps.UserAgent != DefaultUserAgent || deps.Logger == nil {
					t.Errorf("Prepare = %q, %+v; want %q and defaults filled in", s, deps, tc.want)
				}
				return
			}
			var es config.Errors
			if !errors.As(err, &es) || len(es) != len(tc.wantErrors) {
				t.Fatalf("Prepare error %v, want %d config errors", err, len(tc.wantErrors))
			}
			for i, w := range tc.wantErrors {
				if !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d: %s, want prefix %s", i, es[i], w)
				}
			}
			if s != "" || deps.Client != nil {
				t.Errorf("a failed Prepare returned settings %q or deps", s)
			}
		})
	}
}
