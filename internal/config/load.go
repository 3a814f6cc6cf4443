package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the config file at path, fills in defaults, resolves relative
// paths and *_file secrets, and validates everything. On any problem it
// returns Errors: every problem found, sorted, each as FILE:LINE: message
// with FILE the path as given. No message ever holds a secret's value.
func Load(path string) (*Config, error) {
	l := &loader{file: path, scalars: map[int][]scalarRef{}, flagged: map[int]bool{}, checked: map[checkedNode]bool{}}
	cfg := l.load()
	if err := l.errs.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loader carries one Load: the parsed document, for key lines and presence,
// and the errors found so far.
type loader struct {
	file string // as given, for messages
	root *yaml.Node
	errs Errors
	// scalars names the key of each scalar value by line, so the decoder's
	// line-only messages can say which key they are about.
	scalars map[int][]scalarRef
	// flagged lines already carry a shape or type error; validating the
	// zero value the decoder left there would only repeat it.
	flagged map[int]bool
	// duplicateKeys: the decoder skips a whole mapping that repeats a key.
	duplicateKeys bool
	// checked holds the nodes checkShape saw, so an anchor used again (an
	// alias, a merge key) is not reported twice.
	checked map[checkedNode]bool
}

type checkedNode struct {
	n *yaml.Node
	t reflect.Type
}

func (l *loader) firstCheck(n *yaml.Node, t reflect.Type) bool {
	k := checkedNode{n, t}
	if l.checked[k] {
		return false
	}
	l.checked[k] = true
	return true
}

// scalarRef is where a scalar sits; value is kept only to tell apart
// several scalars on one line and never goes into a message.
type scalarRef struct{ where, key, value string }

// refAt names the scalar a decoder message at line is about: the only one
// on the line, or the one whose value the message quotes; failing that, the
// section they share.
func (l *loader) refAt(line int, msg string) scalarRef {
	refs := l.scalars[line]
	if len(refs) == 1 {
		return refs[0]
	}
	var match []scalarRef
	for _, r := range refs {
		quoted := []string{"`" + r.value + "`", strconv.Quote(r.value)}
		if len(r.value) > 10 { // the decoder shortens long values
			quoted = append(quoted, "`"+r.value[:7]+"...`")
		}
		if slices.ContainsFunc(quoted, func(q string) bool { return strings.Contains(msg, q) }) {
			match = append(match, r)
		}
	}
	if len(match) == 1 {
		return match[0]
	}
	if len(refs) > 0 && !slices.ContainsFunc(refs, func(r scalarRef) bool { return r.where != refs[0].where }) {
		return scalarRef{where: refs[0].where} // at least the section is known
	}
	return scalarRef{}
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
	data, err := os.ReadFile(l.file)
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
	if !l.parse(data) {
		return nil
	}
	l.checkShape(l.root, reflect.TypeFor[Config](), "", "")
	for _, e := range l.errs {
		l.flagged[e.Line] = true
	}

	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		l.decodeErrors(err)
	}
	if l.duplicateKeys {
		// What the decoder left would fail validation for reasons the user
		// cannot see.
		return nil
	}

	l.setLines(&cfg)
	applyDefaults(&cfg, l.has)
	cfg.File, cfg.BaseDir = abs, filepath.Dir(abs)
	l.resolveSecrets(&cfg)
	l.validate(&cfg) // before resolvePaths, so messages show paths as written
	resolvePaths(&cfg)
	return &cfg
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func splitLine(msg string) (int, string) {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// parse reads the single YAML document into l.root, a mapping.
func (l *loader) parse(data []byte) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		l.syntaxError(err)
		return false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		l.syntaxError(err)
		return false
	default:
		l.add(next.Line, "a second YAML document (after ---): the config must be one document")
		return false
	}
	l.root = &yaml.Node{Kind: yaml.MappingNode, Line: 1} // an empty file is an empty config
	if len(doc.Content) == 1 {
		if n := resolve(doc.Content[0]); !isNull(n) {
			l.root = n
		}
	}
	if l.root.Kind != yaml.MappingNode {
		l.add(l.root.Line, "the config must be a mapping of settings (state_dir, http, devices, …), not %s", describeNode(l.root))
		return false
	}
	return true
}

func (l *loader) syntaxError(err error) {
	line, msg := splitLine(err.Error())
	l.add(line, "invalid YAML: %s", msg)
}

