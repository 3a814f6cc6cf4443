package store_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
	"github.com/nocbridge/nocbridge/internal/testutil/tmpfs"
)

// A real full disk: an 8 MiB tmpfs as the state directory, filled by a
// file. The store must stop writing (fast, with the reason), say so, and
// write again once the file is gone, without being reopened, keeping what
// it held before.
func TestFullDiskRecoversInProcess(t *testing.T) {
	mnt := tmpfs.Mount(t, 8<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := prometheus.NewRegistry()
	s, err := store.Open(ctx, store.Options{Dir: filepath.Join(mnt, "state"), Logger: testLogger(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	changes := make(chan store.Health, 8)
	s.OnChange(func(h store.Health) { changes <- h })
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go s.Run(runCtx)

	l, err := s.Log(ctx, store.LogConfig{Name: "Q", Subjects: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Bucket(ctx, "alerts")
	if err != nil {
		t.Fatal(err)
	}
	before, err := l.Append(ctx, "q", []byte("before"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}

	filler := tmpfs.Fill(t, mnt)
	// The first write meets the full disk; the server's log line marks
	// the store unhealthy before the client's write times out.
	if _, err := l.Append(ctx, "q", make([]byte, 64<<10)); err == nil {
		t.Fatal("append on a full disk succeeded")
	}
	h := waitHealth(t, changes, false)
	if h.Reason == "" || h.Since.IsZero() {
		t.Fatalf("unhealthy without a reason or a time: %+v", h)
	}
	t.Logf("unhealthy: %s", h.Reason)
	if got := promtest.Value(t, reg, "nocbridge_store_healthy"); got != 0 {
		t.Fatalf("nocbridge_store_healthy = %v while the disk is full", got)
	}
	// Refused at once, not after JetStream's 5 s timeout, and recognisably.
	start := time.Now()
	err = b.Put(ctx, "k2", []byte("during"))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Put on a full disk: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("a refused write took %v", d)
	}
	if s.Health().Refused == 0 {
		t.Fatal("refused writes not counted")
	}
	// A batch (alert history) is refused as fast, with nothing stored.
	start = time.Now()
	if n, err := l.AppendBatch(ctx, []store.Message{{Subject: "q", Data: []byte("a")}, {Subject: "q", Data: []byte("b")}}); n != 0 || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("AppendBatch on a full disk: %d stored, %v; want 0, ErrUnavailable", n, err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("a refused batch took %v", d)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitHealth(t, changes, true)
	t.Logf("writing again %v after the space came back", time.Since(freed).Round(time.Millisecond))
	if d := time.Since(freed); d > 5*time.Second {
		t.Fatalf("recovery took %v, want a few seconds", d)
	}
	if got := promtest.Value(t, reg, "nocbridge_store_healthy"); got != 1 {
		t.Fatalf("nocbridge_store_healthy = %v after recovery", got)
	}
	after, err := l.Append(ctx, "q", []byte("after"))
	if err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	if after <= before {
		t.Fatalf("sequence went back: %d after %d", after, before)
	}
	if err := b.Put(ctx, "k2", []byte("after")); err != nil {
		t.Fatalf("put after recovery: %v", err)
	}
	rec, err := l.Get(ctx, before)
	if err != nil || string(rec.Data) != "before" {
		t.Fatalf("record stored before the outage: %q, %v", rec.Data, err)
	}
	all, err := b.All(ctx)
	if err != nil || string(all["k"]) != "before" || string(all["k2"]) != "after" {
		t.Fatalf("bucket after recovery: %q, %v", all, err)
	}
}

func waitHealth(t *testing.T, changes <-chan store.Health, ok bool) store.Health {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case h := <-changes:
			if h.OK == ok {
				return h
			}
		case <-deadline:
			t.Fatalf("store health did not become ok=%v within 30s", ok)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
