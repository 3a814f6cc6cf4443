package store

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/testutil/logtest"
)

// A consumer that goes silent while records wait for it (here: paused
// through JetStream's own API, so it delivers nothing though the stream
// and its heartbeats are fine) is made again and the records come, in
// order, each once; the stall is counted and shown. Records the consumer
// delivers again while their evaluation is under way are not handed on
// twice.
func TestBusConsumerStallIsMadeAgain(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	var logs logtest.Logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bus's log:\n%s", logs.String())
		}
	})
	bus, err := s.Bus(ctx, BusOptions{Node: "nb1", Logger: logs.TextLogger(), Registerer: reg, StallAfter: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = bus.Run(ctx) }()
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			if err := bus.Publish([]byte(strconv.Itoa(i)), ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := make(chan string, 100)
	consumed := make(chan error, 1)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		consumed <- bus.Consume(cctx, func(_ string, _ uint64, data []byte, ack func()) {
			got <- string(data)
			if string(data) == "3" {
				// Held past the ack wait: JetStream delivers 3 and 4 again.
				go func() { time.Sleep(busAckWait + time.Second); ack() }()
				return
			}
			if string(data) != "4" { // 4 is acknowledged by 5's ack (AckAll)
				ack()
			}
		})
	}()
	receive := func(n int) []string {
		t.Helper()
		var out []string
		deadline := time.After(20 * time.Second)
		for len(out) < n {
			select {
			case r := <-got:
				out = append(out, r)
			case <-deadline:
				t.Fatalf("got %v within 20s, want %d records", out, n)
			}
		}
		return out
	}
	publish(0, 5)
	if r := receive(5); !slices.Equal(r, []string{"0", "1", "2", "3", "4"}) {
		t.Fatalf("got %v, want 0..4 in order", r)
	}
	// 3 and 4 come again after the ack wait and must not be handed on.
	time.Sleep(busAckWait + 2*time.Second)
	publish(5, 6)
	if r := receive(1); r[0] != "5" {
		t.Fatalf("after the ack wait got %v, want 5 (3 and 4 not again)", r)
	}
	if n := testutil.ToFloat64(bus.redelivered); n < 1 || bus.State(ctx).Redelivered != uint64(n) {
		t.Errorf("nocbridge_bus_redelivered_total = %v, shown %d; want ≥ 1 (3 and 4 delivered again), the same in the state", n, bus.State(ctx).Redelivered)
	}

	// Silence the consumer: JetStream keeps it, with its heartbeats, but
	// it delivers nothing.
	if _, err := bus.js.PauseConsumer(ctx, BusStream, busConsumer, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	publish(6, 9)
	if r := receive(3); !slices.Equal(r, []string{"6", "7", "8"}) {
		t.Fatalf("after the stall got %v, want 6, 7, 8 in order", r)
	}
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("records came %v after the consumer went silent, want within a few seconds", took)
	}
	if n := testutil.ToFloat64(bus.stalls); n != 1 {
		t.Errorf("nocbridge_bus_consumer_stalls_total = %v, want 1", n)
	}
	if st := bus.State(ctx); st.ConsumerStalls != 1 {
		t.Errorf("state shows %d consumer stalls, want 1: %+v", st.ConsumerStalls, st)
	}
	select {
	case r := <-got:
		t.Errorf("an extra record %q after the stall", r)
	case <-time.After(time.Second):
	}
	stop()
	if err := <-consumed; err != nil {
		t.Errorf("Consume: %v", err)
	}
}

// A Consume call hands each record on once: again-deliveries of records
// under evaluation are dropped, but a record never handed on is handed
// whatever its order (one a stale pull request took comes again after the
// ack wait, behind newer ones), and acknowledged ones are never again.
func TestBusProgressHandsEachRecordOnce(t *testing.T) {
	var p busProgress
	p.start(&jetstream.ConsumerInfo{AckFloor: jetstream.SequenceInfo{Stream: 10}})
	steps := []struct {
		do   string
		seq  uint64
		want bool
	}{
		{"hand", 10, false}, // acknowledged by the previous leader
		{"hand", 11, true},
		{"hand", 13, true}, // 12 went to a pull request nobody reads
		{"hand", 11, false},
		{"hand", 12, true}, // came again after the ack wait: never handed, so handed now
		{"hand", 12, false},
		{"ack", 12, false},
		{"hand", 12, false},
		{"hand", 13, false}, // handed, not yet acknowledged
		{"ack", 13, false},
		{"hand", 14, true},
	}
	for i, s := range steps {
		switch s.do {
		case "hand":
			if got := p.hand(s.seq); got != s.want {
				t.Errorf("step %d: hand(%d) = %v, want %v", i, s.seq, got, s.want)
			}
		case "ack":
			p.ack(s.seq)
		}
	}
	if d, a := p.position(); d != 14 || a != 13 {
		t.Errorf("position %d delivered, %d acknowledged; want 14, 13", d, a)
	}
}
