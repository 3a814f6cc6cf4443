package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
)

// trapRig is what a test of traps through the daemon needs: net-snmp's
// snmptrap, a free UDP port for traps.listen, the shipped rules' folder and
// a webhook receiver answering 200.
func trapRig(t *testing.T) (port int, rulesDir string, rcv *receiver) {
	t.Helper()
	if _, err := exec.LookPath("snmptrap"); err != nil {
		skipOrFail(t, "needs net-snmp's snmptrap: %v", err)
	}
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	if rulesDir, err = filepath.Abs("../../rules"); err != nil {
		t.Fatal(err)
	}
	return port, rulesDir, newReceiver(t, always(http.StatusOK))
}

// An unknown sender's alert (unknown_sources: accept), raised by a real
// snmptrap from a loopback address outside the inventory, is kept by a
// reload and by a restart, and resolved by its own linkUp.
func TestUnknownSenderAlertAcrossReloadAndRestart(t *testing.T) {
	port, rulesDir, rcv := trapRig(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "nocbridge.yaml")
	cfg := fmt.Sprintf(`state_dir: ./state
http: {listen: 127.0.0.1:0}
rules: [%s/*.yaml]
traps:
  listen: 127.0.0.1:%d
  communities: [public]
  unknown_sources: accept
devices:
  - {name: edge-sw1, address: 127.0.0.2, icmp: {disabled: true}}
destinations:
  - {name: hook, type: webhook, url: %s/hook, secret: %s, retry: {initial: 50ms, max: 200ms}}
subscriptions:
  - {name: all, destinations: [hook]}
`, rulesDir, port, rcv.srv.URL, testSigningSecret)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	snmptrap := func(trapOID string) {
		t.Helper()
		conf := t.TempDir()
		cmd := exec.Command("snmptrap", "-m", "", "-M", conf, "--clientaddr=127.0.0.5", "-v", "2c", "-c", "public",
			fmt.Sprintf("udp:127.0.0.1:%d", port), "", trapOID, ".1.3.6.1.2.1.2.2.1.1.3", "i", "3")
		cmd.Env = append(os.Environ(), "SNMPCONFPATH="+conf, "SNMP_PERSISTENT_DIR="+conf, "MIBS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("snmptrap: %v\n%s", err, out)
		}
	}
	firing := func(a *App) []string {
		var alerts []struct {
			Device struct{ Name string } `json:"device"`
			State  string                `json:"state"`
		}
		getJSON(t, "http://"+a.HTTPAddr()+"/api/v1/alerts", &alerts)
		var out []string
		for _, al := range alerts {
			out = append(out, al.Device.Name+" "+al.State)
		}
		return out
	}

	a, stop := startApp(t, path)
	snmptrap(".1.3.6.1.6.3.1.1.5.3") // linkDown
	got := rcv.waitFor(10*time.Second, "the unknown sender's Interface down", func(ds []delivery) bool { return len(ds) >= 1 })
	if got[0].Status != "active" || !strings.HasPrefix(got[0].Description, "127.0.0.5 (127.0.0.5) interface") {
		t.Fatalf("delivery %+v; want an active about 127.0.0.5", got[0])
	}
	if err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if f := firing(a); len(f) != 1 || f[0] != "127.0.0.5 firing" || len(rcv.deliveries()) != 1 {
		t.Fatalf("after a reload: alerts %v, deliveries %+v; want the unknown sender's still firing, unresolved", f, rcv.deliveries())
	}
	if v := counterValue(t, a, "nocbridge_traps_received_total", "version", "2c"); v != 1 {
		t.Errorf("received %v traps, want 1", v)
	}
	stop()

	a, _ = startApp(t, path)
	if f := firing(a); len(f) != 1 || f[0] != "127.0.0.5 firing" {
		t.Fatalf("alerts after a reload and a restart: %v; want the unknown sender's firing", f)
	}
	snmptrap(".1.3.6.1.6.3.1.1.5.4") // linkUp
	got = rcv.waitFor(10*time.Second, "the resolve", func(ds []delivery) bool { return len(ds) >= 2 })
	if len(got) != 2 || got[1].Status != "resolved" || got[1].InstanceID != got[0].InstanceID {
		t.Fatalf("deliveries %+v; want the active, then its resolve after the linkUp (none from the reload or restart)", got)
	}
}

// check renders every rule template for every device within the render
// budget: a template that writes hundreds of megabytes for one device fails
// at once, at its FILE:LINE, in the project's words.
func TestCheckRendersTemplatesWithinBudget(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	rule := `rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
    severity: 1
    description: '{{ range .Device.Labels }}{{ range 300000000 }}{{ printf "%01000d" 0 }}{{ end }}{{ end }}'
`
	if err := os.WriteFile(filepath.Join(dir, "rules", "big.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(`state_dir: ./state
rules: [rules/*.yaml]
devices:
  - {name: sw1, address: 192.0.2.1}
  - {name: sw2, address: 192.0.2.2, labels: {vendor: cisco}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Check(path, "test")
	want := filepath.Join(dir, "rules", "big.yaml") + ":7: description template for device sw2: the output passed 64 KiB (render budget)"
	if err == nil || err.Error() != want {
		t.Fatalf("Check = %v; want %s", err, want)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("check took %v", took)
	}
}
