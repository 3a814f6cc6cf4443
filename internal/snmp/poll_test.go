package snmp

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/nocbridge/nocbridge/internal/config"
)

func newTestPoller(a *FakeAgent, oids map[string]string) *poller {
	cfg := withDefaults(Target{Device: "dev1", Address: "192.0.2.1", Profile: config.SNMPProfile{Version: "2c"}, OIDs: oids})
	return newPoller(cfg, customOIDs(cfg, discard()), a.Client, discard())
}

func pollOnce(t *testing.T, p *poller) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.poll(ctx)
}

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSourcesByDeviceFamily(t *testing.T) {
	cases := []struct {
		name             string
		agent            *FakeAgent
		cpu, mem, uptime float64
		cpuSrc, memSrc   string
	}{
		{"cisco rows averaged, preferred over the rest", ciscoSwitch().
			Set(oidHrProcessorLoad+".1", gosnmp.Integer, 99).Set(oidSsCPUIdle, gosnmp.Integer, 1),
			40, 20, 1234.56, SourceCisco, SourceCiscoMemPool},
		{"host resources averaged, RAM rows only", linuxHost(), 30, 25, 50, SourceHostResources, SourceHostResources},
		{"UCD idle and memory", ucdOnly(), 15, 60, 0.77, SourceUCD, SourceUCD},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := pollOnce(t, newTestPoller(tc.agent, nil))
			if r.Err != nil {
				t.Fatalf("poll: %v", r.Err)
			}
			if cpu, _ := r.Vars[VarCPU].(float64); !approx(cpu, tc.cpu) {
				t.Errorf("cpu = %v, want %v", r.Vars[VarCPU], tc.cpu)
			}
			if mem, _ := r.Vars[VarMem].(float64); !approx(mem, tc.mem) {
				t.Errorf("mem = %v, want %v", r.Vars[VarMem], tc.mem)
			}
			if up, _ := r.Vars[VarUptime].(float64); !approx(up, tc.uptime) {
				t.Errorf("uptime_s = %v, want %v", r.Vars[VarUptime], tc.uptime)
			}
			if reset, ok := r.Vars[VarUptimeReset].(bool); !ok || reset {
				t.Errorf("uptime_reset = %v, want false", r.Vars[VarUptimeReset])
			}
			if r.CPUSource != tc.cpuSrc || r.MemSource != tc.memSrc {
				t.Errorf("sources = %q, %q; want %q, %q", r.CPUSource, r.MemSource, tc.cpuSrc, tc.memSrc)
			}
		})
	}
}

func TestHrStorageUnitsDifferPerRow(t *testing.T) {
	a := linuxHost().
		Set(oidHrStorageType+".2", gosnmp.ObjectIdentifier, oidHrStorageRAM).
		Set(oidHrStorageUnits+".2", gosnmp.Integer, 4096).
		Set(oidHrStorageSize+".2", gosnmp.Integer, 1000).
		Set(oidHrStorageUsed+".2", gosnmp.Integer, 1000)
	r := pollOnce(t, newTestPoller(a, nil))
	// (250*1024 + 1000*4096) / (1000*1024 + 1000*4096)
	want := 100 * float64(250*1024+1000*4096) / float64(1000*1024+1000*4096)
	if mem, _ := r.Vars[VarMem].(float64); !approx(mem, want) {
		t.Fatalf("mem = %v, want %v", r.Vars[VarMem], want)
	}
}

func TestRememberedSourcesAreAskedDirectly(t *testing.T) {
	a := linuxHost()
	p := newTestPoller(a, map[string]string{"temp": ".1.3.6.1.4.1.9.9.13.1.3.1.3.1"})
	a.Set(".1.3.6.1.4.1.9.9.13.1.3.1.3.1", gosnmp.Gauge32, uint(41))
	first := pollOnce(t, p)
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	a.ResetRequests()
	a.Set(oidHrProcessorLoad+".196610", gosnmp.Integer, 90)
	r := pollOnce(t, p)
	gets, walks, seen := a.Requests()
	if gets != 1 || walks != 0 {
		t.Fatalf("second poll made %d GETs and %d walks (%v), want one GET", gets, walks, seen)
	}
	if cpu := r.Vars[VarCPU]; cpu != 40.0 {
		t.Errorf("cpu = %v, want 40 (read from the remembered rows)", cpu)
	}
	if r.Vars[VarMem] != 25.0 || r.Vars["temp"] != 41.0 {
		t.Errorf("vars = %v", r.Vars)
	}
}

