package store

import (
	"strconv"
	"strings"
)

// Cursors of paged lists read from a log: the sequence a page ended at,
// in base 36 behind a letter naming the list (h: alert history, d: dead
// letters), so one list's cursor is not taken for another's.

// SeqCursor is the cursor of the page that follows seq in the list kind.
func SeqCursor(kind byte, seq uint64) string {
	return string(kind) + strconv.FormatUint(seq, 36)
}

// ParseSeqCursor reads a cursor SeqCursor gave for the list kind; "" is
// the first page (0). ok is false for anything else.
func ParseSeqCursor(kind byte, c string) (seq uint64, ok bool) {
	if c == "" {
		return 0, true
	}
	s, ok := strings.CutPrefix(c, string(kind))
	seq, err := strconv.ParseUint(s, 36, 64)
	if !ok || err != nil || seq == 0 {
		return 0, false
	}
	return seq, true
}
