package notify

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
)

// DecodeConfig decodes a destination's type-specific keys (d.Node, the whole
// mapping) into out, a pointer to a struct with yaml tags, with the strict
// decoder config uses. The keys every type shares (config.CommonDestinationKeys)
// are skipped; any other key that out does not declare is an error at its
// line, so a typo never silently turns a feature off. Errors are
// config.Errors (FILE:LINE: destination "NAME": message).
func DecodeConfig(env Env, d config.Destination, out any) error {
	skip := config.CommonDestinationKeys
	if _, ok := out.(interface{ takesDigest() }); ok {
		// ConfigCheck.Digest reads it: a mapping or a boolean.
		skip = append(slices.Clip(skip), "digest")
	}
	s := config.Strict{File: env.ConfigFile, Prefix: fmt.Sprintf("destination %q: ", d.Name), Skip: skip}
	return s.Decode(d.Node, out).Err()
}

// valueNode is the value of key in mapping n (a document's too), following
// aliases and merge keys (<<) as the decoder does: a key of n's own wins.
func valueNode(n *yaml.Node, key string) *yaml.Node {
	n = resolveAlias(n)
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = resolveAlias(n.Content[0])
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k, v := n.Content[i], n.Content[i+1]; {
		case k.ShortTag() == "!!merge":
			if v = resolveAlias(v); v != nil && v.Kind == yaml.SequenceNode {
				merged = append(merged, v.Content...)
			} else {
				merged = append(merged, v)
			}
		case k.Value == key:
			return resolveAlias(v)
		}
	}
	for _, m := range merged {
		if v := valueNode(m, key); v != nil {
			return v
		}
	}
	return nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
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
