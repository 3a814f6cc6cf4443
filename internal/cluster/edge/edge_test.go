package edge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/cluster/edge"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/logtest"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
	"github.com/nocbridge/nocbridge/internal/testutil/relay"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sink is the hub's emit: what rules would see, in order.
type sink struct {
	mu  sync.Mutex
	obs []observation.Observation
}

func (s *sink) emit(o observation.Observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.obs = append(s.obs, o)
}

func (s *sink) snapshot() []observation.Observation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]observation.Observation(nil), s.obs...)
}

// of is the observations of source src.
func of(obs []observation.Observation, src observation.Source) []observation.Observation {
	var out []observation.Observation
	for _, o := range obs {
		if o.Source == src {
			out = append(out, o)
		}
	}
	return out
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, within, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rig is a hub and an edge of site BR1 on loopback, the leaf connection
// through a relay the test cuts.
type rig struct {
	inv       *inventory.Inventory
	hub, edge *store.Store
	link      *relay.Link
	pub       *edge.Publisher
	h         *edge.Hub
	tracker   *devstate.Tracker
	got       *sink
	hubReg    *prometheus.Registry
	edgeReg   *prometheus.Registry
}

func newRig(t *testing.T, buffer config.Size, after time.Duration) *rig {
	t.Helper()
	ctx := t.Context()
	r := &rig{got: &sink{}, hubReg: prometheus.NewRegistry(), edgeReg: prometheus.NewRegistry()}
	r.inv = inventory.Of(
		inventory.Device{Name: "br-sw1", Address: "192.0.2.1", Site: "BR1"},
		inventory.Device{Name: "br-sw2", Address: "192.0.2.2", Site: "BR1"},
		inventory.Device{Name: "hq-core", Address: "192.0.2.100", Site: "HQ"},
	)
	var err error
	if r.hub, err = store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: quiet(), Hub: &config.Hub{Listen: "127.0.0.1:0", Sites: []string{"BR1"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.hub.Close() })
	r.link = relay.New(t, r.hub.LeafAddr())
	// The edge syncs every second, not every write: the bound test writes
	// thousands of records.
	if r.edge, err = store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: quiet(), SyncInterval: time.Second,
		Edge: &config.Edge{Hub: "nats-leaf://" + r.link.Addr(), Site: "BR1", Buffer: buffer}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.edge.Close() })
	buf, err := r.edge.EdgeBuffer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.pub, err = edge.NewPublisher(buf, edge.PublisherOptions{Site: "BR1", Logger: quiet(), Registerer: r.edgeReg}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the leaf connection", func() (bool, string) {
		return r.hub.LeafConnected(store.EdgeServerName("BR1")), "not connected"
	})
	if r.tracker, err = devstate.New(nil); err != nil {
		t.Fatal(err)
	}
	if r.h, err = edge.NewHub(ctx, edge.HubOptions{Store: r.hub, Sites: []string{"BR1"}, UnreachableAfter: after,
		Inventory: func() *inventory.Inventory { return r.inv }, Devices: r.tracker, Logger: quiet(), Registerer: r.hubReg}); err != nil {
		t.Fatal(err)
	}
	run := func(f func(context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = f(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	run(r.pub.Run)
	run(func(ctx context.Context) error {
		return r.h.Run(ctx, func(o observation.Observation) { r.tracker.Record(o); r.got.emit(o) })
	})
	return r
}

// ping makes the edge's ICMP round n of device dev.
func (r *rig) ping(dev string, n int, up bool) {
	d, _ := r.inv.Device(dev)
	loss := 0.0
	if !up {
		loss = 100
	}
	r.pub.Emit(observation.Observation{Source: observation.ICMP, Device: d, Time: time.Unix(1_800_000_000+int64(n), 0),
		Vars: map[string]any{"up": up, "loss": loss, "rtt_ms": float64(n), "rtt_min_ms": 0.0, "rtt_max_ms": 0.0, "sent": 1, "recv": 1}})
}

// checkRounds checks the hub got ICMP rounds 0..n-1 of br-sw1 in order.
func checkRounds(t *testing.T, obs []observation.Observation, n int) {
	t.Helper()
	icmp := of(obs, observation.ICMP)
	if len(icmp) != n {
		t.Fatalf("hub got %d ICMP rounds, want %d", len(icmp), n)
	}
	for i, o := range icmp {
		if o.Device.Name != "br-sw1" || o.Vars["rtt_ms"] != float64(i) || !o.Time.Equal(time.Unix(1_800_000_000+int64(i), 0)) {
			t.Fatalf("round %d: %s rtt %v at %v, want br-sw1's round %d, in order", i, o.Device.Name, o.Vars["rtt_ms"], o.Time, i)
		}
		if err := o.CheckVars(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}

func states(r *rig) string {
	s := ""
	for _, st := range r.tracker.List(r.inv) {
		s += st.Name + "=" + st.State + " "
	}
	return s
}

func TestHubAndEdgeThroughAnOutage(t *testing.T) {
	r := newRig(t, 64<<20, time.Second)
	waitFor(t, 10*time.Second, "the site heard (one edge observation: reachable)", func() (bool, string) {
		e := of(r.got.snapshot(), observation.Edge)
		return len(e) == 1 && e[0].Vars["unreachable"] == false, fmt.Sprint(len(e), " edge observations")
	})
	for i := range 50 {
		r.ping("br-sw1", i, true)
	}
	waitFor(t, 10*time.Second, "50 rounds at the hub", func() (bool, string) {
		n := len(of(r.got.snapshot(), observation.ICMP))
		return n == 50, fmt.Sprint(n)
	})
	if s := states(r); s != "br-sw1=up br-sw2=unknown hq-core=unknown " {
		t.Errorf("states %q", s)
	}

	// The WAN goes: the edge keeps buffering its devices' failures.
	r.link.Cut()
	cut := time.Now()
	for i := 50; i < 250; i++ {
		r.ping("br-sw1", i, false)
	}
	waitFor(t, 10*time.Second, "the site unreachable", func() (bool, string) {
		e := of(r.got.snapshot(), observation.Edge)
		return len(e) == 2, fmt.Sprint(len(e), " edge observations")
	})
	t.Logf("collector unreachable raised %v after the cut (unreachable_after 1s)", time.Since(cut).Round(10*time.Millisecond))
	e := of(r.got.snapshot(), observation.Edge)[1]
	if e.Device.Name != "BR1" || e.Device.Role != inventory.SiteRole || e.Vars["unreachable"] != true || e.Vars["devices"] != 2 {
		t.Errorf("edge observation %s %v, want BR1's site record, unreachable, 2 devices", e.Device.Name, e.Vars)
	}
	if err := e.CheckVars(); err != nil {
		t.Error(err)
	}
	if s := states(r); s != "br-sw1=unknown br-sw2=unknown hq-core=unknown " {
		t.Errorf("states while cut off %q, want the site's devices unknown", s)
	}
	if n := len(of(r.got.snapshot(), observation.ICMP)); n != 50 {
		t.Errorf("hub got %d rounds while cut off, want 50", n)
	}
	time.Sleep(1500 * time.Millisecond) // longer than unreachable_after again: still one
	if n := len(of(r.got.snapshot(), observation.Edge)); n != 2 {
		t.Errorf("%d edge observations, want exactly one unreachable after the reachable", n)
	}
	st := r.h.Status(t.Context())
	if len(st.Sites) != 1 || !st.Sites[0].Unreachable || st.Sites[0].Connected || st.Sites[0].LastContactSeconds < 1 {
		t.Errorf("hub status while cut off %+v", st)
	}
	if es := r.pub.Info(t.Context()); es.Connected || es.Pending < 200 || es.Role != "edge" {
		t.Errorf("edge status while cut off %+v, want not connected, ≥200 pending", es)
	}

	// The WAN is back: everything arrives, in order; the alert resolves.
	r.link.Restore()
	back := time.Now()
	waitFor(t, 30*time.Second, "all 250 rounds at the hub", func() (bool, string) {
		n := len(of(r.got.snapshot(), observation.ICMP))
		return n == 250, fmt.Sprint(n)
	})
	t.Logf("replay: 200 rounds buffered during the outage arrived %v after the link was back", time.Since(back).Round(time.Millisecond))
	obs := r.got.snapshot()
	checkRounds(t, obs, 250)
	edges := of(obs, observation.Edge)
	if len(edges) != 3 || edges[2].Vars["unreachable"] != false {
		t.Fatalf("edge observations %d, want reachable, unreachable, reachable", len(edges))
	}
	// The site is back before its replayed rounds are evaluated.
	for i, o := range obs {
		if o.Source == observation.Edge && o.Vars["unreachable"] == false && i > 0 {
			if next := obs[i+1]; next.Source != observation.ICMP || next.Vars["rtt_ms"] != 50.0 {
				t.Errorf("after the site is back comes %s %v, want round 50", next.Source, next.Vars)
			}
		}
	}
	if s := states(r); s != "br-sw1=down br-sw2=unknown hq-core=unknown " {
		t.Errorf("states after the replay %q, want br-sw1 down (its last round), br-sw2 never probed", s)
	}
	if err := testutil.GatherAndCompare(r.hubReg, strings.NewReader(`
# HELP nocbridge_edge_dropped_total Records an edge site dropped from its full buffer before the hub had them (gaps in the edge's sequence).
# TYPE nocbridge_edge_dropped_total counter
nocbridge_edge_dropped_total{site="BR1"} 0
# HELP nocbridge_edge_unreachable 1 while the edge site's collector is cut off (silent longer than hub.unreachable_after).
# TYPE nocbridge_edge_unreachable gauge
nocbridge_edge_unreachable{site="BR1"} 0
`), "nocbridge_edge_dropped_total", "nocbridge_edge_unreachable"); err != nil {
		t.Error(err)
	}
}

func TestEdgeBufferBoundAtTheHub(t *testing.T) {
	r := newRig(t, 1<<20, time.Minute)
	r.ping("br-sw1", 0, true)
	waitFor(t, 10*time.Second, "round 0 at the hub", func() (bool, string) {
		n := len(of(r.got.snapshot(), observation.ICMP))
		return n == 1, fmt.Sprint(n)
	})
	time.Sleep(700 * time.Millisecond) // the hub confirms what it has
	r.link.Cut()
	waitFor(t, 10*time.Second, "cut", func() (bool, string) { return !r.pub.Info(t.Context()).Connected, "connected" })
	// ~8,000 rounds of ~300 bytes: several MiB into 1 MiB.
	for i := 1; i <= 8000; i++ {
		r.ping("br-sw1", i, false)
		if i%1000 == 0 { // the writer's queue is bounded too: let it keep up
			waitFor(t, 20*time.Second, "the writer", func() (bool, string) {
				es := r.pub.Info(t.Context())
				return es.Pending+es.Dropped >= uint64(i), fmt.Sprintf("%+v", es)
			})
		}
	}
	if err := testutil.GatherAndCompare(r.edgeReg, strings.NewReader(`
# HELP nocbridge_edge_unsent_total Observations an edge could not write to its buffer, by reason (queue_full: the buffer's writer was behind; store: the write failed; encode: no wire form).
# TYPE nocbridge_edge_unsent_total counter
nocbridge_edge_unsent_total{reason="encode"} 0
nocbridge_edge_unsent_total{reason="queue_full"} 0
nocbridge_edge_unsent_total{reason="store"} 0
`), "nocbridge_edge_unsent_total"); err != nil {
		t.Error(err)
	}
	es := r.pub.Info(t.Context())
	last := es.Delivered + es.Pending // the edge's last record now
	r.link.Restore()
	waitFor(t, 30*time.Second, "the buffer at the hub", func() (bool, string) {
		st := r.h.Status(t.Context()).Sites[0]
		return st.Stream.LastOrigin >= last, fmt.Sprintf("%+v", st)
	})
	st := r.h.Status(t.Context()).Sites[0]
	icmp := of(r.got.snapshot(), observation.ICMP)
	if newest := icmp[len(icmp)-1].Vars["rtt_ms"].(float64); newest != 8000 {
		t.Errorf("last round at the hub %v, want 8000 (the newest are kept)", newest)
	}
	for i := 1; i < len(icmp); i++ {
		if icmp[i].Vars["rtt_ms"].(float64) <= icmp[i-1].Vars["rtt_ms"].(float64) {
			t.Fatalf("round %v after %v: out of order", icmp[i].Vars["rtt_ms"], icmp[i-1].Vars["rtt_ms"])
		}
	}
	if err := testutil.GatherAndCompare(r.hubReg, strings.NewReader(fmt.Sprintf(`
# HELP nocbridge_edge_dropped_total Records an edge site dropped from its full buffer before the hub had them (gaps in the edge's sequence).
# TYPE nocbridge_edge_dropped_total counter
nocbridge_edge_dropped_total{site="BR1"} %d
`, st.Dropped)), "nocbridge_edge_dropped_total"); err != nil || st.Dropped == 0 {
		t.Errorf("dropped %d: %v", st.Dropped, err)
	}
	// Every record the edge wrote is either received or counted dropped at
	// the hub, exactly; the edge's own count is close (it notices
	// evictions when it looks).
	if st.Received+st.Dropped != st.Stream.LastOrigin {
		t.Errorf("hub received %d and counted %d dropped, the edge wrote %d", st.Received, st.Dropped, st.Stream.LastOrigin)
	}
	if es := r.pub.Info(t.Context()); es.Dropped < st.Dropped-10 || es.Dropped > st.Dropped+10 {
		t.Errorf("hub counted %d dropped, the edge %d", st.Dropped, es.Dropped)
	}
	t.Logf("bound: 8000 rounds into a 1 MiB buffer while cut off: %d reached the hub in order, %d dropped (hub: %d; edge: %d), buffer %d of %d bytes",
		len(icmp), st.Dropped, st.Dropped, es.Dropped, es.Bytes, es.Limit)
}

// The hub probes none of its edge sites' devices: their collector does.
func TestHubProbesNoEdgeDevice(t *testing.T) {
	cfg := &config.Config{Hub: &config.Hub{Sites: []string{"BR1"}}, ICMP: config.ICMP{Interval: config.Duration(time.Second), Timeout: config.Duration(time.Second), Count: 1},
		SNMP: config.SNMP{Profiles: map[string]config.SNMPProfile{"lab": {Version: "2c", Port: 161}}},
		Devices: []config.Device{
			{Name: "br-sw1", Address: "192.0.2.1", Site: "BR1", SNMP: "lab"},
			{Name: "hq-core", Address: "192.0.2.100", Site: "HQ", SNMP: "lab"},
		}}
	inv := inventory.New(cfg)
	for _, got := range [][]string{names(icmp.Targets(inv), func(t icmp.Target) string { return t.Device }),
		names(snmp.Targets(inv), func(t snmp.Target) string { return t.Device })} {
		if len(got) != 1 || got[0] != "hq-core" {
			t.Errorf("targets %v, want hq-core only (br-sw1 is BR1's, an edge site)", got)
		}
	}
	if d, _ := inv.Device("br-sw1"); !d.Remote || d.ICMP == nil {
		t.Errorf("br-sw1: remote %v, icmp %v; want remote, its ICMP settings kept (noise control reads them)", d.Remote, d.ICMP)
	}
}

func names[T any](ts []T, name func(T) string) []string {
	var out []string
	for _, t := range ts {
		out = append(out, name(t))
	}
	return out
}

// An edge whose buffer cannot be written (its store gone, as a full disk
// would make it) counts every observation it could not buffer and logs
// the failure once, not once per observation.
func TestPublisherLogsAFailingBufferOnce(t *testing.T) {
	ctx := t.Context()
	s, err := store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: quiet(),
		Edge: &config.Edge{Hub: "nats-leaf://127.0.0.1:1", Site: "BR1", Buffer: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := s.EdgeBuffer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Logs
	reg := prometheus.NewRegistry()
	pub, err := edge.NewPublisher(buf, edge.PublisherOptions{Site: "BR1", Logger: logs.TextLogger(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	d := &inventory.Device{Name: "br-sw1", Address: "192.0.2.1", Site: "BR1"}
	for i := range 50 {
		pub.Emit(observation.Observation{Source: observation.ICMP, Device: d, Time: time.Unix(1_800_000_000+int64(i), 0),
			Vars: map[string]any{"up": true, "loss": 0.0, "rtt_ms": 1.0, "rtt_min_ms": 1.0, "rtt_max_ms": 1.0, "sent": 1, "recv": 1}})
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = pub.Run(rctx) }()
	waitFor(t, 30*time.Second, "50 observations counted unbuffered", func() (bool, string) {
		n := promtest.Value(t, reg, "nocbridge_edge_unsent_total", "reason", "store")
		return n == 50, fmt.Sprintf("%v counted", n)
	})
	cancel()
	<-done
	if st := pub.Status(ctx); st.Unsent["store"] != 50 {
		t.Errorf("the edge's status shows %v unsent, want 50 for store", st.Unsent)
	}
	if n := strings.Count(logs.String(), "writing an observation to the edge buffer"); n != 1 {
		t.Errorf("the failing buffer was logged %d times for 50 observations, want once:\n%s", n, logs.String())
	}
}