func TestSourceGoneIsRediscovered(t *testing.T) {
	a := ciscoSwitch().Set(oidHrProcessorLoad+".1", gosnmp.Integer, 70)
	p := newTestPoller(a, nil)
	if r := pollOnce(t, p); r.CPUSource != SourceCisco {
		t.Fatalf("first poll: source %q", r.CPUSource)
	}
	a.DeleteTree(oidCiscoCPUTotal5minRev) // e.g. a firmware without the Cisco MIB
	r := pollOnce(t, p)
	if r.CPUSource != SourceHostResources || r.Vars[VarCPU] != 70.0 {
		t.Fatalf("after the Cisco rows vanished: source %q cpu %v, want HOST-RESOURCES-MIB 70", r.CPUSource, r.Vars[VarCPU])
	}
}

func TestNewRowsSeenAtRediscovery(t *testing.T) {
	a := ciscoSwitch()
	p := newTestPoller(a, nil)
	pollOnce(t, p)
	a.Set(oidCiscoCPUTotal5minRev+".3", gosnmp.Gauge32, uint(100)) // a second supervisor comes up
	var last Result
	for range rediscoverEvery + 1 { // the remembered rows serve rediscoverEvery polls
		last = pollOnce(t, p)
	}
	if last.Vars[VarCPU] != 60.0 {
		t.Fatalf("cpu after %d polls = %v, want 60 (three rows)", rediscoverEvery+1, last.Vars[VarCPU])
	}
}

func TestDeviceWithoutSourcesIsNotWalkedEveryPoll(t *testing.T) {
	a := NewFakeAgent().Set(oidSysUpTime, gosnmp.TimeTicks, uint32(1))
	p := newTestPoller(a, nil)
	r := pollOnce(t, p)
	if r.Err != nil || r.Vars[VarCPU] != nil || r.Vars[VarMem] != nil || r.Vars[VarUptime] != 0.01 {
		t.Fatalf("first poll: %+v", r)
	}
	a.ResetRequests()
	pollOnce(t, p)
	if gets, walks, seen := a.Requests(); gets != 1 || walks != 0 {
		t.Fatalf("second poll made %d GETs and %d walks (%v), want one GET", gets, walks, seen)
	}
}

func TestCustomOIDs(t *testing.T) {
	a := ucdOnly().
		Set(".1.3.6.1.2.1.2.2.1.10.1", gosnmp.Counter32, uint(4000000000)).
		Set(".1.3.6.1.2.1.31.1.1.1.6.1", gosnmp.Counter64, uint64(1<<63)).
		Set(".1.3.6.1.2.1.1.5.0", gosnmp.OctetString, []byte("core-sw1")).
		Set(".1.3.6.1.4.1.99.1.0", gosnmp.OctetString, []byte(" 12.5 ")).
		Set(".1.3.6.1.2.1.2.2.1.6.1", gosnmp.OctetString, []byte{0x00, 0x1b, 0xff, 0x0a}).
		Set(".1.3.6.1.2.1.4.20.1.1.10.0.0.1", gosnmp.IPAddress, "10.0.0.1")
	oids := map[string]string{
		"in_octets":  "1.3.6.1.2.1.2.2.1.10.1", // without the leading dot
		"hc_octets":  ".1.3.6.1.2.1.31.1.1.1.6.1",
		"sys_name":   ".1.3.6.1.2.1.1.5.0",
		"reading":    ".1.3.6.1.4.1.99.1.0",
		"mac":        ".1.3.6.1.2.1.2.2.1.6.1",
		"ip":         ".1.3.6.1.2.1.4.20.1.1.10.0.0.1",
		"missing":    ".1.3.6.1.4.1.99.2.0",
		"cpu":        ".1.3.6.1.4.1.99.3.0", // a built-in name: ignored
		"not_an_oid": "ifInOctets.1",
	}
	r := pollOnce(t, newTestPoller(a, oids))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := map[string]any{
		"in_octets": 4e9, "hc_octets": float64(1 << 63), "sys_name": "core-sw1", "reading": 12.5,
		"mac": "00:1b:ff:0a", "ip": "10.0.0.1", VarCPU: 15.0, VarMem: 60.0, VarUptime: 0.77, VarUptimeReset: false,
	}
	if len(r.Vars) != len(want) {
		t.Errorf("vars = %v, want %v", r.Vars, want)
	}
	for k, v := range want {
		if r.Vars[k] != v {
			t.Errorf("%s = %#v, want %#v", k, r.Vars[k], v)
		}
	}
}

