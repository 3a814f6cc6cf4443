package config

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem in a config or rule file, at a line.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found, reported all at once.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sorted orders errors by file then line, stable for equal positions.
func (es Errors) Sorted() Errors {
	return byPosition(es, func(e Error) (string, int) { return e.File, e.Line })
}

// Err returns nil when there are no errors.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es.Sorted()
}

// AsErrors flattens err into Errors; an error that carries no position is
// attributed to file.
func AsErrors(err error, file string) Errors {
	if err == nil {
		return nil
	}
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	var pe *Error
	if errors.As(err, &pe) {
		return Errors{*pe}
	}
	return Errors{{File: file, Msg: err.Error()}}
}
