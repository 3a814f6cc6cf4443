package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/relay"
)

// openHubAndEdge opens a hub store and an edge store of site whose leaf
// connection goes through a relay the test can cut.
func openHubAndEdge(t *testing.T, site string, buffer config.Size) (hub, edge *store.Store, link *relay.Link) {
	t.Helper()
	ctx := t.Context()
	hub, err := store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: quiet(),
		Hub: &config.Hub{Listen: "127.0.0.1:0", Sites: []string{site}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	if hub.LeafAddr() == "" {
		t.Fatal("hub has no leaf listener")
	}
	link = relay.New(t, hub.LeafAddr())
	edge, err = store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: quiet(),
		Edge: &config.Edge{Hub: "nats-leaf://" + link.Addr(), Site: site, Buffer: buffer}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = edge.Close() })
	waitFor(t, 10*time.Second, "leaf connection", func() (bool, string) {
		return hub.LeafConnected(store.EdgeServerName(site)) && edge.LeafConnected(""), "not connected"
	})
	return hub, edge, link
}

// collector reads a site's records on the hub.
type collector struct {
	mu   sync.Mutex
	recs []store.EdgeRecord
}

func (c *collector) add(r store.EdgeRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r)
	return nil
}

func (c *collector) snapshot() []store.EdgeRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]store.EdgeRecord(nil), c.recs...)
}

func readSite(t *testing.T, hub *store.Store, site string) *collector {
	t.Helper()
	src, err := hub.EdgeSource(t.Context(), site)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Read(ctx, c.add) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func appendN(t *testing.T, b *store.EdgeBuffer, from, n int, size int) {
	t.Helper()
	pad := make([]byte, size)
	for i := from; i < from+n; i++ {
		if _, err := b.Append(t.Context(), store.EdgeObservation, fmt.Appendf(nil, "%06d%s", i, pad)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkOrder checks the records are 0..n-1 in order, with no gap.
func checkOrder(t *testing.T, recs []store.EdgeRecord, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("hub has %d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("%06d", i); string(r.Data[:6]) != want || r.Origin != uint64(i+1) || r.Gap != 0 || r.Kind != store.EdgeObservation {
			t.Fatalf("record %d: %q origin %d gap %d kind %s, want %s at origin %d, no gap", i, r.Data[:6], r.Origin, r.Gap, r.Kind, want, i+1)
		}
	}
}

func TestEdgeSourcedInOrderAcrossOutage(t *testing.T) {
	hub, edge, link := openHubAndEdge(t, "BR1", 64<<20)
	buf, err := edge.EdgeBuffer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := readSite(t, hub, "BR1")
	appendN(t, buf, 0, 100, 10)
	waitFor(t, 15*time.Second, "first 100 records at the hub", func() (bool, string) {
		n := len(got.snapshot())
		return n == 100, fmt.Sprint(n, " records")
	})

	link.Cut()
	waitFor(t, 10*time.Second, "leaf connection down", func() (bool, string) {
		return !hub.LeafConnected(store.EdgeServerName("BR1")) && !edge.LeafConnected(""), "still connected"
	})
	appendN(t, buf, 100, 400, 10)
	time.Sleep(500 * time.Millisecond)
	if n := len(got.snapshot()); n != 100 {
		t.Fatalf("hub got %d records while cut off, want 100", n)
	}
	st := buf.Status(t.Context())
	if st.Connected || st.Messages != 500 || st.Pending < 400 || st.Dropped != 0 {
		t.Errorf("edge status while cut off = %+v, want not connected, 500 messages, ≥400 pending, none dropped", st)
	}

	link.Restore()
	start := time.Now()
	waitFor(t, 30*time.Second, "the records buffered during the outage at the hub", func() (bool, string) {
		n := len(got.snapshot())
		return n == 500, fmt.Sprint(n, " records")
	})
	t.Logf("replay: 400 records buffered during the outage arrived %v after the link was back", time.Since(start).Round(time.Millisecond))
	checkOrder(t, got.snapshot(), 500)
}

func TestEdgeBufferBoundDropsOldestCounted(t *testing.T) {
	hub, edge, link := openHubAndEdge(t, "BR2", 1<<20)
	buf, err := edge.EdgeBuffer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := readSite(t, hub, "BR2")
	appendN(t, buf, 0, 10, 1000)
	waitFor(t, 15*time.Second, "first 10 records at the hub", func() (bool, string) {
		n := len(got.snapshot())
		return n == 10, fmt.Sprint(n, " records")
	})
	_ = buf.Status(t.Context()) // the edge notes what the hub took
	link.Cut()
	waitFor(t, 10*time.Second, "leaf connection down", func() (bool, string) { return !edge.LeafConnected(""), "connected" })
	// 3000 records of ~1 KiB into a 1 MiB buffer: the oldest go.
	appendN(t, buf, 10, 3000, 1000)
	st := buf.Status(t.Context())
	if st.Bytes > 1<<20 || st.Dropped == 0 || st.Messages+st.Dropped != 3000 {
		t.Errorf("edge status = %+v, want at most 1MiB held and held + dropped = the 3000 written during the outage", st)
	}
	link.Restore()
	waitFor(t, 30*time.Second, "what the buffer held at the hub", func() (bool, string) {
		n := len(got.snapshot())
		return uint64(n) == 10+st.Messages, fmt.Sprint(n, " records")
	})
	recs := got.snapshot()
	var gaps uint64
	for i, r := range recs {
		gaps += r.Gap
		if i > 0 && r.Origin != recs[i-1].Origin+1+r.Gap {
			t.Fatalf("record %d: origin %d after %d with gap %d: out of order", i, r.Origin, recs[i-1].Origin, r.Gap)
		}
	}
	if gaps != st.Dropped {
		t.Errorf("hub counted %d records missing, the edge %d dropped", gaps, st.Dropped)
	}
	t.Logf("bound: 3000 records of 1 KiB into a 1 MiB buffer: %d kept and delivered, %d dropped (counted at the edge and as a gap at the hub)", st.Messages, gaps)
}