func TestUptimeReset(t *testing.T) {
	a := ciscoSwitch()
	p := newTestPoller(a, nil)
	steps := []struct {
		ticks uint32
		fail  bool
		reset bool
	}{
		{ticks: 500000, reset: false},
		{ticks: 500100, reset: false},
		{fail: true},               // an outage: the last value is kept
		{ticks: 300, reset: true},  // restarted during the outage
		{ticks: 400, reset: false}, // and only once
		{ticks: 400, reset: false}, // a frozen counter is no restart
		{ticks: 10, reset: true},   // restarted again
		{ticks: 1000000, reset: false},
	}
	for i, s := range steps {
		if s.fail {
			a.SetError(context.DeadlineExceeded)
		} else {
			a.SetError(nil)
			a.Set(oidSysUpTime, gosnmp.TimeTicks, s.ticks)
		}
		r := pollOnce(t, p)
		if s.fail {
			if r.Err == nil || r.Vars != nil {
				t.Fatalf("step %d: want a failure without vars, got %+v", i, r)
			}
			continue
		}
		if r.Vars[VarUptimeReset] != s.reset {
			t.Errorf("step %d (ticks %d): uptime_reset = %v, want %v", i, s.ticks, r.Vars[VarUptimeReset], s.reset)
		}
	}
}

