package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
)

// TestHighCPUFromSnmpdFiresAndResolves drives the shipped High CPU and
// restart rules' logic (shorter hold times) with a real snmpd reporting a
// Cisco CPU of 95, then 20 after a restart: active, then a restart event
// (sysUpTime went backwards) and the resolve with the same instanceId.
func TestHighCPUFromSnmpdFiresAndResolves(t *testing.T) {
	if _, err := netsnmp.Path(); err != nil {
		skipOrFail(t, "needs net-snmp's snmpd: %v", err)
	}
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	startAgent := func(cpu int) *netsnmp.Agent {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		a, err := netsnmp.Start(ctx, netsnmp.Config{
			Dir:            dir,
			Listen:         []string{fmt.Sprintf("127.0.0.1:%d", port)},
			Conf:           fmt.Sprintf("rocommunity public 127.0.0.1\noverride .1.3.6.1.4.1.9.9.109.1.1.1.1.8.1 integer %d\n", cpu),
			ReadyCommunity: "public",
		})
		if err != nil {
			t.Fatalf("snmpd: %v", err)
		}
		t.Cleanup(a.Stop)
		return a
	}
	agent := startAgent(95)

	rcv := newReceiver(t, always(http.StatusOK))
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state_dir: ./state
http:
  listen: 127.0.0.1:0
rules: [rules/*.yaml]
snmp:
  poll_interval: 1s
  timeout: 500ms
  retries: 0
  profiles:
    lab: {version: 2c, community: public, port: %d}
devices:
  - name: dut
    address: 127.0.0.1
    snmp: lab
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
`, port, rcv.srv.URL, testSigningSecret)
	rule := `rules:
  - event_id: NETWORK-DEVICES-2-201
    name: High CPU utilization
    source: snmp
    when: cpu > 90
    for: 1s
    clear_when: cpu < 80
    clear_for: 1s
    severity: 2
    description: "{{ .Device.Name }} CPU at {{ .Value }}%"
  - event_id: NETWORK-DEVICES-3-102
    name: Device restarted
    source: snmp
    kind: event
    when: uptime_reset
    severity: 3
    description: "{{ .Device.Name }} restarted"
`
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "cpu.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := startApp(t, path)

	active := rcv.waitFor(20*time.Second, "the High CPU alert", func(ds []delivery) bool { return len(ds) >= 1 })[0]
	if active.EventID != "NETWORK-DEVICES-2-201" || active.Status != "active" || active.SigErr != nil {
		t.Fatalf("got %+v, want a signed active NETWORK-DEVICES-2-201", active)
	}
	var devs []struct {
		Name      string   `json:"name"`
		SNMPState string   `json:"snmp_state"`
		CPU       *float64 `json:"last_cpu_pct"`
	}
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/devices", &devs)
	if len(devs) != 1 || devs[0].SNMPState != "ok" || devs[0].CPU == nil || *devs[0].CPU != 95 {
		t.Fatalf("devices %+v; want dut with snmp_state ok and CPU 95", devs)
	}

	// While the agent is down the alert must hold: no data is no resolve.
	agent.Stop()
	time.Sleep(2500 * time.Millisecond)
	getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/devices", &devs)
	// Loopback answers a closed port with ICMP port unreachable.
	if len(devs) != 1 || devs[0].SNMPState != "unreachable" {
		t.Fatalf("devices %+v while snmpd is down; want snmp_state unreachable", devs)
	}
	if got := rcv.deliveries(); len(got) != 1 {
		t.Fatalf("deliveries while the agent was silent: %+v; missing data must not resolve", got)
	}

	// The new snmpd's sysUpTime starts again from zero: a restart event, and
	// CPU 20 resolves the alert.
	startAgent(20)
	got := rcv.waitFor(20*time.Second, "the restart event and the resolve", func(ds []delivery) bool { return len(ds) >= 3 })
	var restarted, resolved int
	for _, d := range got[1:] {
		switch {
		case d.EventID == "NETWORK-DEVICES-3-102" && d.Status == "active":
			restarted++
		case d.EventID == "NETWORK-DEVICES-2-201" && d.Status == "resolved" && d.InstanceID == active.InstanceID:
			resolved++
		default:
			t.Errorf("unexpected delivery %+v", d)
		}
	}
	if restarted != 1 || resolved != 1 {
		t.Fatalf("after the agent restart: %d restart events, %d resolves of %s; want one each: %+v", restarted, resolved, active.InstanceID, got)
	}
}
