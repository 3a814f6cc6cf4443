package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// envNoICMPChild marks the re-run of a test as nobody inside a network
// namespace where no ICMP socket can be opened.
const envNoICMPChild = "NOCBRIDGE_NOICMP_CHILD"

// TestRunsWithoutICMPWhenNoDeviceIsPinged: a traps/polling-only deployment
// starts without ICMP privileges, and a reload that would need them is
// rejected with the two fixes named, keeping the running config. As root
// it runs as nobody in a namespace of its own, so it runs whatever the
// host allows; without root it runs in place where this process has no
// ICMP socket either.
func TestRunsWithoutICMPWhenNoDeviceIsPinged(t *testing.T) {
	switch {
	case os.Getenv(envNoICMPChild) != "":
		if icmpAllowed() {
			t.Fatal("test setup: ICMP sockets open as nobody in a namespace whose ping_group_range admits no group")
		}
	case os.Geteuid() == 0:
		runWithoutICMP(t, "TestRunsWithoutICMPWhenNoDeviceIsPinged")
		return
	case icmpAllowed():
		skipOrFail(t, "this process may open ICMP sockets (net.ipv4.ping_group_range admits its group, or CAP_NET_RAW), "+
			"and only root can make a namespace where it may not")
	}
	rcv := newReceiver(t, always(http.StatusOK))
	c := upRule(testConfig{ReceiverURL: rcv.srv.URL})
	path := writeConfig(t, t.TempDir(), c)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// icmp.privileged stays auto: both ping and raw sockets are refused.
	withICMP := string(b)
	noICMP := strings.Replace(withICMP, "    role: access\n", "    role: access\n    icmp: {disabled: true}\n", 1)
	if noICMP == withICMP {
		t.Fatal("test bug: config layout changed")
	}
	if err := os.WriteFile(path, []byte(noICMP), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := startApp(t, path)

	if err := os.WriteFile(path, []byte(withICMP), 0o644); err != nil {
		t.Fatal(err)
	}
	err = a.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "net.ipv4.ping_group_range") || !strings.Contains(err.Error(), "CAP_NET_RAW") {
		t.Fatalf("Reload adding a pinged device without ICMP sockets: %v; want a rejection naming both fixes", err)
	}
	if v := gaugeValue(t, a, "nocbridge_config_last_reload_successful"); v != 0 {
		t.Errorf("reload gauge %v, want 0", v)
	}
	var devs []struct{ State string }
	getJSON(t, fmt.Sprintf("http://%s/api/v1/devices", a.HTTPAddr()), &devs)
	if len(devs) != 1 || devs[0].State != "unknown" {
		t.Errorf("devices %+v; the running config (no ICMP) must stay", devs)
	}
}

// icmpAllowed reports whether this process may open an ICMP socket of
// either kind (icmp.privileged: auto).
func icmpAllowed() bool {
	e, err := icmp.New(icmp.Options{Privileged: icmp.ModeAuto, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return false
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = e.Run(ctx, func(observation.Observation) {}) // closes the sockets
	return true
}

// runWithoutICMP runs the test again as nobody (no capabilities) inside a
// network namespace whose net.ipv4.ping_group_range is "1 0" (no group):
// there neither raw nor ping sockets open, whatever the host allows.
func runWithoutICMP(t *testing.T, test string) {
	t.Helper()
	dev := netns.New(t) // root and ip, or skip (fail under CI)
	if out, err := dev.Exec(t, "sysctl", "-w", "net.ipv4.ping_group_range=1 0").CombinedOutput(); err != nil {
		t.Fatalf("sysctl in %s: %v: %s", dev.Name, err, out)
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		skipOrFail(t, "needs setpriv (util-linux) to run as nobody: %v", err)
	}
	const nobody = "65534"
	// nobody must be able to run a copy of the test binary and write a temp dir.
	dir, err := os.MkdirTemp("", "nocbridge-noicmp-") // t.TempDir's parent is closed to others
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "app.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tmp, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := dev.Exec(t, setpriv, "--reuid="+nobody, "--regid="+nobody, "--clear-groups",
		bin, "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envNoICMPChild+"=1", "TMPDIR="+tmp)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s as nobody in namespace %s: %v\n%s", test, dev.Name, err, out)
	}
	t.Logf("as nobody in namespace %s:\n%s", dev.Name, out)
}

// TestFailedStartReleasesSockets: when the start fails late (the HTTP port
// is taken), the trap socket opened before is released, so a fixed config
// can start in the same process.
func TestFailedStartReleasesSockets(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	trapPort, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: "http://127.0.0.1:1", Listen: taken.Addr().String()}))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	withTraps := strings.Replace(string(b), "devices:\n", fmt.Sprintf("traps:\n  listen: 127.0.0.1:%d\n  communities: [public]\ndevices:\n", trapPort), 1)
	// No device is pinged, so the start gets as far as HTTP with or without ICMP privileges.
	withTraps = strings.Replace(withTraps, "    role: access\n", "    role: access\n    icmp: {disabled: true}\n", 1)
	if err := os.WriteFile(path, []byte(withTraps), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{ConfigPath: path, Version: "test", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "http listen") {
		t.Fatalf("Run with a taken HTTP port: %v; want an http listen error", err)
	}
	conn, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", trapPort))
	if err != nil {
		t.Fatalf("the trap port is still held after the failed start: %v", err)
	}
	conn.Close()
}

// TestReloadBeforeRunIsRefused: a SIGHUP that arrives while the daemon is
// still starting must not touch half-built state.
func TestReloadBeforeRunIsRefused(t *testing.T) {
	path := writeConfig(t, t.TempDir(), upRule(testConfig{ReceiverURL: "http://127.0.0.1:1"}))
	a, err := New(Options{ConfigPath: path, Version: "test", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Reload before Run: %v; want a refusal", err)
	}
}
