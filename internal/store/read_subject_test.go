package store_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/store"
)

// A subject's records come oldest first, others' left out; one that left
// the log (MaxAge, a deletion) is simply absent, and a subject whose
// records are all gone reads as empty at once: a read must never wait for
// a record that is no longer there (a CI run once hung 10 minutes on it).
func TestReadSubjectSkipsWhatLeft(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.Log(ctx, store.LogConfig{Name: "GONE", Subjects: []string{"g.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, m := range []struct{ subj, data string }{{"g.a", "a1"}, {"g.b", "b1"}, {"g.a", "a2"}, {"g.a", "a3"}, {"g.c", "c1"}} {
		seq, err := l.Append(ctx, m.subj, []byte(m.data))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	read := func(subject string) string {
		t.Helper()
		var got []string
		start := time.Now()
		if err := l.ReadSubject(ctx, subject, func(r store.Record) error { got = append(got, string(r.Data)); return nil }); err != nil {
			t.Fatalf("ReadSubject %s: %v", subject, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("ReadSubject %s took %v", subject, d)
		}
		return strings.Join(got, ",")
	}
	if got := read("g.a"); got != "a1,a2,a3" {
		t.Fatalf("g.a reads %q, want a1,a2,a3", got)
	}
	if err := l.Delete(ctx, seqs[2]); err != nil { // a2
		t.Fatal(err)
	}
	if got := read("g.a"); got != "a1,a3" {
		t.Fatalf("g.a after a2 left reads %q, want a1,a3", got)
	}
	if err := l.Delete(ctx, seqs[4]); err != nil { // c1, the last record of the log
		t.Fatal(err)
	}
	if got := read("g.c"); got != "" {
		t.Fatalf("g.c after its only record left reads %q, want nothing", got)
	}
	if got := read("g.none"); got != "" {
		t.Fatalf("a subject never written reads %q", got)
	}
}
