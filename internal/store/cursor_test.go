package store

import "testing"

func TestSeqCursor(t *testing.T) {
	for _, seq := range []uint64{1, 35, 36, 1 << 40, ^uint64(0)} {
		c := SeqCursor('h', seq)
		if got, ok := ParseSeqCursor('h', c); !ok || got != seq {
			t.Errorf("ParseSeqCursor(%q) = %d, %v; want %d", c, got, ok, seq)
		}
		if _, ok := ParseSeqCursor('d', c); ok {
			t.Errorf("a history cursor %q taken for a dead-letter one", c)
		}
	}
	tests := []struct {
		c   string
		seq uint64
		ok  bool
	}{
		{"", 0, true},
		{"h", 0, false},
		{"h0", 0, false},
		{"h-1", 0, false},
		{"hzzzzzzzzzzzzzzzzz", 0, false}, // beyond uint64
		{"h!", 0, false},
		{"x1", 0, false},
		{"H1", 0, false},
	}
	for _, tt := range tests {
		if seq, ok := ParseSeqCursor('h', tt.c); seq != tt.seq || ok != tt.ok {
			t.Errorf("ParseSeqCursor(%q) = %d, %v; want %d, %v", tt.c, seq, ok, tt.seq, tt.ok)
		}
	}
}
