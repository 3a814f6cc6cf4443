package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
)

// TestRunsWithoutICMPWhenNoDeviceIsPinged: a traps/polling-only deployment
// starts without ICMP privileges, and a reload that would need them is
// rejected with the two fixes named, keeping the running config.
func TestRunsWithoutICMPWhenNoDeviceIsPinged(t *testing.T) {
	// privileged: false asks for ping sockets only; they are refused where
	// net.ipv4.ping_group_range excludes our group (the kernel default "1 0").
	if e, err := icmp.New(icmp.Options{Privileged: icmp.ModePing, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = e.Run(ctx, func(observation.Observation) {})
		t.Skip("ping sockets are allowed for this process here (net.ipv4.ping_group_range), so ICMP cannot be made to fail")
	}
	rcv := newReceiver(t, always(http.StatusOK))
	c := upRule(testConfig{ReceiverURL: rcv.srv.URL})
	path := writeConfig(t, t.TempDir(), c)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	withICMP := strings.Replace(string(b), "  timeout: 500ms\n", "  timeout: 500ms\n  privileged: false\n", 1)
	noICMP := strings.Replace(withICMP, "    role: access\n", "    role: access\n    icmp: {disabled: true}\n", 1)
	if withICMP == string(b) || noICMP == withICMP {
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
