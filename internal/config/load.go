package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Load reads the config file at path, fills in defaults, resolves relative
// paths and *_file secrets, and validates everything. On any problem it
// returns Errors: every problem found, sorted, each as FILE:LINE: message
// with FILE the path as given. No message ever holds a secret's value.
func Load(path string) (*Config, error) {
	l := &loader{file: path, flagged: map[int]bool{}}
	cfg := l.load()
	if err := l.errs.Err(); err != nil {
		return nil, err
	}
	cfg.Warnings = l.warnings.Sorted()
	return cfg, nil
}

// loader carries one Load: the parsed document, for key lines and presence,
// and the errors found so far.
type loader struct {
	file string // as given, for messages
	root *yaml.Node
	errs Errors
	// warnings are risky settings that still load (Warning).
	warnings Warnings
	// flagged lines already carry a decoding error; validating the zero
	// value the decoder left there would only repeat it.
	flagged map[int]bool
}

func (l *loader) add(line int, format string, args ...any) {
	l.errs = append(l.errs, Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// bad records a validation error unless the line already has a decoding one.
func (l *loader) bad(line int, format string, args ...any) {
	if !l.flagged[line] {
		l.add(line, format, args...)
	}
}

func (l *loader) load() *Config {
	data, err := ReadFile(l.file, MaxConfigFile)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already the message's prefix
		}
		l.add(0, "cannot read config: %v", err)
		return nil
	}
	abs, err := filepath.Abs(l.file)
	if err != nil {
		l.add(0, "cannot resolve the config's path: %v", err)
		return nil
	}
	strict := Strict{File: l.file, Name: "the config"}
	if !l.parse(strict, data) {
		return nil
	}
	var cfg Config
	errs := strict.Decode(l.root, &cfg)
	for _, e := range errs {
		l.flagged[e.Line] = true
	}
	l.errs = append(l.errs, errs...)

	l.setLines(&cfg)
	applyDefaults(&cfg, l.has)
	cfg.File, cfg.BaseDir = abs, filepath.Dir(abs)
	l.resolveSecrets(&cfg)
	l.validate(&cfg) // before resolvePaths, so messages show paths as written
	resolvePaths(&cfg)
	return &cfg
}

// parse reads the single YAML document into l.root, a mapping.
func (l *loader) parse(strict Strict, data []byte) bool {
	root, errs := strict.Parse(data)
	if len(errs) > 0 {
		l.errs = append(l.errs, errs...)
		return false
	}
	l.root = root
	if root == nil {
		l.root = &yaml.Node{Kind: yaml.MappingNode, Line: 1} // an empty file is an empty config
	}
	if l.root.Kind != yaml.MappingNode {
		l.add(l.root.Line, "the config must be a mapping of settings (state_dir, http, devices, …), not %s", describeNode(l.root))
		return false
	}
	return true
}

// find follows path (string keys, int list indexes) from the root and
// returns the node found and the line of the deepest step that exists: an
// absent key's problems are reported at its parent.
func (l *loader) find(path ...any) (*yaml.Node, int) {
	n, line := l.root, l.root.Line
	for _, step := range path {
		switch s := step.(type) {
		case string:
			v, k := lookupKey(n, s)
			if v == nil {
				return nil, line
			}
			n, line = v, k.Line
		case int:
			if n.Kind != yaml.SequenceNode || s >= len(n.Content) {
				return nil, line
			}
			n = resolve(n.Content[s])
			line = n.Line
		}
	}
	return n, line
}

// line is where the key at path is, or its nearest existing parent.
func (l *loader) line(path ...any) int {
	_, line := l.find(path...)
	return line
}

// has reports whether the file sets the key at path to a non-empty value.
func (l *loader) has(path ...any) bool {
	n, _ := l.find(path...)
	return n != nil && !isNull(n)
}

// setLines records where each named entry starts, for errors raised later
// by the packages that use them.
func (l *loader) setLines(c *Config) {
	for i := range c.Devices {
		c.Devices[i].Line = l.line("devices", i)
	}
	for i := range c.Destinations {
		if c.Destinations[i].Line == 0 { // an empty entry never reached UnmarshalYAML
			c.Destinations[i].Line = l.line("destinations", i)
		}
	}
	for i := range c.Subscriptions {
		c.Subscriptions[i].Line = l.line("subscriptions", i)
	}
	for i := range c.Maintenance {
		c.Maintenance[i].Line = l.line("maintenance", i)
	}
	for name, p := range c.SNMP.Profiles {
		p.Line = l.line("snmp", "profiles", name)
		c.SNMP.Profiles[name] = p
	}
}

// resolvePaths makes the file paths Config uses directly absolute, against
// the config's folder. Rule globs stay globs (internal/rules expands them);
// tls.ca_file and template files are resolved by notify against BaseDir.
func resolvePaths(c *Config) {
	c.StateDir = absFrom(c.BaseDir, c.StateDir)
	if t := c.HTTP.TLS; t != nil {
		t.CertFile, t.KeyFile = absFrom(c.BaseDir, t.CertFile), absFrom(c.BaseDir, t.KeyFile)
	}
	for i, g := range c.Rules {
		c.Rules[i] = absFrom(c.BaseDir, g)
	}
	if c.Cluster != nil && c.Cluster.TLS != nil {
		t := c.Cluster.TLS
		t.CertFile, t.KeyFile, t.CAFile = absFrom(c.BaseDir, t.CertFile), absFrom(c.BaseDir, t.KeyFile), absFrom(c.BaseDir, t.CAFile)
	}
	for _, t := range []*ClusterTLS{edgeTLS(c.Edge), hubTLS(c.Hub)} {
		if t != nil {
			t.CertFile, t.KeyFile, t.CAFile = absFrom(c.BaseDir, t.CertFile), absFrom(c.BaseDir, t.KeyFile), absFrom(c.BaseDir, t.CAFile)
		}
	}
}

func absFrom(base, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// resolveSecrets reads every *_file secret into its Secret field. Errors
// name the key and the file, never the value.
func (l *loader) resolveSecrets(c *Config) {
	resolveInto := func(dst *Secret, file string, where string, path ...any) {
		fileKey := path[len(path)-1].(string)
		v, err := ResolveSecret(*dst, file, c.BaseDir)
		if err != nil {
			l.bad(l.line(path...), "%s%s: %v", wherePrefix(where), fileKey, err)
			return
		}
		*dst = v
		l.warnSecretFile(file, c.BaseDir, path...)
	}
	if c.HTTP.TokenFile != "" {
		resolveInto(&c.HTTP.Token, c.HTTP.TokenFile, "http", "http", "token_file")
	}
	for _, name := range sortedKeys(c.SNMP.Profiles) {
		p := c.SNMP.Profiles[name]
		where := "snmp profile " + strconv.Quote(name)
		if p.CommunityFile != "" {
			resolveInto(&p.Community, p.CommunityFile, where, "snmp", "profiles", name, "community_file")
		}
		for _, k := range []struct {
			key string
			v   *SNMPKey
		}{{"auth", p.Auth}, {"priv", p.Priv}} {
			if k.v != nil && k.v.PassphraseFile != "" {
				resolveInto(&k.v.Passphrase, k.v.PassphraseFile, where+" "+k.key, "snmp", "profiles", name, k.key, "passphrase_file")
			}
		}
		c.SNMP.Profiles[name] = p
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
