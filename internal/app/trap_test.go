package app

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// TestTrapsFromDeviceNamespace sends real net-snmp traps (v1, v2c, v3
// authNoPriv and authPriv, a v3 inform) from a device in its own network namespace to the
// receiver, through the shipped rule catalog: linkDown/linkUp pairs resolve
// only their own ifIndex, a restart is a one-shot event, and a wrong
// community or v3 key is a counted drop, not an alert.
func TestTrapsFromDeviceNamespace(t *testing.T) {
	dev := netns.New(t)
	port, rulesDir, rcv := trapRig(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state_dir: ./state
http:
  listen: 127.0.0.1:0
rules: [%s/*.yaml]
snmp:
  profiles:
    trap-v3:
      version: 3
      user: noc
      auth: {protocol: SHA256, passphrase: auth-pass-123}
      priv: {protocol: AES, passphrase: priv-pass-123}
    trap-v3-auth:
      version: 3
      user: noc-auth
      auth: {protocol: SHA256, passphrase: auth-only-123}
traps:
  listen: %s:%d
  communities: [public]
  users: [trap-v3, trap-v3-auth]
  engine_id: "0x80001f8880c0ffee01"
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
	netsnmp := func(tool string, args ...string) {
		t.Helper()
		if out, err := dev.Exec(t, tool, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
		}
	}
	send := func(community, trapOID string, varbinds ...string) {
		t.Helper()
		netsnmp("snmptrap", append([]string{"-v", "2c", "-c", community, target, "", trapOID}, varbinds...)...)
	}
	v3 := func(authPass string) []string {
		return []string{"-v", "3", "-u", "noc", "-l", "authPriv", "-a", "SHA-256", "-A", authPass, "-x", "AES", "-X", "priv-pass-123"}
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

	// v1 (generic trap 2 = linkDown, RFC 3584) and v3 authPriv raise alerts
	// too; a v3 trap with a wrong key does not; a v3 inform (discovering our
	// engine ID first) is acknowledged and resolves.
	netsnmp("snmptrap", "-v", "1", "-c", "public", target, ".1.3.6.1.4.1.9.1.1", dev.Addr.String(), "2", "0", "", ifIndex+"5", "i", "5")
	netsnmp("snmptrap", append(v3("auth-pass-123"), "-e", "0x8000000001020304", target, "", linkDown, ifIndex+"6", "i", "6")...)
	netsnmp("snmptrap", append(v3("not-the-key"), "-e", "0x8000000001020304", target, "", linkDown, ifIndex+"8", "i", "8")...)
	netsnmp("snmptrap", "-v", "3", "-u", "noc-auth", "-l", "authNoPriv", "-a", "SHA-256", "-A", "auth-only-123",
		"-e", "0x8000000001020304", target, "", linkDown, ifIndex+"9", "i", "9")
	got = rcv.waitFor(10*time.Second, "v1 and v3 Interface down alerts", func(ds []delivery) bool { return len(ds) >= 7 })
	var if6 delivery
	for _, d := range got[4:7] {
		if d.EventID != "NETWORK-INTERFACES-2-301" || d.Status != "active" {
			t.Fatalf("delivery %+v; want Interface down for ifIndex 5 (v1), 6 (v3 authPriv) and 9 (v3 authNoPriv)", d)
		}
		if strings.Contains(d.Description, "ifIndex 6 ") {
			if6 = d
		}
	}
	if if6.InstanceID == "" {
		t.Fatalf("no alert for ifIndex 6 (the v3 authPriv trap): %+v", got[4:7])
	}
	netsnmp("snmpinform", append(v3("auth-pass-123"), "-r", "1", "-t", "3", target, "", linkUp, ifIndex+"6", "i", "6")...)
	got = rcv.waitFor(10*time.Second, "the resolve of ifIndex 6 by a v3 inform", func(ds []delivery) bool { return len(ds) >= 8 })
	if got[7].Status != "resolved" || got[7].InstanceID != if6.InstanceID {
		t.Fatalf("eighth delivery %+v; want the resolve of %s (ifIndex 6)", got[7], if6.InstanceID)
	}

	time.Sleep(500 * time.Millisecond)
	if n := len(rcv.deliveries()); n != 8 {
		t.Fatalf("%d deliveries, want 8 (a wrong community or v3 key must not alert or resolve): %+v", n, rcv.deliveries())
	}
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"nocbridge_traps_dropped_total", "reason", "community", 1},
		{"nocbridge_traps_dropped_total", "reason", "auth", 1},
		{"nocbridge_traps_dropped_total", "reason", "discovery", 1},
		{"nocbridge_traps_received_total", "version", "1", 1},
		{"nocbridge_traps_received_total", "version", "2c", 4},
		{"nocbridge_traps_received_total", "version", "3", 3},
	} {
		if v := counterValue(t, a, c.name, c.label, c.value); v != c.want {
			t.Errorf("%s{%s=%q} = %v, want %v", c.name, c.label, c.value, v, c.want)
		}
	}
	var alerts []struct {
		EventID string `json:"event_id"`
		Key     string `json:"key"`
		State   string `json:"state"`
	}
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/alerts", &alerts)
	var keys []string
	for _, al := range alerts {
		if al.State != "firing" {
			t.Errorf("alert %+v is not firing", al)
		}
		keys = append(keys, al.Key)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"3", "5", "9"}) {
		t.Fatalf("alerts %+v; want ifIndex 3, 5 and 9 still firing", alerts)
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
