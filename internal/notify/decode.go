package notify

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
)

// DecodeConfig decodes a destination's type-specific keys (d.Node, the whole
// mapping) into out, a pointer to a struct with yaml tags. The keys every type
// shares (config.CommonDestinationKeys) are skipped; any other key that out
// does not declare is an error at its line, so a typo never silently turns a
// feature off. Errors are config.Errors (FILE:LINE: message).
func DecodeConfig(env Env, d config.Destination, out any) error {
	rv := reflect.ValueOf(out)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("notify.DecodeConfig: out must be a non-nil pointer, got %T", out)
	}
	if d.Node == nil {
		return nil // built in code, not from YAML: nothing type-specific to decode
	}
	node := d.Node
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	if node.Kind != yaml.MappingNode {
		return config.Errors{{File: env.ConfigFile, Line: node.Line, Msg: fmt.Sprintf("destination %q: must be a mapping", d.Name)}}
	}

	// A copy of the mapping without the common keys, so node.Decode only
	// sees what out declares.
	own := *node
	own.Content = nil
	for i := 0; i+1 < len(node.Content); i += 2 {
		if slices.Contains(config.CommonDestinationKeys, node.Content[i].Value) {
			continue
		}
		own.Content = append(own.Content, node.Content[i], node.Content[i+1])
	}

	var errs config.Errors
	add := func(line int, msg string) {
		errs = append(errs, config.Error{File: env.ConfigFile, Line: line, Msg: fmt.Sprintf("destination %q: %s", d.Name, msg)})
	}
	checkKeys(&own, rv.Elem().Type(), "", add)
	if len(errs) > 0 {
		return errs.Sorted()
	}
	if err := own.Decode(out); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			add(node.Line, err.Error())
			return errs
		}
		for _, m := range te.Errors {
			line, msg := splitYAMLLine(m, node.Line)
			add(line, msg)
		}
		return errs.Sorted()
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

func splitYAMLLine(s string, fallback int) (int, string) {
	if m := yamlLineRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return fallback, s
}

// yamlFields maps a struct type's yaml keys to their field types, following
// ",inline" fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous { // yaml.v3 inlines unexported embedded structs too
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		out[name] = f.Type
	}
	return out
}

// checkKeys reports mapping keys that the target type does not declare,
// recursing into nested structs, slices and maps of structs.
func checkKeys(node *yaml.Node, t reflect.Type, path string, add func(int, string)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node == nil || node.Kind == yaml.AliasNode {
		return
	}
	if _, ok := reflect.New(t).Interface().(yaml.Unmarshaler); ok {
		return // the type validates itself
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return // node.Decode reports the type mismatch with its line
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k := node.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				add(k.Line, fmt.Sprintf("unknown key %q (known: %s)", path+k.Value, knownKeys(fields)))
				continue
			}
			checkKeys(node.Content[i+1], ft, path+k.Value+".", add)
		}
	case reflect.Slice, reflect.Array:
		if node.Kind == yaml.SequenceNode {
			for i, c := range node.Content {
				checkKeys(c, t.Elem(), fmt.Sprintf("%s%d.", path, i), add)
			}
		}
	case reflect.Map:
		if node.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(node.Content); i += 2 {
				checkKeys(node.Content[i+1], t.Elem(), path+node.Content[i].Value+".", add)
			}
		}
	}
}

func knownKeys(fields map[string]reflect.Type) string {
	ks := make([]string, 0, len(fields))
	for k := range fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// KeyLine is the line of the value at a dotted key path ("basic_auth.password")
// in a destination's mapping node; for a missing key, the line of the deepest
// mapping found, so errors about absent keys point at their parent.
func KeyLine(d config.Destination, path string) int {
	if d.Node == nil {
		return d.Line
	}
	n := d.Node
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := n.Line
	if line == 0 {
		line = d.Line
	}
	for _, part := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// ConfigError is a problem with a destination key, as a config.Error at that
// key's line, prefixed with the destination's name. msg must not hold secrets.
func ConfigError(env Env, d config.Destination, path, format string, args ...any) config.Error {
	return config.Error{
		File: env.ConfigFile,
		Line: KeyLine(d, path),
		Msg:  fmt.Sprintf("destination %q: ", d.Name) + fmt.Sprintf(format, args...),
	}
}
