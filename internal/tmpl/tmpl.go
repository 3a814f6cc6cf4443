// Package tmpl renders text/templates within a budget (SPEC 14): at most
// MaxOutput bytes of output and MaxTime of work. Rule names and descriptions
// and destinations' template_file templates all render through Execute.
//
// text/template cannot be interrupted, so the budget is enforced where a
// template can spend without bound. Every write goes to a writer that
// refuses the byte past MaxOutput and any write past the deadline, which
// ends Execute there. Bound puts an empty write at the start of every block
// (template, range, if and with bodies), so loops and {{template}} calls
// (recursive ones included) meet the deadline even when they print nothing; and printf
// refuses widths and precisions above MaxOutput ("%999999999d" would build
// the whole string before the writer could refuse it). Between two writes a
// template does straight-line work bounded by its own size and its data's,
// so a render ends within MaxTime plus that. Nothing runs on another
// goroutine, nothing keeps running after Execute returns, and a render costs
// one deadline check per loop iteration more than plain text/template.
package tmpl

import (
	"bytes"
	"errors"
	"fmt"
	"text/template"
	"text/template/parse"
	"time"
)

// The budget of one render.
const (
	MaxOutput = 64 << 10
	MaxTime   = 100 * time.Millisecond
)

// ErrBudget is wrapped by the error of every render its budget stopped.
var ErrBudget = errors.New("render budget")

var (
	errOutput = fmt.Errorf("the output passed %d KiB (%w)", MaxOutput>>10, ErrBudget)
	errTime   = fmt.Errorf("rendering took longer than %v (%w)", MaxTime, ErrBudget)
	errWidth  = fmt.Errorf("printf: a width or precision above %d, or given by *, is not allowed (%w)", MaxOutput, ErrBudget)
)

// marker is the name of an empty template Bound adds: Execute's proof that
// the checks are in place.
const marker = "\x00budget"

// Bound puts the budget's checks into t and every template associated with
// it, once, after parsing and before the first Execute. It returns t.
func Bound(t *template.Template) *template.Template {
	if t.Lookup(marker) != nil {
		return t
	}
	for _, at := range t.Templates() {
		if at.Tree != nil && at.Tree.Root != nil {
			instrument(at.Tree.Root)
		}
	}
	t.Funcs(template.FuncMap{"printf": printf})
	if _, err := t.AddParseTree(marker, &parse.Tree{Root: &parse.ListNode{NodeType: parse.NodeList}}); err != nil {
		panic(err) // a fresh name with an empty tree cannot fail
	}
	return t
}

// instrument starts list, and every block in it, with an empty write.
func instrument(list *parse.ListNode) {
	if list == nil {
		return
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.RangeNode:
			instrument(n.List)
			instrument(n.ElseList)
		case *parse.IfNode:
			instrument(n.List)
			instrument(n.ElseList)
		case *parse.WithNode:
			instrument(n.List)
			instrument(n.ElseList)
		}
	}
	list.Nodes = append([]parse.Node{&parse.TextNode{NodeType: parse.NodeText, Pos: list.Pos, Text: []byte{}}}, list.Nodes...)
}

// Execute renders t, which Bound prepared, over data within the budget. A
// render the budget stopped returns an error wrapping ErrBudget.
func Execute(t *template.Template, data any) ([]byte, error) {
	if t.Lookup(marker) == nil {
		return nil, errors.New("template rendered without its budget (tmpl.Bound)")
	}
	w := &writer{deadline: time.Now().Add(MaxTime)}
	if err := t.Execute(w, data); err != nil {
		if errors.Is(err, errWidth) {
			return nil, errWidth // without text/template's wrapping, which names printf twice
		}
		return nil, err
	}
	return w.buf.Bytes(), nil
}

// writer collects the output up to MaxOutput and checks the deadline on
// every write, the empty ones Bound adds included.
type writer struct {
	buf      bytes.Buffer
	deadline time.Time
}

func (w *writer) Write(p []byte) (int, error) {
	switch {
	case time.Now().After(w.deadline):
		return 0, errTime
	case w.buf.Len()+len(p) > MaxOutput:
		return 0, errOutput
	}
	return w.buf.Write(p)
}

// printf is fmt.Sprintf without the widths and precisions that would build
// a string past the budget before the writer could refuse it.
func printf(format string, args ...any) (string, error) {
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		n := 0
	verb:
		for i++; i < len(format); i++ {
			c := format[i]
			switch {
			case c == '*':
				return "", errWidth
			case c >= '0' && c <= '9':
				if n = n*10 + int(c-'0'); n > MaxOutput {
					return "", errWidth
				}
				continue
			case c == '.' || c == '+' || c == '-' || c == '#' || c == ' ' || c == '[' || c == ']':
				n = 0
				continue
			}
			break verb
		}
	}
	return fmt.Sprintf(format, args...), nil
}
