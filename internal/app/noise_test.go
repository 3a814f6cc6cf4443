package app

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/ctl"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// routedLab is a "core" namespace that routes to four access namespaces
// behind it, all pinged by the daemon with the access switches' parent
// set to the core.
type routedLab struct {
	core *netns.Host
	acc  []*netns.Host
	path string
	rcv  *receiver
}

func newRoutedLab(t *testing.T, extra string) *routedLab {
	t.Helper()
	requireICMP(t)
	l := &routedLab{core: netns.New(t)}
	for range 4 {
		l.acc = append(l.acc, l.core.Behind(t))
	}
	l.rcv = newReceiver(t, always(http.StatusOK))
	dir := t.TempDir()
	devices := fmt.Sprintf("  - {name: core, address: %s, site: Lab, role: core}\n", l.core.Addr)
	for i, a := range l.acc {
		devices += fmt.Sprintf("  - {name: acc%d, address: %s, site: Lab, role: access, parents: [core]}\n", i+1, a.Addr)
	}
	cfg := fmt.Sprintf(`state_dir: ./state
http:
  listen: 127.0.0.1:0
rules: [rules/*.yaml]
icmp: {interval: 1s, timeout: 500ms}
%s
devices:
%s
destinations:
  - name: hook
    type: webhook
    url: %s/hook
    secret: %s
    retry: {initial: 50ms, max: 200ms, max_age: 1h}
subscriptions:
  - name: all
    destinations: [hook]
`, extra, devices, l.rcv.srv.URL, testSigningSecret)
	rule := `rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
    for: 2s
    clear_when: loss == 0
    clear_for: 1s
    severity: 1
    description: "{{ .Device.Name }} is unreachable"
`
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "devices.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	l.path = filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(l.path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCoreOutageInRoutedLab: real ICMP through a routing core namespace.
// Taking the core's link down cuts off the four access switches behind it
// in the same instant, and their rounds arrive in whatever order the
// probes' phases give; over several outages the receiver gets the core's
// active (naming the four) and its resolve, and nothing about the access
// switches, every time.
func TestCoreOutageInRoutedLab(t *testing.T) {
	// Three outages in a minute would be five changes of the core's
	// alert: flapping, tested on its own.
	l := newRoutedLab(t, "noise: {flap: false}")
	a, _ := startApp(t, l.path)
	type devState struct {
		Name         string   `json:"name"`
		State        string   `json:"state"`
		SuppressedBy []string `json:"suppressed_by"`
	}
	up := func() bool {
		var devs []devState
		getJSON(t, fmt.Sprintf("http://%s/api/v1/devices", a.HTTPAddr()), &devs)
		for _, d := range devs {
			if d.State != "up" {
				return false
			}
		}
		return len(devs) == 5
	}
	waitUntil(t, 10*time.Second, "every device up", up)

	for outage := 1; outage <= 3; outage++ {
		before := len(l.rcv.deliveries())
		l.core.LinkDown(t)
		got := l.rcv.waitFor(15*time.Second, "the core's active", func(ds []delivery) bool { return len(ds) > before })
		time.Sleep(3 * time.Second) // room for a wrong child alert to show up
		var devs []devState
		getJSON(t, fmt.Sprintf("http://%s/api/v1/devices", a.HTTPAddr()), &devs)
		for _, d := range devs {
			if d.Name != "core" && (d.State != "unreachable" || !slices.Equal(d.SuppressedBy, []string{"core"})) {
				t.Errorf("outage %d: %s is %s behind %v, want unreachable behind core", outage, d.Name, d.State, d.SuppressedBy)
			}
		}
		var alerts []struct {
			Device       struct{ Name string } `json:"device"`
			State        string                `json:"state"`
			Suppressed   string                `json:"suppressed"`
			SuppressedBy []string              `json:"suppressed_by"`
		}
		getJSON(t, fmt.Sprintf("http://%s/api/v1/alerts", a.HTTPAddr()), &alerts)
		suppressed := 0
		for _, al := range alerts {
			if al.Device.Name != "core" && al.Suppressed == "parent" && slices.Equal(al.SuppressedBy, []string{"core"}) {
				suppressed++
			}
		}
		if suppressed != 4 {
			t.Errorf("outage %d: %d alerts shown suppressed behind core in /api/v1/alerts, want the 4 children's: %+v", outage, suppressed, alerts)
		}
		l.core.LinkUp(t)
		got = l.rcv.waitFor(15*time.Second, "the core's resolve", func(ds []delivery) bool { return len(ds) >= before+2 })
		waitUntil(t, 10*time.Second, "every device up again", up)
		time.Sleep(2 * time.Second)
		got = l.rcv.deliveries()[before:]
		if len(got) != 2 || got[0].Status != "active" || got[1].Status != "resolved" ||
			!strings.HasPrefix(got[0].Description, "core ") || got[0].InstanceID != got[1].InstanceID {
			t.Fatalf("outage %d: receiver got %+v, want the core's active and resolve alone", outage, got)
		}
	}
	if v := counterValue(t, a, "nocbridge_alerts_suppressed_total", "reason", "parent"); v < 12 {
		t.Errorf("nocbridge_alerts_suppressed_total{reason=parent} = %v, want the 4 children × 3 outages counted", v)
	}
}

// TestFlappingPortFromTrapsInRoutedLab: real net-snmp traps from an access
// switch behind the core: a port bouncing linkDown/linkUp notifies four
// times, then once more marked flapping, then nothing while it flaps.
func TestFlappingPortFromTrapsInRoutedLab(t *testing.T) {
	if _, err := exec.LookPath("snmptrap"); err != nil {
		skipOrFail(t, "needs net-snmp's snmptrap: %v", err)
	}
	port, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	l := newRoutedLab(t, "")
	rulesDir, err := filepath.Abs("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(l.path)
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("%s:%d", l.core.MonitorAddr, port)
	withTraps := strings.Replace(string(cfg), "rules: [rules/*.yaml]", fmt.Sprintf("rules: [rules/*.yaml, %s/network-interfaces.yaml]\ntraps:\n  listen: %s\n  communities: [public]", rulesDir, listen), 1)
	if err := os.WriteFile(l.path, []byte(withTraps), 0o644); err != nil {
		t.Fatal(err)
	}
	startApp(t, l.path)
	trap := func(name string) {
		t.Helper()
		oid := map[string]string{"linkDown": ".1.3.6.1.6.3.1.1.5.3", "linkUp": ".1.3.6.1.6.3.1.1.5.4"}[name]
		out, err := l.acc[0].Exec(t, "snmptrap", "-v", "2c", "-c", "public", listen, "", oid,
			".1.3.6.1.2.1.2.2.1.1.7", "i", "7").CombinedOutput()
		if err != nil {
			t.Fatalf("snmptrap %s: %v: %s", name, err, out)
		}
	}
	for range 6 {
		trap("linkDown")
		time.Sleep(150 * time.Millisecond)
		trap("linkUp")
		time.Sleep(150 * time.Millisecond)
	}
	got := l.rcv.waitFor(10*time.Second, "five notifications", func(ds []delivery) bool { return len(ds) >= 5 })
	time.Sleep(2 * time.Second)
	got = l.rcv.deliveries()
	var statuses []string
	for _, d := range got {
		if d.EventID != "NETWORK-INTERFACES-2-301" {
			t.Errorf("unexpected %s %s", d.EventID, d.Status)
		}
		statuses = append(statuses, d.Status)
	}
	if strings.Join(statuses, " ") != "active resolved active resolved active" {
		t.Fatalf("12 changes: receiver got %v, want 4 before it flapped and 1 flapping active", statuses)
	}
}

// TestSilenceMutesThenReleasesOverVeth: a device silenced with the CLI goes
// down (real ICMP over a veth): its alert is held, shown muted in the API;
// ending the silence sends it at once, and its resolve follows.
func TestSilenceMutesThenReleasesOverVeth(t *testing.T) {
	requireICMP(t)
	dev := netns.New(t)
	rcv := newReceiver(t, always(http.StatusOK))
	path := writeConfig(t, t.TempDir(), testConfig{ReceiverURL: rcv.srv.URL, Device: dev.Addr.String(), Listen: freePort(t),
		Token: "mute-test-token", RuleWhen: "loss == 100", RuleClear: "loss == 0"})
	a, _ := startApp(t, path)
	ctx := context.Background()
	var out bytes.Buffer
	if err := ctl.Silence(ctx, path, ctl.SilenceCommand{Action: "add", Match: config.Match{Selector: config.Selector{Devices: []string{"dut"}}},
		For: time.Hour, Comment: "CHG-7 replacing the uplink"}, &out); err != nil {
		t.Fatalf("silence add: %v", err)
	}
	id := strings.TrimSpace(out.String())
	dev.LinkDown(t)
	var alerts []struct {
		EventID string   `json:"event_id"`
		State   string   `json:"state"`
		MutedBy []string `json:"muted_by"`
	}
	waitUntil(t, 10*time.Second, "the muted alert", func() bool {
		getJSON(t, fmt.Sprintf("http://%s/api/v1/alerts", a.HTTPAddr()), &alerts)
		return len(alerts) == 1 && alerts[0].State == "firing" && len(alerts[0].MutedBy) == 1
	})
	if alerts[0].MutedBy[0] != "silence "+id {
		t.Errorf("muted by %v, want the silence %s", alerts[0].MutedBy, id)
	}
	time.Sleep(2 * time.Second)
	if got := rcv.deliveries(); len(got) != 0 {
		t.Fatalf("silenced: receiver got %+v", got)
	}
	ended := time.Now()
	if err := ctl.Silence(ctx, path, ctl.SilenceCommand{Action: "expire", ID: id}, &out); err != nil {
		t.Fatalf("silence expire: %v", err)
	}
	got := rcv.waitFor(5*time.Second, "the released active", func(ds []delivery) bool { return len(ds) == 1 })
	if d := got[0].At.Sub(ended); d > 1500*time.Millisecond {
		t.Errorf("active sent %v after the silence ended, want within a second or so", d)
	}
	dev.LinkUp(t)
	rcv.waitFor(10*time.Second, "the resolve", func(ds []delivery) bool {
		return len(ds) == 2 && ds[1].Status == "resolved" && ds[1].InstanceID == ds[0].InstanceID
	})
}
