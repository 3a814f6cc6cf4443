package rules

import (
	"regexp"
	"strings"
)

// inWords is an expression's or a template's error in the project's words
// (SPEC 14: never a Go type name), wrapping the original.
type inWords struct{ err error }

func (e inWords) Error() string { return words(e.err.Error()) }
func (e inWords) Unwrap() error { return e.err }

var (
	// text/template's "template: NAME:LINE:COL: executing "NAME" at <ACTION>: …"
	// and, when parsing, "template: NAME:LINE: …".
	execPrefix  = regexp.MustCompile(`^template: [^:]*:(\d+):\d+: executing "[^"]*" at <(.*?)>: `)
	parsePrefix = regexp.MustCompile(`^template: [^:]*:(\d+): `)
	noField     = regexp.MustCompile(`can't evaluate field (\w+) in type (.+)$`)
	nilField    = regexp.MustCompile(`nil pointer evaluating .*\.(\w+)$`)
	exprField   = regexp.MustCompile(`^type rules\.deviceVars has no field (\w+)`)
	// expr's position, (LINE:COLUMN): expressions are one line.
	exprPos = regexp.MustCompile(`\(\d+:(\d+)\)$`)
	goTypes = []struct {
		re   *regexp.Regexp
		word string
	}{
		{regexp.MustCompile(`\*?inventory\.Device|rules\.deviceVars`), "device"},
		{regexp.MustCompile(`rules\.TemplateData`), "template data"},
		{regexp.MustCompile(`map\[string\](?:interface \{\}|any|string)`), "map"},
		{regexp.MustCompile(`\[\](?:interface \{\}|any|string)`), "list"},
		{regexp.MustCompile(`interface \{\}`), "value"},
		{regexp.MustCompile(`\b(?:float32|float64|u?int(?:8|16|32|64)?)\b`), "number"},
		{regexp.MustCompile(`\bstring\b`), "text"},
		{regexp.MustCompile(`\bbool\b`), "boolean"},
		{regexp.MustCompile(`<nil>`), "nothing"},
	}
)

// templateLine names a template's own line past its first: the error's
// FILE:LINE is already the key's.
func templateLine(line, sep string) string {
	if line == "1" {
		return ""
	}
	return "line " + line + sep
}

// words rewrites one error message: text/template's prefix becomes the
// template's line, a missing field names what there is instead, Go types
// become words (number, text, boolean, map, list, device) and expr's
// position a column.
func words(msg string) string {
	msg = oneLine(msg)
	if m := execPrefix.FindStringSubmatch(msg); m != nil {
		msg = templateLine(m[1], ", ") + "at <" + m[2] + ">: " + msg[len(m[0]):]
	} else if m := parsePrefix.FindStringSubmatch(msg); m != nil {
		msg = templateLine(m[1], ": ") + msg[len(m[0]):]
	}
	if m := noField.FindStringSubmatchIndex(msg); m != nil {
		field, typ := msg[m[2]:m[3]], msg[m[4]:m[5]]
		var say string
		switch {
		case typ == "rules.TemplateData":
			say = "there is no ." + field + ": templates see .Device, .Key, .Value and .Vars"
		case strings.HasSuffix(typ, "inventory.Device"):
			say = "a device has no field " + field + ": it has .Name, .Address, .Site, .Role and .Labels"
		default:
			say = typ + " has no field " + field
		}
		msg = msg[:m[0]] + say
	} else if m := nilField.FindStringSubmatchIndex(msg); m != nil {
		msg = msg[:m[0]] + "there is nothing to read ." + msg[m[2]:m[3]] + " from"
	} else if m := exprField.FindStringSubmatchIndex(msg); m != nil {
		msg = "device has no field " + msg[m[2]:m[3]] + " (it has name, address, site, role and labels)" + msg[m[1]:]
	}
	for _, t := range goTypes {
		msg = t.re.ReplaceAllString(msg, t.word)
	}
	return exprPos.ReplaceAllString(msg, "(column $1)")
}
