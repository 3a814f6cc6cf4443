package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
)

// The bus stores a record once per message id within its window, delivers
// records in order from where the acknowledgements stopped, and delivers
// an unacknowledged record again to the next consumer.
func TestBus(t *testing.T) {
	s := open(t, t.TempDir())
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus, err := s.Bus(ctx, store.BusOptions{Node: "nb1", Logger: quiet(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bus(ctx, store.BusOptions{Logger: quiet()}); err == nil {
		t.Error("a bus without a node name opened")
	}
	published := make(chan error, 1)
	go func() { published <- bus.Run(ctx) }()

	for _, r := range []struct{ data, id string }{{"a", "trap-1"}, {"b", ""}, {"a", "trap-1"}, {"c", ""}} {
		if err := bus.Publish([]byte(r.data), r.id); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for promtest.Value(t, reg, "nocbridge_bus_published_total") < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("published %v of 4 after 10s", promtest.Value(t, reg, "nocbridge_bus_published_total"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := promtest.Value(t, reg, "nocbridge_bus_duplicates_total"); d != 1 {
		t.Errorf("nocbridge_bus_duplicates_total = %v, want 1 (trap-1 published twice)", d)
	}
	st := bus.State(ctx)
	if st.Messages != 3 || st.Pending != 3 || st.DuplicatesDropped != 1 || st.DuplicateWindow != "1m0s" || st.Error != "" {
		t.Errorf("state %+v, want 3 records stored, 3 pending, 1 duplicate dropped, window 1m0s", st)
	}

	// The first consumer acknowledges "a" and leaves "b" unacknowledged.
	got := consume(t, bus, 2, func(data string) bool { return data == "a" })
	if want := []string{"a", "b"}; !slices.Equal(got[:2], want) {
		t.Fatalf("first consumer got %v, want %v first", got, want)
	}
	for end := time.Now().Add(5 * time.Second); bus.State(ctx).Acknowledged < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("a's acknowledgement not recorded after 5s: %+v", bus.State(ctx))
		}
	}
	// The next one (a new leader) gets "b" again, then "c": in order from
	// the first record not acknowledged.
	started := time.Now()
	got = consume(t, bus, 2, func(string) bool { return true })
	if want := []string{"b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("next consumer got %v, want %v: b again, in order, and never a", got, want)
	}
	if took := time.Since(started); took > 3*time.Second {
		t.Errorf("the unacknowledged record came again after %v, want at once (not after the ack wait)", took)
	}
	if c := promtest.Value(t, reg, "nocbridge_bus_consumed_total"); c < 4 {
		t.Errorf("nocbridge_bus_consumed_total = %v, want at least 4 deliveries", c)
	}
	cancel()
	if err := <-published; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// consume runs a consumer until it has seen n records (15 s at most),
// acknowledging those ack accepts.
func consume(t *testing.T, bus *store.Bus, n int, ack func(string) bool) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []string
	err := bus.Consume(ctx, func(node string, _ uint64, data []byte, acknowledge func()) {
		if node != "nb1" {
			t.Errorf("record %q from node %q, want nb1", data, node)
		}
		got = append(got, string(data))
		if ack(string(data)) {
			acknowledge()
		}
		if len(got) == n {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < n {
		t.Fatalf("consumer got %v within 15s, want %d records", got, n)
	}
	return got
}

// A full publish queue drops the record, counted, and never blocks.
func TestBusFullQueue(t *testing.T) {
	s := open(t, t.TempDir())
	reg := prometheus.NewRegistry()
	bus, err := s.Bus(context.Background(), store.BusOptions{Node: "nb1", Logger: quiet(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// Run is not running: nothing leaves the queue.
	var refused int
	for i := range 20000 {
		if err := bus.Publish(fmt.Appendf(nil, "%d", i), ""); err != nil {
			refused++
		}
	}
	if refused == 0 || promtest.Value(t, reg, "nocbridge_bus_publish_failures_total") != float64(refused) {
		t.Errorf("%d refused, nocbridge_bus_publish_failures_total %v; want the queue's overflow refused and counted",
			refused, promtest.Value(t, reg, "nocbridge_bus_publish_failures_total"))
	}
}