func TestUptimeWrapIsNoReset(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		last    uint32
		elapsed time.Duration
		now     uint32
		want    bool
	}{
		{"wrap after 60s", math.MaxUint32 - 3000, time.Minute, 3000, false},
		{"restart far from a wrap", 1_000_000, time.Minute, 3000, true},
		{"restart just before the wrap would be due", math.MaxUint32 - 100_000, time.Minute, 3000, true},
		{"increase", 100, time.Minute, 6100, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPoller(NewFakeAgent(), nil)
			p.uptime.ticks, p.uptime.at, p.uptime.known = tc.last, t0, true
			if got := p.uptimeWentBack(tc.now, t0.Add(tc.elapsed)); got != tc.want {
				t.Fatalf("uptimeWentBack = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFailuresCarryReasonAndNoVars(t *testing.T) {
	refused := &net.OpError{Op: "read", Net: "udp", Err: os.NewSyscallError("recvfrom", syscall.ECONNREFUSED)}
	cases := []struct {
		name   string
		err    error
		agent  *FakeAgent
		reason string
		is     error
	}{
		{"timeout", fmt.Errorf("request timeout (after 1 retries): %w", gosnmp.ErrMaxRetriesExceeded), nil, ReasonTimeout, gosnmp.ErrMaxRetriesExceeded},
		{"deadline", context.DeadlineExceeded, nil, ReasonTimeout, context.DeadlineExceeded},
		{"wrong digest", gosnmp.ErrWrongDigest, nil, ReasonAuth, gosnmp.ErrWrongDigest},
		{"unknown user", gosnmp.ErrUnknownUsername, nil, ReasonAuth, gosnmp.ErrUnknownUsername},
		{"authorizationError", &StatusError{Status: gosnmp.AuthorizationError}, nil, ReasonAuth, nil},
		{"port unreachable", fmt.Errorf("error reading from socket: %w", refused), nil, ReasonUnreachable, syscall.ECONNREFUSED},
		{"dns", &net.DNSError{Err: "no such host", Name: "sw9.example", IsNotFound: true}, nil, ReasonUnreachable, nil},
		{"genErr", &StatusError{Status: gosnmp.GenErr, Index: 1}, nil, ReasonError, nil},
		{"no such object", nil, NewFakeAgent(), ReasonError, ErrNoSuchObject},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.agent
			if a == nil {
				a = ciscoSwitch()
				a.SetError(tc.err)
			}
			r := pollOnce(t, newTestPoller(a, map[string]string{"x": ".1.3.6.1.4.1.99.1.0"}))
			if r.Err == nil || r.Reason != tc.reason || r.Vars != nil {
				t.Fatalf("got reason %q err %v vars %v; want reason %q and no vars", r.Reason, r.Err, r.Vars, tc.reason)
			}
			if tc.is != nil && !errors.Is(r.Err, tc.is) {
				t.Errorf("err %v does not wrap %v", r.Err, tc.is)
			}
			if r.Device != "dev1" || r.Time.IsZero() {
				t.Errorf("device %q time %v", r.Device, r.Time)
			}
		})
	}
}

func TestFailedPollReconnects(t *testing.T) {
	a := ciscoSwitch()
	p := newTestPoller(a, nil)
	pollOnce(t, p)
	a.SetError(context.DeadlineExceeded)
	pollOnce(t, p)
	open := a.Open()
	if open != 0 {
		t.Fatalf("%d clients open after a failed poll, want 0 (closed, reconnected next poll)", open)
	}
	a.SetError(nil)
	if r := pollOnce(t, p); r.Err != nil {
		t.Fatalf("poll after recovery: %v", r.Err)
	}
}

func TestNormalizeOID(t *testing.T) {
	for in, want := range map[string]string{
		"1.3.6.1.2.1.1.3.0": ".1.3.6.1.2.1.1.3.0", ".1.3.6": ".1.3.6", "": "", ".": "", "1": "", "1..3": "",
		"1.3.": "", "sysUpTime.0": "", "1.3.6.1.2.1.1.3.0 ": "", ".1.3.-6": "",
	} {
		got, ok := normalizeOID(in)
		if got != want || ok != (want != "") {
			t.Errorf("normalizeOID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestNewClientRejectsBadProfiles(t *testing.T) {
	cases := []struct {
		name string
		p    config.SNMPProfile
		want string
	}{
		{"no version", config.SNMPProfile{}, "unknown SNMP version"},
		{"bad version", config.SNMPProfile{Version: "4"}, "unknown SNMP version"},
		{"v3 without user", config.SNMPProfile{Version: "3"}, "no user"},
		{"unknown auth", config.SNMPProfile{Version: "3", User: "u", Auth: &config.SNMPKey{Protocol: "SHA999", Passphrase: "secret-auth-1"}}, "unknown SNMPv3 auth protocol"},
		{"auth without passphrase", config.SNMPProfile{Version: "3", User: "u", Auth: &config.SNMPKey{Protocol: "SHA"}}, "without an auth passphrase"},
		{"priv without auth", config.SNMPProfile{Version: "3", User: "u", Priv: &config.SNMPKey{Protocol: "AES", Passphrase: "secret-priv-1"}}, "privacy needs authentication"},
		{"unknown priv", config.SNMPProfile{Version: "3", User: "u", Auth: &config.SNMPKey{Protocol: "SHA", Passphrase: "secret-auth-1"}, Priv: &config.SNMPKey{Protocol: "3DES", Passphrase: "secret-priv-1"}}, "unknown SNMPv3 priv protocol"},
		{"port", config.SNMPProfile{Version: "2c", Port: 70000}, "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(Target{Device: "d", Address: "127.0.0.1", Profile: tc.p})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-") {
				t.Fatalf("error reveals a passphrase")
			}
		})
	}
	for _, p := range []config.SNMPProfile{
		{Version: "1", Community: "public"},
		{Version: "2c", Community: "public"},
		{Version: "3", User: "noc"},
		{Version: "3", User: "noc", Auth: &config.SNMPKey{Protocol: "sha-256", Passphrase: "authpass1"}},
		{Version: "3", User: "noc", Auth: &config.SNMPKey{Protocol: "SHA512", Passphrase: "authpass1"}, Priv: &config.SNMPKey{Protocol: "AES256C", Passphrase: "privpass1"}},
	} {
		if _, err := NewClient(Target{Device: "d", Address: "127.0.0.1", Profile: p}); err != nil {
			t.Errorf("NewClient(%s/%+v/%+v): %v", p.Version, p.Auth != nil, p.Priv != nil, err)
		}
	}
}
