package notify

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
)

type decodeInner struct {
	User string `yaml:"user"`
	Pass string `yaml:"pass"`
}

type decodeEmbedded struct {
	Extra string `yaml:"extra"`
}

type decodeTarget struct {
	decodeEmbedded `yaml:",inline"`
	URL            string                 `yaml:"url"`
	Count          int                    `yaml:"count"`
	Auth           *decodeInner           `yaml:"auth"`
	List           []decodeInner          `yaml:"list"`
	ByName         map[string]decodeInner `yaml:"by_name"`
	Fields         map[string]any         `yaml:"fields"` // free-form: any keys
	Secret         config.Secret          `yaml:"secret"`
}

func parseDest(t *testing.T, src string) config.Destination {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return config.Destination{Name: "d1", Type: "x", Node: &doc, Line: 1}
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // errors, sorted; nil means success
	}{
		{"valid, common keys skipped", `
name: d1
type: x
timeout: 5s
retry: {initial: 1s}
tls: {insecure_skip_verify: true}
proxy_url: http://p:3128
rate_limit: 3
url: http://h/
count: 3
extra: e
auth: {user: u, pass: p}
list: [{user: a}, {user: b}]
by_name: {one: {user: c}}
fields: {anything: [1, 2], goes: {here: true}}
secret: s3
`, nil},
		{"unknown top-level", "name: d1\nurl: x\nurll: y\n", []string{`f.yaml:3: destination "d1": unknown key "urll" (known: auth, by_name, count, extra, fields, list, secret, url)`}},
		{"unknown nested", "auth:\n  user: u\n  password: p\n", []string{`f.yaml:3: destination "d1": unknown key "password" in auth (known: pass, user)`}},
		{"unknown in list and map", "list:\n  - {user: a}\n  - {usr: b}\nby_name:\n  one: {pas: x}\n", []string{
			`f.yaml:3: destination "d1": unknown key "usr" in list[1] (known: pass, user)`,
			`f.yaml:5: destination "d1": unknown key "pas" in by_name "one" (known: pass, user)`}},
		{"type errors at their lines", "url: x\ncount: many\nauth: [1]\n", []string{
			`f.yaml:2: destination "d1": count must be an integer, not a string`,
			`f.yaml:3: destination "d1": auth must be a mapping, not a list`}},
		{"not a mapping", "- a\n- b\n", []string{`f.yaml:1: destination "d1": must be a mapping, not a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out decodeTarget
			err := DecodeConfig(Env{ConfigFile: "f.yaml"}, parseDest(t, tt.yaml), &out)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if out.URL != "http://h/" || out.Count != 3 || out.Extra != "e" || out.Auth.Pass != "p" || len(out.List) != 2 ||
					out.ByName["one"].User != "c" || out.Secret.Reveal() != "s3" || out.Fields["goes"] == nil {
					t.Fatalf("decoded %+v", out)
				}
				return
			}
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("got %v (%T), want config.Errors", err, err)
			}
			if len(es) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(es), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(es[i].Error(), w) {
					t.Errorf("error %d:\n %s\nwant prefix\n %s", i, es[i], w)
				}
			}
		})
	}
}

func TestDecodeConfigWithoutNode(t *testing.T) {
	var out decodeTarget
	if err := DecodeConfig(Env{}, config.Destination{Name: "code"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := DecodeConfig(Env{}, config.Destination{Name: "code"}, out); err == nil {
		t.Fatal("non-pointer out accepted")
	}
}

func TestKeyLineAndConfigError(t *testing.T) {
	d := parseDest(t, "name: d1\nurl: x\nauth:\n  user: u\n  pass: p\n")
	d.Line = 1
	for path, want := range map[string]int{"url": 2, "auth": 3, "auth.pass": 5, "auth.nope": 3, "missing": 1} {
		if got := KeyLine(d, path); got != want {
			t.Errorf("KeyLine(%q) = %d, want %d", path, got, want)
		}
	}
	e := ConfigError(Env{ConfigFile: "f.yaml"}, d, "auth.pass", "bad %s", "thing")
	if e.Error() != `f.yaml:5: destination "d1": bad thing` {
		t.Errorf("ConfigError = %q", e)
	}
	if got := KeyLine(config.Destination{Line: 7}, "url"); got != 7 {
		t.Errorf("KeyLine without node = %d, want the destination line", got)
	}
}

// chatConfig takes `digest` like the chat types; plainConfig does not.
type chatConfig struct {
	URL         string `yaml:"url"`
	TakesDigest `yaml:"-"`
}

type plainConfig struct {
	URL string `yaml:"url"`
}

// TestDecodeConfigDigestKey: the key is skipped for a config that takes
// digests and unknown for any other, as every key a type does not declare.
func TestDecodeConfigDigestKey(t *testing.T) {
	d := parseDest(t, "url: x\ndigest: {after: 3}\n")
	env := Env{ConfigFile: "c.yaml"}
	if err := DecodeConfig(env, d, &chatConfig{}); err != nil {
		t.Errorf("a chat config refused digest: %v", err)
	}
	err := DecodeConfig(env, d, &plainConfig{})
	if err == nil || !strings.Contains(err.Error(), `c.yaml:2: destination "d1": unknown key "digest" (known: url)`) {
		t.Errorf("a config without digests: %v; want digest an unknown key", err)
	}
	if got := config.CommonDestinationKeys; len(got) != 8 || got[len(got)-1] != "follow_redirects" {
		t.Errorf("DecodeConfig changed the shared list of common keys: %v", got)
	}
}
