package app

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// TestTrapsFromDeviceNamespace sends real net-snmp traps from a device in
// its own network namespace to the receiver, through the shipped rule
// catalog: linkDown/linkUp pairs resolve only their own ifIndex, a restart
// is a one-shot event, and a wrong community is a counted drop, not an alert.
func TestTrapsFromDeviceNamespace(t *testing.T) {
	dev := netns.New(t)
	if _, err := exec.LookPath("snmptrap"); err != nil {
		skipOrFail(t, "needs net-snmp's snmptrap: %v", err)
	}
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, always(http.StatusOK))
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state_dir: ./state
http:
  listen: 127.0.0.1:0
rules: [%s/*.yaml]
traps:
  listen: %s:%d
  communities: [public]
  unknown_sources: drop
devices:
  - name: edge-sw1
    address: %s
    site: Branch
    role: access
    icmp: {disabled: true}
destinations:
  - name: hook
    type: webhook
    url: %s/hook
    secret: %s
    retry: {initial: 50ms, max: 200ms}
subscriptions:
  - name: all
    destinations: [hook]
`, rulesDir, dev.MonitorAddr, port, dev.Addr, rcv.srv.URL, testSigningSecret)
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := startApp(t, path)

	target := fmt.Sprintf("%s:%d", dev.MonitorAddr, port)
	send := func(community, trapOID string, varbinds ...string) {
		t.Helper()
		args := append([]string{"-v", "2c", "-c", community, target, "", trapOID}, varbinds...)
		if out, err := dev.Exec(t, "snmptrap", args...).CombinedOutput(); err != nil {
			t.Fatalf("snmptrap %v: %v\n%s", args, err, out)
		}
	}
	const (
		linkDown  = ".1.3.6.1.6.3.1.1.5.3"
		linkUp    = ".1.3.6.1.6.3.1.1.5.4"
		coldStart = ".1.3.6.1.6.3.1.1.5.1"
		ifIndex   = ".1.3.6.1.2.1.2.2.1.1."
		ifName    = ".1.3.6.1.2.1.31.1.1.1.1."
	)
	send("public", linkDown, ifIndex+"3", "i", "3", ifName+"3", "s", "Gi0/3")
	send("public", linkDown, ifIndex+"4", "i", "4")
	got := rcv.waitFor(10*time.Second, "two Interface down alerts", func(ds []delivery) bool { return len(ds) >= 2 })
	byDesc := map[string]delivery{}
	for _, d := range got {
		if d.EventID != "NETWORK-INTERFACES-2-301" || d.Status != "active" || d.SigErr != nil {
			t.Fatalf("delivery %+v; want a signed active NETWORK-INTERFACES-2-301", d)
		}
		byDesc[d.Description] = d
	}
	_, ok3 := byDesc["edge-sw1 ("+dev.Addr.String()+") interface Gi0/3 is down"]
	if4, ok4 := byDesc["edge-sw1 ("+dev.Addr.String()+") interface ifIndex 4 is down"]
	if !ok3 || !ok4 {
		t.Fatalf("descriptions %v; want one naming Gi0/3 (ifName) and one naming ifIndex 4", got)
	}

	send("public", linkUp, ifIndex+"4", "i", "4")
	got = rcv.waitFor(10*time.Second, "the resolve of ifIndex 4", func(ds []delivery) bool { return len(ds) >= 3 })
	if got[2].Status != "resolved" || got[2].InstanceID != if4.InstanceID {
		t.Fatalf("third delivery %+v; want the resolve of %s (ifIndex 4)", got[2], if4.InstanceID)
	}

	send("wrong-community", linkUp, ifIndex+"3", "i", "3")
	send("public", coldStart)
	got = rcv.waitFor(10*time.Second, "the restart event", func(ds []delivery) bool { return len(ds) >= 4 })
	if got[3].EventID != "NETWORK-DEVICES-3-102" || got[3].Status != "active" {
		t.Fatalf("fourth delivery %+v; want the NETWORK-DEVICES-3-102 event", got[3])
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(rcv.deliveries()); n != 4 {
		t.Fatalf("%d deliveries; a wrong-community linkUp must not resolve Gi0/3: %+v", n, rcv.deliveries())
	}
	if v := counterValue(t, a, "nocbridge_traps_dropped_total", "reason", "community"); v != 1 {
		t.Errorf("community drops %v, want 1", v)
	}
	if v := counterValue(t, a, "nocbridge_traps_received_total", "version", "2c"); v != 4 {
		t.Errorf("v2c traps received %v, want 4", v)
	}
	var alerts []struct {
		EventID string `json:"event_id"`
		Key     string `json:"key"`
		State   string `json:"state"`
	}
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/alerts", &alerts)
	if len(alerts) != 1 || alerts[0].Key != "3" || alerts[0].State != "firing" {
		t.Fatalf("alerts %+v; want only Gi0/3 (ifIndex 3) still firing", alerts)
	}
}

// counterValue reads one labelled counter from the app's registry.
func counterValue(t *testing.T, a *App, name, label, value string) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && strings.EqualFold(l.GetValue(), value) {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
