package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Strict is the one strict YAML decoder: the config, each destination's own
// keys and rule files all go through it. Every problem comes back at once,
// each at its line: an unknown key by name with the known keys listed, a
// repeated key, a value of the wrong kind described in words ("timeout must
// be a duration such as 10s, not a list"). No message quotes a value: it
// might be a secret in the wrong place.
type Strict struct {
	File   string   // named in every Error
	Name   string   // the whole document, for messages about it: "the config", "a rule file"
	Prefix string   // starts every message, such as `destination "hook": `
	Skip   []string // top-level keys another decoder owns: neither checked nor decoded
}

// Parse reads data as exactly one YAML document and returns its root node,
// aliases resolved; nil for an empty document.
func (s Strict) Parse(data []byte) (*yaml.Node, Errors) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, Errors{s.syntaxError(err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, Errors{s.syntaxError(err)}
	default:
		name := s.Name
		if name == "" {
			name = "the file"
		}
		return nil, Errors{s.errorAt(next.Line, "a second YAML document (after ---): %s must be one document", name)}
	}
	if len(doc.Content) == 1 {
		if n := resolve(doc.Content[0]); !isNull(n) {
			return n, nil
		}
	}
	return nil, nil
}

// Decode decodes n (a document node or its root) into out, a non-nil
// pointer, and returns every problem found. A value with a problem is left
// zero and all others are decoded, so a caller validating out afterwards can
// skip the lines of these Errors: they already explain what is there.
func (s Strict) Decode(n *yaml.Node, out any) Errors {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return Errors{s.errorAt(0, "cannot decode into %T: want a non-nil pointer", out)}
	}
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) != 1 {
			return nil
		}
		n = n.Content[0]
	}
	if n = resolve(n); n == nil || isNull(n) {
		return nil
	}
	w := &walk{Strict: s, checked: map[checkedNode]bool{}}
	w.checkShape(n, rv.Type().Elem(), "", "")

	if len(s.Skip) > 0 && n.Kind == yaml.MappingNode {
		n = withoutKeys(n, s.Skip)
	}
	if w.duplicates {
		// yaml decodes nothing of a mapping that repeats a key.
		n = firstKeys(n, map[*yaml.Node]*yaml.Node{})
	}
	if err := n.Decode(out); err != nil {
		w.decodeErrors(err)
	}
	return w.errs
}

func (s Strict) errorAt(line int, format string, args ...any) Error {
	return Error{File: s.File, Line: line, Msg: s.Prefix + fmt.Sprintf(format, args...)}
}

func (s Strict) syntaxError(err error) Error {
	line, msg := splitLine(err.Error())
	return s.errorAt(line, "invalid YAML: %s", msg)
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func splitLine(msg string) (int, string) {
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// walk is one Decode: the problems found so far.
type walk struct {
	Strict
	errs Errors
	// checked holds the nodes checkShape saw, so an anchor used again (an
	// alias, a merge key) is not reported twice.
	checked    map[checkedNode]bool
	duplicates bool
}

type checkedNode struct {
	n *yaml.Node
	t reflect.Type
}

func (w *walk) firstCheck(n *yaml.Node, t reflect.Type) bool {
	k := checkedNode{n, t}
	if w.checked[k] {
		return false
	}
	w.checked[k] = true
	return true
}

func (w *walk) add(line int, format string, args ...any) {
	w.errs = append(w.errs, w.errorAt(line, format, args...))
}

// decodeErrors adds what the yaml decoder found and the walk did not, which
// should be nothing. The value yaml quotes is left out.
func (w *walk) decodeErrors(err error) {
	flagged := map[int]bool{}
	for _, e := range w.errs {
		flagged[e.Line] = true
	}
	for _, m := range typeErrors(err) {
		line, msg := splitLine(m)
		if flagged[line] {
			continue
		}
		if sm := cannotUnmarshalRE.FindStringSubmatch(msg); sm != nil {
			msg = "cannot use " + describeTag(sm[1]) + " here"
		}
		w.add(line, "%s", msg)
	}
}

// typeErrors lists the messages of a yaml.TypeError, or err's own.
func typeErrors(err error) []string {
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		return te.Errors
	}
	return []string{err.Error()}
}

var cannotUnmarshalRE = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `.*`)? into .+$")

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkShape walks node n against the Go type t it decodes into, naming
// each problem by its key and where that key is: unknown and repeated keys,
// a list or mapping where something else belongs, a scalar that does not
// decode into its type.
func (w *walk) checkShape(n *yaml.Node, t reflect.Type, where, key string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	n = resolve(n)
	if n == nil || isNull(n) || !w.firstCheck(n, t) {
		return // an empty value: the zero value, or the default
	}
	want := kindFor(t)
	if want == 0 {
		return // an interface takes anything
	}
	subject := subjectOf(where, key, w.Name)
	if reflect.PointerTo(t).Implements(switchType) && n.Kind != yaml.MappingNode {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			w.add(n.Line, "%s must be false, true (the defaults) or a mapping, not %s", subject, describeNode(n))
		}
		return
	}
	if n.Kind != want {
		w.add(n.Line, "%s", strings.TrimSpace(fmt.Sprintf("%s must be %s, not %s", subject, describeType(t), describeNode(n))))
		return
	}
	switch {
	case t.Kind() == reflect.Struct:
		w.checkMapping(n, t, joinWhere(where, key))
	case want == yaml.ScalarNode:
		w.checkScalar(n, t, subject)
	case reflect.PointerTo(t).Implements(unmarshalerType):
		// a list or map type that reads its own content
	case t.Kind() == reflect.Map:
		w.checkKeyDuplicates(n, joinWhere(where, key))
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if kindFor(t.Elem()) == yaml.MappingNode {
				w.checkShape(v, t.Elem(), itemWhere(joinWhere(where, singular(key)), k.Value, ""), "")
			} else {
				w.checkShape(v, t.Elem(), where, key+"."+k.Value)
			}
		}
	default: // a list
		for i, item := range n.Content {
			if kindFor(t.Elem()) == yaml.MappingNode {
				w.checkShape(item, t.Elem(), itemWhere(joinWhere(where, singular(key)), nameOf(item), fmt.Sprintf("%s[%d]", joinWhere(where, key), i)), "")
			} else {
				w.checkShape(item, t.Elem(), where, fmt.Sprintf("%s[%d]", key, i))
			}
		}
	}
}

