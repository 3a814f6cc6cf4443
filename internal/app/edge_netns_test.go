package app

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/cluster/edge"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// Environment of the edge daemon TestEdgeSiteThroughWANOutage runs inside
// the edge's namespace (TestEdgeSiteChild).
const (
	envEdgeConfig = "NOCBRIDGE_TEST_EDGE_CONFIG"
	envEdgeStop   = "NOCBRIDGE_TEST_EDGE_STOP"
)

// wanOutage is how long the edge's WAN is down (SPEC 10: a minute).
const wanOutage = time.Minute

// TestEdgeSiteThroughWANOutage is SPEC 10's edge test. An edge daemon runs
// in its own network namespace, whose only link to the hub (this process)
// is a veth "WAN"; its two devices live in namespaces behind it. The WAN
// goes down for a minute while one device fails and the other keeps
// sending linkDown traps to the edge. Meanwhile the hub shows the site's
// devices unknown and sends one "Collector unreachable"; when the WAN is
// back everything the edge saw arrives at the hub, in order, nothing
// dropped, and is evaluated: the failed device's and the traps' alerts go
// out, and the collector alert resolves.
func TestEdgeSiteThroughWANOutage(t *testing.T) {
	requireICMP(t)
	if _, err := os.Stat("/usr/bin/snmptrap"); err != nil {
		skipOrFail(t, "needs snmptrap (Debian package snmp) to send traps from the devices: %v", err)
	}
	wan := netns.New(t)  // the edge's namespace; its link to us is the WAN
	sw1 := wan.Behind(t) // fails during the outage
	sw2 := wan.Behind(t) // traps during the outage
	// The hub's leaf listener on its end of the WAN link.
	ln, err := net.Listen("tcp", net.JoinHostPort(wan.MonitorAddr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := ln.Addr().String()
	ln.Close()
	es := newEdgeSite(t, leaf, sw1.Addr.String(), sw2.Addr.String(), "role: access", "5s", "64MiB",
		"icmp: {interval: 1s, timeout: 500ms}\ntraps: {listen: \"0.0.0.0:9162\", communities: [public]}\n")
	rcv := es.rcv

	a, _ := startApp(t, es.hubCfg)
	api := "http://" + a.HTTPAddr()
	stopFile := filepath.Join(filepath.Dir(es.edgeCfg), "stop")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := wan.Exec(t, self, "-test.run=^TestEdgeSiteChild$", "-test.count=1", "-test.v")
	child.Env = append(os.Environ(), envEdgeConfig+"="+es.edgeCfg, envEdgeStop+"="+stopFile)
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := make(chan error, 1)
	go func() { childDone <- child.Wait() }()
	defer func() {
		writeFile(t, stopFile, "stop")
		select {
		case err := <-childDone:
			if err != nil || !strings.Contains(out.String(), "--- PASS: TestEdgeSiteChild") {
				t.Errorf("the edge daemon in %s: %v\n%s", wan.Name, err, out.String())
			} else if t.Failed() {
				t.Logf("the edge daemon in %s:\n%s", wan.Name, out.String())
			}
		case <-time.After(60 * time.Second):
			t.Errorf("the edge daemon did not stop within 60s\n%s", out.String())
		}
	}()

	site := func() edge.SiteStatus { return hubSite(t, api) }
	states := func() string {
		var list []devstate.Status
		getJSON(t, api+"/api/v1/devices", &list)
		var s []string
		for _, d := range list {
			s = append(s, d.Name+"="+d.State)
		}
		return strings.Join(s, " ")
	}
	// The edge probes; the hub sees its devices up through it.
	waitState(t, 60*time.Second, "the edge's devices up at the hub", func() (bool, string) {
		s := states()
		return s == "br-sw1=up br-sw2=up", s
	})
	before := site()
	if !before.Connected || before.Unreachable || before.Dropped != 0 {
		t.Fatalf("site before the outage %+v", before)
	}
	// A site not heard within unreachable_after of the hub's start (the
	// edge's first records can take that long) raised and resolved the
	// collector alert: the outage's notifications are counted after those.
	time.Sleep(2 * time.Second)
	base := len(rcv.deliveries())
	t.Logf("before the outage: %d notifications (the edge heard %v after the hub's start)", base, before.LastContact)

	// The WAN goes down for a minute; br-sw1 fails, br-sw2 traps.
	wan.LinkDown(t)
	sw1.LinkDown(t)
	cut := time.Now()
	traps := 0
	trap := func() {
		cmd := sw2.Exec(t, "snmptrap", "-v", "2c", "-c", "public", net.JoinHostPort(sw2.MonitorAddr.String(), "9162"), "",
			"1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1."+strconv.Itoa(traps+1), "i", strconv.Itoa(traps+1))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("snmptrap: %v: %s", err, b)
		}
		traps++
	}
	waitState(t, 20*time.Second, "the site unreachable at the hub", func() (bool, string) {
		if traps < 3 {
			trap()
		}
		s := site()
		return s.Unreachable, fmt.Sprintf("%+v", s)
	})
	unreachable := time.Since(cut)
	if s := states(); s != "br-sw1=unknown br-sw2=unknown" {
		t.Errorf("devices while the edge is cut off: %s, want unknown (not down)", s)
	}
	collector := rcv.waitFor(15*time.Second, "one collector-unreachable notification", func(ds []delivery) bool {
		return len(ds) > base
	})[base:]
	if len(collector) != 1 || collector[0].EventID != "NETWORK-SITES-1-502" || collector[0].Status != "active" {
		t.Fatalf("notifications while cut off: %+v, want exactly one active NETWORK-SITES-1-502", collector)
	}
	waitState(t, 30*time.Second, "the leaf connection seen down at the hub", func() (bool, string) {
		s := site()
		return !s.Connected, fmt.Sprintf("%+v", s)
	})
	t.Logf("WAN cut: collector unreachable at the hub after %v (unreachable_after 5s), its leaf connection seen down after %v",
		unreachable.Round(100*time.Millisecond), time.Since(cut).Round(100*time.Millisecond))
	for time.Since(cut) < wanOutage {
		if traps < 10 {
			trap()
		}
		time.Sleep(time.Second)
	}
	if got := rcv.deliveries()[base:]; len(got) != 1 {
		t.Errorf("%d notifications during the outage, want the one collector-unreachable: %+v", len(got), got)
	}

	// The WAN is back: everything the edge buffered arrives, in order.
	wan.LinkUp(t)
	back := time.Now()
	// Drained once the hub has evaluated a round br-sw2 answered after the
	// WAN was back: in order, everything buffered before it came first.
	var after edge.SiteStatus
	waitState(t, 60*time.Second, "the edge's buffer drained at the hub", func() (bool, string) {
		var d devstate.Status
		getJSON(t, api+"/api/v1/devices/br-sw2", &d)
		after = site()
		return after.Connected && !after.Unreachable && d.LastProbe.After(back), fmt.Sprintf("br-sw2 last probe %v; %+v", d.LastProbe, after)
	})
	drained := time.Since(back)
	buffered := after.Stream.LastOrigin - before.Stream.LastOrigin
	t.Logf("edge replay: %d records buffered at the edge during the %v outage (%d traps sent) reached the hub %v after the WAN was back; dropped %d, out of order %d",
		buffered, wanOutage, traps, drained.Round(time.Millisecond), after.Dropped, after.OutOfOrder)
	if after.Dropped != 0 || after.OutOfOrder != 0 || after.Received != after.Stream.LastOrigin {
		t.Errorf("site after the replay %+v: want nothing dropped or out of order, every record received", after)
	}
	// Evaluated: the collector resolves, br-sw1's outage and br-sw2's
	// interfaces alert, each once.
	got := rcv.waitFor(45*time.Second, "the replay's notifications", func(ds []delivery) bool {
		ds = ds[base:]
		return count(ds, "NETWORK-SITES-1-502", "resolved") == 1 && count(ds, "NETWORK-DEVICES-1-101", "active") == 1 &&
			count(ds, "NETWORK-INTERFACES-2-301", "active") == traps
	})[base:]
	if n := count(got, "NETWORK-SITES-1-502", "active"); n != 1 {
		t.Errorf("%d collector-unreachable actives, want 1", n)
	}
	if s := states(); s != "br-sw1=down br-sw2=up" {
		t.Errorf("devices after the replay: %s, want br-sw1 down, br-sw2 up", s)
	}
}

func count(ds []delivery, eventID, status string) int {
	n := 0
	for _, d := range ds {
		if d.EventID == eventID && d.Status == status {
			n++
		}
	}
	return n
}

// edgeSite is the configs of a hub and of the edge daemon of its site BR1,
// whose devices br-sw1 and br-sw2 are at sw1 and sw2; every alert at the
// hub goes to rcv.
type edgeSite struct {
	rcv             *receiver
	hubCfg, edgeCfg string
}

// newEdgeSite writes the configs: the hub's leaf listener is at leaf, it
// deems the site unreachable after unreachableAfter without a record; the
// edge buffers up to buffer. device is what each device's entry adds;
// edgeExtra, what the edge's config adds.
func newEdgeSite(t *testing.T, leaf, sw1, sw2, device, unreachableAfter, buffer, edgeExtra string) *edgeSite {
	t.Helper()
	rulesGlob, err := filepath.Abs("../../rules/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	es := &edgeSite{rcv: newReceiver(t, always(http.StatusOK))}
	devices := []string{
		fmt.Sprintf("{name: br-sw1, address: %s, site: BR1, %s}", sw1, device),
		fmt.Sprintf("{name: br-sw2, address: %s, site: BR1, %s}", sw2, device),
	}
	es.hubCfg = writeNodeConfig(t, t.TempDir(), nodeConfig{Listen: "127.0.0.1:0", Rules: rulesGlob, Devices: devices,
		Extra: fmt.Sprintf("hub: {listen: %q, sites: [BR1], unreachable_after: %s}\n", leaf, unreachableAfter),
		Hook:  &hookConfig{URL: es.rcv.srv.URL, Timeout: "2s", MaxAge: "1h"}})
	es.edgeCfg = writeNodeConfig(t, t.TempDir(), nodeConfig{Listen: "127.0.0.1:0", Rules: rulesGlob, Devices: devices,
		Extra: fmt.Sprintf("edge: {hub: %q, site: BR1, buffer: %s}\n", "nats-leaf://"+leaf, buffer) + edgeExtra})
	return es
}

// hubSite is the one site in the /api/v1/cluster of the hub at api
// ("http://host:port").
func hubSite(t *testing.T, api string) edge.SiteStatus {
	t.Helper()
	var ci struct {
		Edge edge.HubStatus `json:"edge"`
	}
	getJSON(t, api+"/api/v1/cluster", &ci)
	if len(ci.Edge.Sites) != 1 {
		t.Fatalf("/api/v1/cluster edge = %+v, want one site", ci.Edge)
	}
	return ci.Edge.Sites[0]
}

// TestEdgeSiteChild is the edge daemon of TestEdgeSiteThroughWANOutage,
// run by it inside the edge's namespace; alone it skips.
func TestEdgeSiteChild(t *testing.T) {
	cfg := os.Getenv(envEdgeConfig)
	if cfg == "" {
		t.Skip("the edge daemon of TestEdgeSiteThroughWANOutage, run by it inside its namespace")
	}
	_, stop := startApp(t, cfg)
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(os.Getenv(envEdgeStop)); err == nil {
			stop()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("not told to stop within 10 minutes")
}

// TestEdgeSiteOnLoopback runs a hub and an edge daemon in this process on
// loopback, the edge's devices not probed (no privileges needed): the
// edge's heartbeats keep its site reachable; the edge stopped, the hub
// marks the site's devices unknown and sends one "Collector unreachable";
// the edge started again on the same state resolves it.
func TestEdgeSiteOnLoopback(t *testing.T) {
	es := newEdgeSite(t, freePort(t), "192.0.2.1", "192.0.2.2", "icmp: {disabled: true}", "3s", "8MiB", "")
	rcv, hubCfg := es.rcv, es.hubCfg
	hub, stopHub := startApp(t, hubCfg)
	edgeApp, stopEdge := startApp(t, es.edgeCfg)
	site := func(api string) map[string]any {
		var ci struct {
			Edge map[string]any `json:"edge"`
		}
		getJSON(t, "http://"+api+"/api/v1/cluster", &ci)
		return ci.Edge
	}
	atHub := func() edge.SiteStatus { return hubSite(t, "http://"+hub.HTTPAddr()) }
	waitState(t, 30*time.Second, "the edge's heartbeats at the hub", func() (bool, string) {
		s := atHub()
		return s.Connected && !s.Unreachable && s.Received >= 2, fmt.Sprintf("%+v", s)
	})
	if e := site(edgeApp.HTTPAddr()); e["role"] != "edge" || e["site"] != "BR1" || e["connected"] != true || e["buffer_limit_bytes"] != float64(8<<20) {
		t.Errorf("the edge's /api/v1/cluster edge = %v", e)
	}
	base := len(rcv.deliveries()) // a collector alert raised and resolved while the edge started

	stopEdge()
	got := rcv.waitFor(20*time.Second, "one collector-unreachable", func(ds []delivery) bool { return len(ds) > base })[base:]
	if len(got) != 1 || got[0].EventID != "NETWORK-SITES-1-502" || got[0].Status != "active" {
		t.Fatalf("notifications with the edge stopped: %+v", got)
	}
	var list []devstate.Status
	getJSON(t, "http://"+hub.HTTPAddr()+"/api/v1/devices", &list)
	for _, d := range list {
		if d.State != "unknown" {
			t.Errorf("%s is %s at the hub while its collector is away, want unknown", d.Name, d.State)
		}
	}
	if s := atHub(); !s.Unreachable {
		t.Errorf("hub's site %+v, want unreachable", s)
	}

	startApp(t, es.edgeCfg) // the same state directory: its buffer goes on
	got = rcv.waitFor(30*time.Second, "the collector alert resolved", func(ds []delivery) bool { return len(ds) > base+1 })[base:]
	if len(got) != 2 || got[1].EventID != "NETWORK-SITES-1-502" || got[1].Status != "resolved" || got[1].InstanceID != got[0].InstanceID {
		t.Fatalf("notifications after the edge restarted: %+v", got)
	}
	waitState(t, 10*time.Second, "the hub caught up with the edge", func() (bool, string) {
		s := atHub()
		return s.Stream.SourceLag == 0 && s.Stream.Pending == 0, fmt.Sprintf("%+v", s)
	})
	first := atHub()
	if first.Dropped != 0 || first.OutOfOrder != 0 || first.Received != first.Stream.LastOrigin {
		t.Errorf("after the edge's restart: %+v, want every record received once, in order", first)
	}

	// The hub restarts on its state: its reader goes on after the last
	// record it evaluated, none read twice, none skipped.
	stopHub()
	time.Sleep(time.Second) // the edge buffers meanwhile
	hub, _ = startApp(t, hubCfg)
	waitState(t, 30*time.Second, "the hub reading the edge again", func() (bool, string) {
		s := atHub()
		return s.Connected && s.Stream.LastOrigin > first.Stream.LastOrigin+1, fmt.Sprintf("%+v", s)
	})
	// A record skipped would count as dropped (a gap after the last one
	// evaluated before the restart), one read again as out of order.
	if s := atHub(); s.Dropped != 0 || s.OutOfOrder != 0 || s.Received == 0 {
		t.Errorf("after the hub's restart: %+v, want the records after the last evaluated received once, in order", s)
	}
}