// decodeErrors turns the decoder's messages into Errors at their lines,
// skipping lines checkShape already explained. The decoder's quoted value
// is left out: it might be a secret in the wrong place.
func (l *loader) decodeErrors(err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		l.add(splitLine(err.Error()))
		return
	}
	seen := maps.Clone(l.flagged)
	for _, m := range te.Errors {
		line, msg := splitLine(m)
		if seen[line] {
			continue
		}
		l.flagged[line] = true
		ref := l.refAt(line, msg)
		if sm := cannotUnmarshalRE.FindStringSubmatch(msg); sm != nil {
			what := "value"
			if ref.key != "" {
				what = ref.key
			}
			l.add(line, "%s%s must be %s, not %s", wherePrefix(ref.where), what, describeGoType(sm[2]), describeTag(sm[1]))
			continue
		}
		if sm := notFoundRE.FindStringSubmatch(msg); sm != nil {
			l.add(line, "unknown key %q", sm[1]) // checkShape reports these first; kept as a safety net
			continue
		}
		if ref.key != "" {
			msg = ref.key + ": " + msg
		}
		l.add(line, "%s%s", wherePrefix(ref.where), msg)
	}
}

var (
	cannotUnmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `.*`)? into (.+)$")
	notFoundRE        = regexp.MustCompile(`^field (.+) not found in type .+$`)
)

func wherePrefix(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	destinationType = reflect.TypeFor[Destination]()
)

// checkShape walks node n against the Go type t it decodes into. It reports
// unknown and duplicate keys and a list or mapping where something else
// belongs, each at its line, naming the key and where it is; the decoder
// (with KnownFields) would say "field x not found in type config.ICMP". It
// also notes the key of every scalar for decodeErrors.
func (l *loader) checkShape(n *yaml.Node, t reflect.Type, where, key string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	n = resolve(n)
	if n == nil || !l.firstCheck(n, t) {
		return
	}
	if n.Kind == yaml.ScalarNode {
		l.scalars[n.Line] = append(l.scalars[n.Line], scalarRef{where, key, n.Value})
		if isNull(n) {
			return // an empty value: the zero value, or the default
		}
	}
	if want := kindFor(t); n.Kind != want {
		if key == "" { // a list entry, named by where
			l.add(n.Line, "%s must be %s, not %s", where, describeType(t), describeNode(n))
		} else {
			l.add(n.Line, "%s%s must be %s, not %s", wherePrefix(where), key, describeType(t), describeNode(n))
		}
		return
	}
	if t != destinationType && reflect.PointerTo(t).Implements(unmarshalerType) {
		return // Duration and Privileged check their own values
	}
	switch t.Kind() {
	case reflect.Struct:
		l.checkMapping(n, t, joinWhere(where, key))
	case reflect.Slice:
		for i, item := range n.Content {
			if kindFor(t.Elem()) == yaml.MappingNode {
				l.checkShape(item, t.Elem(), itemWhere(joinWhere(where, singular(key)), nameOf(item), fmt.Sprintf("%s[%d]", joinWhere(where, key), i)), "")
			} else {
				l.checkShape(item, t.Elem(), where, fmt.Sprintf("%s[%d]", key, i))
			}
		}
	case reflect.Map:
		l.checkKeyDuplicates(n, joinWhere(where, key))
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if kindFor(t.Elem()) == yaml.MappingNode {
				l.checkShape(v, t.Elem(), itemWhere(joinWhere(where, singular(key)), k.Value, ""), "")
			} else {
				l.checkShape(v, t.Elem(), where, key+"."+k.Value)
			}
		}
	}
}

// checkMapping checks a mapping's keys against struct type t. A destination
// takes any further key: its type's decoder checks those.
func (l *loader) checkMapping(n *yaml.Node, t reflect.Type, where string) {
	fields := yamlFields(t)
	l.checkKeyDuplicates(n, where)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			for _, m := range mergeSources(v) {
				if l.firstCheck(m, t) {
					l.checkMapping(m, t, where)
				}
			}
			continue
		}
		ft, ok := fields[k.Value]
		switch {
		case ok:
			l.checkShape(v, ft, where, k.Value)
		case t == destinationType:
		case where == "":
			l.add(k.Line, "unknown key %q (known: %s)", k.Value, knownKeys(fields))
		default:
			l.add(k.Line, "unknown key %q in %s (known: %s)", k.Value, where, knownKeys(fields))
		}
	}
}