// checkScalar decodes n alone into a new t: a bad value is then reported at
// its own key, whatever else shares its line. A type with its own
// UnmarshalYAML (Duration) says what is wrong itself, and never quotes the
// value.
func (w *walk) checkScalar(n *yaml.Node, t reflect.Type, subject string) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	if !reflect.PointerTo(t).Implements(unmarshalerType) {
		w.add(n.Line, "%s must be %s, not %s", subject, describeType(t), describeNode(n))
		return
	}
	for _, m := range typeErrors(err) {
		_, msg := splitLine(m)
		w.add(n.Line, "%s: %s", subject, msg)
	}
}

// checkMapping checks a mapping's keys against struct type t. A struct with
// its own UnmarshalYAML (Destination) takes keys it does not declare: it
// hands them on. At the top, keys in Skip belong to another decoder.
func (w *walk) checkMapping(n *yaml.Node, t reflect.Type, where string) {
	fields := yamlFields(t)
	open := reflect.PointerTo(t).Implements(unmarshalerType) && !reflect.PointerTo(t).Implements(switchType)
	w.checkKeyDuplicates(n, where)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			for _, m := range mergeSources(v) {
				if w.firstCheck(m, t) {
					w.checkMapping(m, t, where)
				}
			}
			continue
		}
		if where == "" && slices.Contains(w.Skip, k.Value) {
			continue
		}
		ft, ok := fields[k.Value]
		switch {
		case ok:
			w.checkShape(v, ft, where, k.Value)
		case open:
		case where == "":
			w.add(k.Line, "unknown key %q (known: %s)", k.Value, knownKeys(fields))
		default:
			w.add(k.Line, "unknown key %q in %s (known: %s)", k.Value, where, knownKeys(fields))
		}
	}
}

func (w *walk) checkKeyDuplicates(n *yaml.Node, where string) {
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
			w.add(k.Line, "duplicate key %q%s (first at line %d)", k.Value, in, line)
			w.duplicates = true
			continue
		}
		first[k.Value] = k.Line
	}
}

// withoutKeys is a copy of mapping n without keys.
func withoutKeys(n *yaml.Node, keys []string) *yaml.Node {
	c := *n
	c.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !slices.Contains(keys, n.Content[i].Value) {
			c.Content = append(c.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &c
}

// firstKeys is a deep copy of n in which each mapping keeps only the first
// of a repeated key, the one checkKeyDuplicates does not report. Aliases
// point into the copy.
func firstKeys(n *yaml.Node, copies map[*yaml.Node]*yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if c, ok := copies[n]; ok {
		return c
	}
	c := *n
	copies[n] = &c
	c.Alias = firstKeys(n.Alias, copies)
	c.Content = make([]*yaml.Node, 0, len(n.Content))
	if n.Kind != yaml.MappingNode {
		for _, child := range n.Content {
			c.Content = append(c.Content, firstKeys(child, copies))
		}
		return &c
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.ShortTag() != "!!merge" {
			if seen[k.Value] {
				continue
			}
			seen[k.Value] = true
		}
		c.Content = append(c.Content, firstKeys(k, copies), firstKeys(n.Content[i+1], copies))
	}
	return &c
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

// yamlFields maps a struct's yaml keys to their field types as the yaml
// decoder reads them, ",inline" structs adding their keys.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		inline := slices.Contains(strings.Split(opts, ","), "inline")
		if name == "-" || !f.IsExported() && !(f.Anonymous && inline) { // yaml inlines unexported embedded structs too
			continue
		}
		if inline {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				maps.Copy(out, yamlFields(ft))
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // the decoder's default
		}
		out[name] = f.Type
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

// kindFor is the node kind t decodes from; 0 for an interface, which takes
// any.
func kindFor(t reflect.Type) yaml.Kind {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Interface:
		return 0
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

// subjectOf names a value in messages: `icmp: count`, a list entry by
// where alone, the whole document by its name.
func subjectOf(where, key, document string) string {
	switch {
	case key != "":
		return wherePrefix(where) + key
	case where != "":
		return where
	}
	return document // may be "": then Prefix names it, or the line alone
}

func wherePrefix(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
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
