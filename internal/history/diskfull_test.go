package history_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
	"github.com/nocbridge/nocbridge/internal/testutil/tmpfs"
)

// On a real full disk, history writes are refused at once and their
// entries dropped and counted, never held; once space is back, history is
// written again.
func TestFullDiskDropsAndCounts(t *testing.T) {
	mnt := tmpfs.Mount(t, 8<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(mnt, "state"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	health := make(chan store.Health, 8)
	st.OnChange(func(h store.Health) { health <- h })
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go st.Run(runCtx)
	reg := prometheus.NewRegistry()
	h, err := history.New(ctx, st, history.Options{Retention: time.Hour, Logger: quiet(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(runCtx) }()
	defer func() { stop(); <-done }()

	ev := down("full-disk", "sw1")
	record := func(n int) {
		for i := range n {
			h.Record(ev, history.Entry{Kind: history.KindAttempt, Status: event.StatusActive, Attempt: i + 1, Detail: string(make([]byte, 1000))})
		}
	}
	filler := tmpfs.Fill(t, mnt)
	// Entries go on coming until the store notices the full disk; from
	// then on each batch is refused and counted as dropped.
	deadline := time.After(30 * time.Second)
	for waiting := true; waiting; {
		record(50)
		select {
		case hh := <-health:
			waiting = hh.OK
		case <-deadline:
			t.Fatal("the store never noticed the full disk")
		case <-time.After(20 * time.Millisecond):
		}
	}
	before := h.Stats().Dropped[history.DropStore]
	record(100)
	for h.Stats().Dropped[history.DropStore] < before+100 {
		select {
		case <-deadline:
			t.Fatalf("entries recorded on a full disk not counted as dropped: %+v", h.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := promtest.Value(t, reg, "nocbridge_history_dropped_total", "reason", history.DropStore); got < 100 {
		t.Fatalf("nocbridge_history_dropped_total{reason=store} = %v", got)
	}
	if w := h.Stats().Waiting; w != 0 {
		t.Fatalf("%d entries held while the disk is full; want none", w)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for recovered := false; !recovered; {
		select {
		case hh := <-health:
			recovered = hh.OK
		case <-deadline:
			t.Fatal("the store did not write again after the space came back")
		}
	}
	written := h.Stats().Written
	h.Record(ev, history.Entry{Kind: history.KindResolved, Status: event.StatusResolved})
	for h.Stats().Written <= written {
		select {
		case <-deadline:
			t.Fatalf("history not written after the space came back: %+v", h.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	a, err := h.Get(ctx, ev.InstanceID)
	if err != nil || a.Timeline[len(a.Timeline)-1].Kind != history.KindResolved {
		t.Fatalf("after recovery: %v, %+v", err, a.Timeline)
	}
}
