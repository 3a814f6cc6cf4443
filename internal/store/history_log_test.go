package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/store"
)

// AppendBatch stores every message in order on an Async log, and a restart
// (a clean close) keeps them.
func TestAppendBatchAsyncSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := store.LogConfig{Name: "HIST", Subjects: []string{"h.>"}, Async: true, MaxAge: time.Hour}
	s := open(t, dir)
	l := openLog(t, s, cfg)
	var msgs []store.Message
	for i := range 300 {
		msgs = append(msgs, store.Message{Subject: fmt.Sprintf("h.%d", i%3), Data: fmt.Appendf(nil, "m%d", i)})
	}
	n, err := l.AppendBatch(ctx, msgs)
	if err != nil || n != len(msgs) {
		t.Fatalf("AppendBatch = %d, %v; want %d stored", n, err, len(msgs))
	}
	if n, err := l.AppendBatch(ctx, nil); n != 0 || err != nil {
		t.Fatalf("AppendBatch(nil) = %d, %v", n, err)
	}
	if _, err := l.AppendBatch(ctx, []store.Message{{Subject: "elsewhere", Data: []byte("x")}}); err == nil {
		t.Fatal("a subject outside the log was taken")
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	l = openLog(t, s, cfg)
	got := readAll(t, l)
	if len(got) != len(msgs) {
		t.Fatalf("after a restart %d records, want %d", len(got), len(msgs))
	}
	for i, r := range got {
		if r.Seq != uint64(i+1) || r.Subject != msgs[i].Subject || string(r.Data) != string(msgs[i].Data) {
			t.Fatalf("record %d = [%d %s %q], want [%d %s %q]", i, r.Seq, r.Subject, r.Data, i+1, msgs[i].Subject, msgs[i].Data)
		}
	}
}

// MaxAge removes records once they are older than it: history's retention.
func TestLogMaxAgeExpires(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	// The young record outlives the old one by 700 ms: room for a loaded
	// machine's polls to see it alone (CI missed a 200 ms window once).
	l := openLog(t, s, store.LogConfig{Name: "SHORT", Subjects: []string{"s.>"}, Async: true, MaxAge: time.Second})
	appendAll(t, l, store.Record{Subject: "s.a", Data: []byte("old")})
	time.Sleep(700 * time.Millisecond)
	young := appendAll(t, l, store.Record{Subject: "s.a", Data: []byte("young")})[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := l.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Records == 1 && st.First == young {
			break // the old one went, the young one is still there
		}
		if st.Records == 0 || time.Now().After(deadline) {
			t.Fatalf("state %+v; want only the young record (sequence %d) left", st, young)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		if st, _ := l.State(ctx); st.Records == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the young record never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := l.Last(ctx, "s.a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Last after expiry: %v, want ErrNotFound", err)
	}
}

// ReadBack reads newest first, filtered by subject, from below a sequence,
// across windows of every size; ReadSubject reads one subject oldest first;
// Last its newest.
func TestReadBackAndSubjects(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	l := openLog(t, s, store.LogConfig{Name: "IDX", Subjects: []string{"i.>"}, OnePerSubject: true})
	// 1000 records: dev "a" on every 7th, "b" on the rest; every 10th
	// replaces an earlier one (a hole where that one was).
	var all []store.Message
	for i := range 1000 {
		dev := "b"
		if i%7 == 0 {
			dev = "a"
		}
		key := i
		if i%10 == 9 {
			key = i - 5
		}
		all = append(all, store.Message{Subject: fmt.Sprintf("i.%s.%d", dev, key), Data: fmt.Appendf(nil, "%d", i)})
	}
	if _, err := l.AppendBatch(ctx, all); err != nil {
		t.Fatal(err)
	}
	// What each subject holds now, by sequence.
	live := map[string]uint64{}
	for i, m := range all {
		live[m.Subject] = uint64(i + 1)
	}
	want := func(filter string, before uint64) []uint64 {
		var out []uint64
		for seq := uint64(len(all)); seq >= 1; seq-- {
			m := all[seq-1]
			if live[m.Subject] != seq || (before > 0 && seq >= before) {
				continue
			}
			if filter == "i.>" || (filter == "i.a.*" && m.Subject[2] == 'a') {
				out = append(out, seq)
			}
		}
		return out
	}
	for _, tc := range []struct {
		filter string
		before uint64
		limit  int
	}{
		{"i.>", 0, 10}, {"i.>", 0, 100000}, {"i.>", 500, 37}, {"i.>", 2, 5}, {"i.>", 1, 5},
		{"i.a.*", 0, 3}, {"i.a.*", 0, 100000}, {"i.a.*", 700, 20}, {"i.c.*", 0, 10},
	} {
		var got []uint64
		err := l.ReadBack(ctx, tc.filter, tc.before, func(r store.Record) (bool, error) {
			if r.Subject != all[r.Seq-1].Subject || string(r.Data) != string(all[r.Seq-1].Data) {
				t.Fatalf("record %d is [%s %q]", r.Seq, r.Subject, r.Data)
			}
			got = append(got, r.Seq)
			return len(got) < tc.limit, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		w := want(tc.filter, tc.before)
		w = w[:min(len(w), tc.limit)]
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("ReadBack(%s, before %d, %d): %v\nwant %v", tc.filter, tc.before, tc.limit, got, w)
		}
	}
	stop := errors.New("stop")
	if err := l.ReadBack(ctx, "i.>", 0, func(store.Record) (bool, error) { return true, stop }); !errors.Is(err, stop) {
		t.Fatalf("ReadBack returned %v, want fn's error", err)
	}

	var subj []string
	if err := l.ReadSubject(ctx, "i.a.*", func(r store.Record) error {
		subj = append(subj, string(r.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(subj) != len(want("i.a.*", 0)) || subj[0] != "0" {
		t.Fatalf("ReadSubject(i.a.*) = %v", subj)
	}
	if err := l.ReadSubject(ctx, "i.none", func(store.Record) error { t.Fatal("a record on an empty subject"); return nil }); err != nil {
		t.Fatal(err)
	}
	r, err := l.Last(ctx, "i.b.4")
	if err != nil || string(r.Data) != "9" {
		t.Fatalf("Last(i.b.4) = %q, %v; want the replacement written 10th", r.Data, err)
	}
}

// A Message with Replace keeps one record on its subject; the others keep
// every record.
func TestAppendBatchReplace(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	l := openLog(t, s, store.LogConfig{Name: "MIXED", Subjects: []string{"m.>"}, Replace: true})
	if _, err := l.AppendBatch(ctx, []store.Message{
		{Subject: "m.e.1", Data: []byte("e1")}, {Subject: "m.s.1", Data: []byte("s1"), Replace: true},
		{Subject: "m.e.1", Data: []byte("e2")}, {Subject: "m.s.1", Data: []byte("s2"), Replace: true},
	}); err != nil {
		t.Fatal(err)
	}
	wantRecords(t, readAll(t, l),
		store.Record{Seq: 1, Subject: "m.e.1", Data: []byte("e1")},
		store.Record{Seq: 3, Subject: "m.e.1", Data: []byte("e2")},
		store.Record{Seq: 4, Subject: "m.s.1", Data: []byte("s2")})
}
