package snmp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

// These tests poll real agents: net-snmp's snmpd on loopback, started by
// the test with its own configuration. Nothing else is ever polled.

const (
	v3AuthPass = "auth-Pass-7b1e"
	v3PrivPass = "priv-Pass-93c0"
)

// startSnmpd runs snmpd on port with conf; it is stopped when the test ends.
func startSnmpd(t *testing.T, dir string, port int, conf string) *netsnmp.Agent {
	t.Helper()
	if _, err := netsnmp.Path(); err != nil {
		netns.SkipOrFail(t, "needs net-snmp's snmpd: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := netsnmp.Start(ctx, netsnmp.Config{
		Dir:            dir,
		Listen:         []string{fmt.Sprintf("127.0.0.1:%d", port)},
		Conf:           conf,
		ReadyCommunity: "public",
	})
	if err != nil {
		t.Fatalf("snmpd: %v", err)
	}
	t.Cleanup(a.Stop)
	return a
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := netsnmp.FreeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ciscoCPUConf(cpu int) string {
	return fmt.Sprintf("rocommunity public 127.0.0.1\noverride .1.3.6.1.4.1.9.9.109.1.1.1.1.8.1 integer %d\n", cpu)
}

// runReal runs an engine over real gosnmp until the test ends.
func runReal(t *testing.T, targets ...Target) <-chan Result {
	t.Helper()
	e := New(Options{Logger: discard()})
	e.SetTargets(targets)
	results := make(chan Result, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.run(ctx, func(r Result) { results <- r }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	})
	return results
}

// waitFor returns the first result of device that satisfies ok.
func waitFor(t *testing.T, results <-chan Result, device string, within time.Duration, ok func(Result) bool) Result {
	t.Helper()
	deadline := time.After(within)
	var last Result
	for {
		select {
		case r := <-results:
			if r.Device != device {
				continue
			}
			last = r
			if ok(r) {
				return r
			}
		case <-deadline:
			t.Fatalf("no matching result for %s within %v; last: %+v", device, within, last)
		}
	}
}

func v2cTarget(device string, port int) Target {
	return Target{Device: device, Address: "127.0.0.1", Profile: config.SNMPProfile{Version: "2c", Community: "public", Port: port},
		Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Retries: 1}
}

func TestRealCiscoCPUOverrideAndRestart(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	first := startSnmpd(t, dir, port, ciscoCPUConf(95))
	results := runReal(t, v2cTarget("lab-sw", port))

	r := waitFor(t, results, "lab-sw", 5*time.Second, func(r Result) bool { return r.Err == nil })
	if r.Vars[VarCPU] != 95.0 || r.CPUSource != SourceCisco {
		t.Fatalf("cpu = %v from %q, want 95 from %s", r.Vars[VarCPU], r.CPUSource, SourceCisco)
	}
	if mem, ok := r.Vars[VarMem].(float64); !ok || mem <= 0 || mem > 100 {
		t.Errorf("mem = %v from %q, want a percentage (snmpd serves HOST-RESOURCES-MIB)", r.Vars[VarMem], r.MemSource)
	}
	if r.Vars[VarUptimeReset] != false {
		t.Errorf("uptime_reset = %v on the first poll", r.Vars[VarUptimeReset])
	}
	// Let the agent's sysUpTime grow past what the restarted one will show.
	waitFor(t, results, "lab-sw", 5*time.Second, func(r Result) bool { up, _ := r.Vars[VarUptime].(float64); return up >= 1 })

	first.Stop()
	startSnmpd(t, dir, port, ciscoCPUConf(20))
	r = waitFor(t, results, "lab-sw", 5*time.Second, func(r Result) bool { return r.Err == nil && r.Vars[VarCPU] != 95.0 })
	if r.Vars[VarCPU] != 20.0 {
		t.Fatalf("cpu after the restart = %v, want 20", r.Vars[VarCPU])
	}
	if r.Vars[VarUptimeReset] != true {
		t.Errorf("uptime_reset = %v on the first poll of the restarted agent (uptime %v), want true", r.Vars[VarUptimeReset], r.Vars[VarUptime])
	}
	r = waitFor(t, results, "lab-sw", 5*time.Second, func(r Result) bool { return r.Err == nil })
	if r.Vars[VarUptimeReset] != false {
		t.Errorf("uptime_reset = %v on the next poll, want false", r.Vars[VarUptimeReset])
	}
}

func TestRealV3(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	startSnmpd(t, dir, port, ciscoCPUConf(42)+
		fmt.Sprintf("createUser noc SHA-256 %s AES %s\nrouser noc priv\n", v3AuthPass, v3PrivPass))

	v3 := func(device, user, auth string) Target {
		return Target{Device: device, Address: "127.0.0.1", Interval: 300 * time.Millisecond, Timeout: 200 * time.Millisecond,
			Profile: config.SNMPProfile{Version: "3", Port: port, User: user, Auth: &config.SNMPKey{Protocol: "SHA256", Passphrase: config.Secret(auth)},
				Priv: &config.SNMPKey{Protocol: "AES", Passphrase: config.Secret(v3PrivPass)}}}
	}
	results := runReal(t,
		v3("v3-ok", "noc", v3AuthPass),
		v3("v3-wrong-key", "noc", "not-the-auth-key"),
		v3("v3-unknown-user", "intruder", v3AuthPass),
	)

	ok := waitFor(t, results, "v3-ok", 5*time.Second, func(Result) bool { return true })
	if ok.Err != nil || ok.Vars[VarCPU] != 42.0 {
		t.Fatalf("v3 poll: err %v cpu %v, want 42", ok.Err, ok.Vars[VarCPU])
	}
	for device, want := range map[string]error{"v3-wrong-key": gosnmp.ErrWrongDigest, "v3-unknown-user": gosnmp.ErrUnknownUsername} {
		r := waitFor(t, results, device, 5*time.Second, func(Result) bool { return true })
		if r.Reason != ReasonAuth || !errors.Is(r.Err, want) || r.Vars != nil {
			t.Errorf("%s: reason %q err %v vars %v; want reason auth (%v) and no vars", device, r.Reason, r.Err, r.Vars, want)
		}
		for _, secret := range []string{v3AuthPass, v3PrivPass, "not-the-auth-key"} {
			if r.Err != nil && strings.Contains(r.Err.Error(), secret) {
				t.Errorf("%s: error reveals a passphrase", device)
			}
		}
	}
}

func TestRealUnansweredPorts(t *testing.T) {
	// A bound socket that never answers: the device is silent (down, or a
	// wrong community) and every attempt times out.
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silentPort := silent.LocalAddr().(*net.UDPAddr).Port
	// A port nobody listens on: loopback answers ICMP port unreachable.
	closedPort := freePort(t)

	results := runReal(t, v2cTarget("silent", silentPort), v2cTarget("closed", closedPort))
	for device, reason := range map[string]string{"silent": ReasonTimeout, "closed": ReasonUnreachable} {
		r := waitFor(t, results, device, 5*time.Second, func(Result) bool { return true })
		if r.Reason != reason || r.Err == nil || r.Vars != nil {
			t.Errorf("%s: reason %q err %v vars %v; want reason %s and no vars", device, r.Reason, r.Err, r.Vars, reason)
		}
		if !strings.Contains(r.Err.Error(), device) {
			t.Errorf("%s: error %q does not name the device", device, r.Err)
		}
	}
}