func (l *loader) checkKeyDuplicates(n *yaml.Node, where string) {
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.ShortTag() == "!!merge" {
			continue
		}
		if line, dup := first[k.Value]; dup {
			in := ""
			if where != "" {
				in = " in " + where
			}
			l.add(k.Line, "duplicate key %q%s (first at line %d)", k.Value, in, line)
			l.duplicateKeys = true
			continue
		}
		first[k.Value] = k.Line
	}
}

// mergeSources lists the mappings a merge key (<<) pulls in.
func mergeSources(v *yaml.Node) []*yaml.Node {
	v = resolve(v)
	if v == nil {
		return nil
	}
	if v.Kind == yaml.SequenceNode {
		var out []*yaml.Node
		for _, c := range v.Content {
			if c = resolve(c); c != nil && c.Kind == yaml.MappingNode {
				out = append(out, c)
			}
		}
		return out
	}
	if v.Kind == yaml.MappingNode {
		return []*yaml.Node{v}
	}
	return nil
}

// yamlFields maps a struct's yaml keys to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // the decoder's default
		}
		out[name] = f.Type
	}
	if t == destinationType { // the rest is the type's, checked by its decoder
		for k := range out {
			if !slices.Contains(CommonDestinationKeys, k) {
				delete(out, k)
			}
		}
	}
	return out
}

func knownKeys(fields map[string]reflect.Type) string {
	ks := make([]string, 0, len(fields))
	for k := range fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

func kindFor(t reflect.Type) yaml.Kind {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return yaml.MappingNode
	case reflect.Slice, reflect.Array:
		return yaml.SequenceNode
	default:
		return yaml.ScalarNode
	}
}

func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Duration]():
		return "a duration such as 10s"
	case reflect.TypeFor[Privileged]():
		return "auto, true or false"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	default:
		return "a string"
	}
}

// describeGoType describes a type as the decoder names it ("int",
// "config.Retry", "[]string").
func describeGoType(name string) string {
	switch {
	case strings.HasPrefix(name, "[]"):
		return "a list"
	case strings.HasPrefix(name, "map["):
		return "a mapping"
	case strings.HasPrefix(name, "int"):
		return "an integer"
	case strings.HasPrefix(name, "uint"):
		return "a non-negative integer"
	case strings.HasPrefix(name, "float"):
		return "a number"
	case name == "bool":
		return "true or false"
	case name == "string", name == "config.Secret":
		return "a string"
	case strings.HasPrefix(name, "config."):
		return "a mapping"
	default:
		return name
	}
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return describeTag(strings.TrimPrefix(n.ShortTag(), "!!"))
}

func describeTag(tag string) string {
	switch tag {
	case "map":
		return "a mapping"
	case "seq":
		return "a list"
	case "int":
		return "an integer"
	case "float":
		return "a number"
	case "bool":
		return "a boolean"
	case "null":
		return "empty"
	case "str":
		return "a string"
	default:
		return "!!" + tag
	}
}

func joinWhere(where, key string) string {
	switch {
	case where == "":
		return key
	case key == "":
		return where
	}
	return where + " " + key
}

// itemWhere names a list or map entry for messages: `device "core-sw1"`, or
// by index when it has no name.
func itemWhere(kind, name, byIndex string) string {
	if name == "" {
		return byIndex
	}
	return kind + " " + strconv.Quote(name)
}

// singular turns a list key into the name of one entry ("devices" → "device").
func singular(key string) string { return strings.TrimSuffix(key, "s") }

func nameOf(item *yaml.Node) string {
	if v := lookup(resolve(item), "name"); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// lookup returns the value of key in mapping n, following merge keys.
func lookup(n *yaml.Node, key string) *yaml.Node {
	v, _ := lookupKey(n, key)
	return v
}

// lookupKey returns the value and key nodes of key in mapping n; an explicit
// key wins over a merged one, as in the decoder.
func lookupKey(n *yaml.Node, key string) (value, keyNode *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value == key && k.ShortTag() != "!!merge" {
			return resolve(n.Content[i+1]), k
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].ShortTag() == "!!merge" {
			for _, m := range mergeSources(n.Content[i+1]) {
				if v, k := lookupKey(m, key); v != nil {
					return v, k
				}
			}
		}
	}
	return nil, nil
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
	for i, g := range c.Rules {
		c.Rules[i] = absFrom(c.BaseDir, g)
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
