package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
)

// memBus keeps what is published and delivers it, recording which
// records were acknowledged.
type memBus struct {
	mu      sync.Mutex
	records []struct {
		data []byte
		id   string
	}
	acked []int
	full  bool
}

func (m *memBus) Publish(data []byte, msgID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.full {
		return errors.New("queue full")
	}
	m.records = append(m.records, struct {
		data []byte
		id   string
	}{data, msgID})
	return nil
}

func (m *memBus) Consume(ctx context.Context, handle func(node string, seq uint64, data []byte, ack func())) error {
	for i, r := range m.records {
		handle("nb2", uint64(i+1), r.data, func() {
			m.mu.Lock()
			m.acked = append(m.acked, i)
			m.mu.Unlock()
		})
	}
	<-ctx.Done()
	return nil
}

func (m *memBus) ackedNow() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.acked)
}

func TestBridge(t *testing.T) {
	inv := inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1"})
	bus := &memBus{}
	reg := prometheus.NewRegistry()
	b, err := NewBridge(bus, BridgeOptions{Inventory: func() *inventory.Inventory { return inv }, Logger: slog.New(slog.DiscardHandler), Registerer: reg,
		ID: func(o observation.Observation) string { return string(o.Source) + "-id" }})
	if err != nil {
		t.Fatal(err)
	}
	sw1, _ := inv.Device("sw1")
	at := time.Unix(1000, 0)
	b.Emit(observation.Observation{Source: observation.ICMP, Device: sw1, Time: at, Vars: map[string]any{"up": true}})
	b.Emit(observation.Observation{Source: observation.Trap, Device: inventory.UnknownSender(netip.MustParseAddr("192.0.2.9")), Time: at})
	b.Emit(observation.Observation{Source: observation.ICMP}) // no device: no wire form
	bus.full = true
	b.Emit(observation.Observation{Source: observation.ICMP, Device: sw1, Time: at})
	bus.full = false
	b.Emit(observation.Observation{Source: observation.ICMP, Device: &inventory.Device{Name: "gone-sw"}, Time: at}) // not in the leader's inventory
	bus.records = append(bus.records[:2], append([]struct {
		data []byte
		id   string
	}{{[]byte("not an observation"), ""}}, bus.records[2:]...)...)
	if ids := []string{bus.records[0].id, bus.records[1].id}; !slices.Equal(ids, []string{"icmp-id", "trap-id"}) {
		t.Errorf("message ids %v, want the ID option's", ids)
	}

	evaluated := make(chan observation.Observation, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- b.Evaluate(ctx, func(node string, o observation.Observation) {
			if node != "nb2" {
				t.Errorf("node %q, want nb2", node)
			}
			evaluated <- o
		})
	}()
	var got []observation.Observation
	for range 2 {
		select {
		case o := <-evaluated:
			got = append(got, o)
		case <-time.After(5 * time.Second):
			t.Fatalf("evaluated %+v within 5s, want 2 observations", got)
		}
	}
	if got[0].Seq != 1 || got[1].Seq != 2 {
		t.Errorf("bus sequences %d, %d; want the records' own, 1 and 2", got[0].Seq, got[1].Seq)
	}
	if got[0].Device != sw1 || got[0].Vars["up"] != true || got[1].Device.Name != "192.0.2.9" {
		t.Fatalf("evaluated %+v, want sw1's round and the unknown sender's trap", got)
	}
	select {
	case o := <-evaluated:
		t.Fatalf("evaluated %+v too: only two records were readable observations of known devices", o)
	case <-time.After(100 * time.Millisecond):
	}
	// Nothing acknowledged before the manager says so: the unreadable
	// records wait, as the two before them are not acknowledged.
	if a := bus.ackedNow(); len(a) != 0 {
		t.Fatalf("acknowledged %v before any commit", a)
	}
	got[0].Ack()
	got[1].Ack()
	got[1].Ack() // once only
	// The unreadable records after them are acknowledged once the last
	// observation before them is, through the last of them (acks are
	// cumulative): the bus never waits on a record nobody will ack.
	if a := bus.ackedNow(); !slices.Equal(a, []int{0, 1, 3}) {
		t.Errorf("acknowledged %v, want records 0 and 1, then 3 (covering the unreadable 2 and 3)", a)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	shown := b.Dropped()
	for reason, want := range map[string]float64{"encode": 1, "publish": 1, "decode": 1, "unknown_device": 1} {
		if v := promtest.Value(t, reg, "nocbridge_bus_dropped_total", "reason", reason); v != want {
			t.Errorf("nocbridge_bus_dropped_total{reason=%q} = %v, want %v", reason, v, want)
		}
		if float64(shown[reason]) != want {
			t.Errorf("Dropped()[%q] = %d, want %v (the status page shows it)", reason, shown[reason], want)
		}
	}

	// Unreadable records with nothing before them awaiting commit are
	// acknowledged at once.
	bus2 := &memBus{}
	bus2.records = append(bus2.records, struct {
		data []byte
		id   string
	}{[]byte("{"), ""})
	b2, err := NewBridge(bus2, BridgeOptions{Inventory: func() *inventory.Inventory { return inv }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan error, 1)
	go func() {
		done2 <- b2.Evaluate(ctx2, func(string, observation.Observation) { t.Error("an unreadable record was evaluated") })
	}()
	for end := time.Now().Add(5 * time.Second); len(bus2.ackedNow()) == 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel2()
	<-done2
	if a := bus2.ackedNow(); !slices.Equal(a, []int{0}) {
		t.Errorf("acknowledged %v, want the unreadable record at once", a)
	}
}
