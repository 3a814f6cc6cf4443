package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/store"
)

var testLog = store.LogConfig{Name: "TEST_LOG", Description: "records for a test", Subjects: []string{"test.log.>"}}

func openLog(t *testing.T, s *store.Store, cfg store.LogConfig) *store.Log {
	t.Helper()
	l, err := s.Log(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Log(%s): %v", cfg.Name, err)
	}
	return l
}

func appendAll(t *testing.T, l *store.Log, recs ...store.Record) []uint64 {
	t.Helper()
	var seqs []uint64
	for _, r := range recs {
		seq, err := l.Append(context.Background(), r.Subject, r.Data)
		if err != nil {
			t.Fatalf("Append(%s): %v", r.Subject, err)
		}
		seqs = append(seqs, seq)
	}
	return seqs
}

func readAll(t *testing.T, l *store.Log) []store.Record {
	t.Helper()
	var out []store.Record
	if err := l.ReadAll(context.Background(), func(r store.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return out
}

func wantRecords(t *testing.T, got []store.Record, want ...store.Record) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b store.Record) bool {
		return a.Seq == b.Seq && a.Subject == b.Subject && string(a.Data) == string(b.Data)
	}) {
		t.Fatalf("records %s; want %s", fmtRecords(got), fmtRecords(want))
	}
}

func fmtRecords(rs []store.Record) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "[%d %s %q]", r.Seq, r.Subject, r.Data)
	}
	return b.String()
}

func wantState(t *testing.T, l *store.Log, want store.LogState) {
	t.Helper()
	got, err := l.State(context.Background())
	if err != nil || got != want {
		t.Fatalf("State = %+v, %v; want %+v", got, err, want)
	}
}

func TestLogRestartKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	l := openLog(t, s, testLog)
	if got := readAll(t, l); len(got) != 0 {
		t.Fatalf("a new log holds %s", fmtRecords(got))
	}
	wantState(t, l, store.LogState{})
	recs := []store.Record{
		{Seq: 1, Subject: "test.log.a", Data: []byte("one")},
		{Seq: 2, Subject: "test.log.b", Data: []byte("two")},
		{Seq: 3, Subject: "test.log.a", Data: []byte("three")},
	}
	if seqs := appendAll(t, l, recs...); !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Fatalf("Append returned sequences %v; want 1, 2, 3", seqs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, dir)
	defer s.Close()
	l = openLog(t, s, testLog)
	wantRecords(t, readAll(t, l), recs...)
	wantState(t, l, store.LogState{First: 1, Last: 3, Records: 3})
	r, err := l.Get(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	wantRecords(t, []store.Record{r}, recs[1])
	if seq := appendAll(t, l, store.Record{Subject: "test.log.c", Data: []byte("four")}); seq[0] != 4 {
		t.Fatalf("Append after reopening returned sequence %d; want 4", seq[0])
	}
}

func TestLogPurgeBelow(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	l := openLog(t, s, testLog)
	var recs []store.Record
	for i := 1; i <= 5; i++ {
		recs = append(recs, store.Record{Seq: uint64(i), Subject: "test.log.x", Data: fmt.Appendf(nil, "r%d", i)})
	}
	appendAll(t, l, recs...)
	if err := l.PurgeBelow(context.Background(), 4); err != nil {
		t.Fatalf("PurgeBelow(4): %v", err)
	}
	wantState(t, l, store.LogState{First: 4, Last: 5, Records: 2})
	wantRecords(t, readAll(t, l), recs[3:]...)
	if _, err := l.Get(context.Background(), 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a purged record = %v; want ErrNotFound", err)
	}
	// Purging everything keeps the sequence going.
	if err := l.PurgeBelow(context.Background(), 6); err != nil {
		t.Fatal(err)
	}
	wantState(t, l, store.LogState{First: 6, Last: 5, Records: 0})
	if got := readAll(t, l); len(got) != 0 {
		t.Fatalf("records after purging all: %s", fmtRecords(got))
	}
	if seq := appendAll(t, l, store.Record{Subject: "test.log.x"}); seq[0] != 6 {
		t.Fatalf("Append after purging returned sequence %d; want 6", seq[0])
	}
}

func TestLogMissingRecordIsNotFound(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	l := openLog(t, s, testLog)
	appendAll(t, l, store.Record{Subject: "test.log.a", Data: []byte("kept")}, store.Record{Subject: "test.log.a", Data: []byte("deleted")})
	if _, err := l.Get(ctx, 99); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "TEST_LOG") {
		t.Errorf("Get(99) = %v; want ErrNotFound naming the log", err)
	}
	if err := l.Delete(ctx, 99); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Delete(99) = %v; want ErrNotFound", err)
	}
	if err := l.Delete(ctx, 2); err != nil {
		t.Fatalf("Delete(2): %v", err)
	}
	if _, err := l.Get(ctx, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a deleted record = %v; want ErrNotFound", err)
	}
	if err := l.Delete(ctx, 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second Delete(2) = %v; want ErrNotFound", err)
	}
	wantState(t, l, store.LogState{First: 1, Last: 2, Records: 1})
	wantRecords(t, readAll(t, l), store.Record{Seq: 1, Subject: "test.log.a", Data: []byte("kept")})
}

func TestLogOnePerSubjectKeepsTheLast(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	cfg := testLog
	cfg.OnePerSubject = true
	l := openLog(t, s, cfg)
	appendAll(t, l,
		store.Record{Subject: "test.log.a", Data: []byte("a1")},
		store.Record{Subject: "test.log.b", Data: []byte("b1")},
		store.Record{Subject: "test.log.a", Data: []byte("a2")})
	want := []store.Record{{Seq: 2, Subject: "test.log.b", Data: []byte("b1")}, {Seq: 3, Subject: "test.log.a", Data: []byte("a2")}}
	wantRecords(t, readAll(t, l), want...)
	if _, err := l.Get(context.Background(), 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a replaced record = %v; want ErrNotFound", err)
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	l = openLog(t, s, cfg)
	wantRecords(t, readAll(t, l), want...)
	wantState(t, l, store.LogState{First: 2, Last: 3, Records: 2})
}

func TestLogReadAllStopsAtAnError(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	l := openLog(t, s, testLog)
	appendAll(t, l, store.Record{Subject: "test.log.a"}, store.Record{Subject: "test.log.a"}, store.Record{Subject: "test.log.a"})
	stop := errors.New("enough")
	calls := 0
	err := l.ReadAll(context.Background(), func(store.Record) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ReadAll = %v after %d calls; want the callback's error after 1", err, calls)
	}
}

func TestLogAppendOutsideItsSubjectsFails(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	l := openLog(t, s, testLog)
	openLog(t, s, store.LogConfig{Name: "OTHER_LOG", Subjects: []string{"other.>"}})
	for _, subj := range []string{"nowhere.at.all", "other.x"} {
		if _, err := l.Append(context.Background(), subj, []byte("x")); err == nil || !strings.Contains(err.Error(), "TEST_LOG") {
			t.Errorf("Append(%s) = %v; want an error naming the log", subj, err)
		}
	}
	wantState(t, l, store.LogState{})
	if _, err := s.Log(context.Background(), store.LogConfig{Name: "bad.name", Subjects: []string{"bad"}}); err == nil || !strings.Contains(err.Error(), `"bad.name"`) {
		t.Errorf("Log(bad.name) = %v; want an error naming the log", err)
	}
}
