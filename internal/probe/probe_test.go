package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
)

const testConfig = "testdata/nocbridge.yaml"

// fakePinger answers from a table by address, records what it was asked,
// and can hold a round until released (concurrency tests).
type fakePinger struct {
	mu      sync.Mutex
	stats   map[string]PingStats
	asked   []PingRequest
	hold    chan struct{} // non-nil: Ping waits for it (or ctx)
	started chan string
}

func (f *fakePinger) Ping(ctx context.Context, req PingRequest) (PingStats, error) {
	f.mu.Lock()
	f.asked = append(f.asked, req)
	st, ok := f.stats[req.Address]
	f.mu.Unlock()
	if f.started != nil {
		f.started <- req.Address
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return PingStats{}, ctx.Err()
		}
	}
	if !ok {
		return PingStats{}, errors.New("no route to host")
	}
	return st, nil
}

func (f *fakePinger) requests() []PingRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]PingRequest(nil), f.asked...)
}

func newFakePinger() *fakePinger {
	return &fakePinger{stats: map[string]PingStats{
		"192.0.2.1":  {IP: "192.0.2.1", Socket: "ping socket", Sent: 2, Recv: 2, Min: 410 * time.Microsecond, Avg: 520 * time.Microsecond, Max: 630 * time.Microsecond, Mdev: 110 * time.Microsecond},
		"192.0.2.7":  {IP: "192.0.2.7", Socket: "ping socket", Sent: 3, Recv: 0, Loss: 100},
		"192.0.2.99": {IP: "192.0.2.99", Socket: "ping socket", Sent: 3, Recv: 3, Min: time.Millisecond, Avg: time.Millisecond, Max: time.Millisecond},
	}}
}

// agents are the fake SNMP agents of the test config's devices: core-sw1
// answers (Cisco CPU rows), access-sw7 stays silent as a device does to a
// wrong v2c community.
func agents() func(snmp.Target) (snmp.Client, error) {
	core := snmp.NewFakeAgent().
		Set(".1.3.6.1.2.1.1.5.0", gosnmp.OctetString, []byte("core-sw1.hq.example.net")).
		Set(".1.3.6.1.2.1.1.1.0", gosnmp.OctetString, []byte("Cisco IOS XE Software, Version 17.9.4\nTechnical Support: http://www.cisco.com/techsupport")).
		Set(".1.3.6.1.2.1.1.3.0", gosnmp.TimeTicks, uint32(36_000_000)).
		Set(".1.3.6.1.4.1.9.9.109.1.1.1.1.8.1", gosnmp.Gauge32, uint(12)).
		Set(".1.3.6.1.4.1.9.9.109.1.1.1.1.8.2", gosnmp.Gauge32, uint(18))
	silent := snmp.NewFakeAgent().SetLatency(time.Second) // timeout × (retries + 1), as gosnmp would wait
	silent.SetError(gosnmp.ErrMaxRetriesExceeded)
	return func(t snmp.Target) (snmp.Client, error) {
		switch t.Device {
		case "core-sw1":
			return core.Client(t)
		case "access-sw7":
			return silent.Client(t)
		}
		return nil, errors.New("no agent for " + t.Device)
	}
}

func noDNS(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("lookup: no such host (the test resolves nothing)")
}

func testProber(p Pinger) *Prober {
	return New(Options{Pinger: p, SNMPClient: agents(), Resolve: noDNS})
}

func snapshot(t *testing.T) Snapshot { return snapshotOf(t, testConfig) }

func snapshotOf(t *testing.T, path string) Snapshot {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := SnapshotOf(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCommandGolden runs the command on the fakes, in a bubble so the
// durations shown are the simulated ones.
func TestCommandGolden(t *testing.T) {
	tests := []struct {
		target   string
		json     bool
		answered bool
	}{
		{"core-sw1", false, true},
		{"core-sw1", true, true},
		{"access-sw7", false, false},
		{"quiet", false, false},
		{"192.0.2.99", false, true},
		{"192.0.2.1", false, true}, // a device's address finds the device
	}
	for _, tc := range tests {
		name := tc.target + map[bool]string{true: ".json", false: ".txt"}[tc.json]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var out bytes.Buffer
				answered, err := testProber(newFakePinger()).Command(t.Context(), testConfig, tc.target, tc.json, &out)
				if err != nil {
					t.Fatal(err)
				}
				if answered != tc.answered {
					t.Errorf("answered = %v, want %v", answered, tc.answered)
				}
				notifytest.Golden(t, name, out.Bytes()) // go test -update rewrites it
			})
		})
	}
}

func TestProbeSettingsAndVerdicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ping := newFakePinger()
		r, err := testProber(ping).Probe(t.Context(), snapshot(t), "core-sw1")
		if err != nil {
			t.Fatal(err)
		}
		// The daemon's settings: the device's count override, the config's
		// timeout and socket mode, echoes spaced as the engine spaces them.
		want := PingRequest{Address: "192.0.2.1", Count: 2, Spacing: 100 * time.Millisecond, Timeout: time.Second, Mode: icmp.ModeAuto}
		if got := ping.requests(); len(got) != 1 || got[0] != want {
			t.Errorf("ping requests %+v, want [%+v]", got, want)
		}
		checks := r.Checks()
		var names []string
		for _, c := range checks {
			names = append(names, c.Name)
			if !c.OK {
				t.Errorf("check %+v not OK", c)
			}
		}
		if strings.Join(names, ",") != "ping,snmp,traps,traps" {
			t.Errorf("checks %v, want ping, snmp and two trap checks", names)
		}
		if r.SNMP.CPUPct == nil || *r.SNMP.CPUPct != 15 || r.SNMP.CPUSource != snmp.SourceCisco || r.SNMP.SysName != "core-sw1.hq.example.net" {
			t.Errorf("snmp %+v, want cpu 15 from %s and the sysName", r.SNMP, snmp.SourceCisco)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for i, secret := range []string{"auth-pass-7b1e", "priv-pass-93c0", "not-accepted", `"public"`} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("the result reveals secret #%d of the test config", i)
			}
		}
	})
}

func TestTrapVerdicts(t *testing.T) {
	s := snapshot(t)
	p := testProber(newFakePinger())
	tests := []struct {
		target string
		want   []TrapCheck
	}{
		{"core-sw1", []TrapCheck{
			{What: "traps from 192.0.2.1", Accepted: true, Detail: "accepted as device core-sw1", Device: "core-sw1"},
			{What: "v3 traps as user noc (profile core-v3)", Accepted: true, Detail: "accepted as device core-sw1", Device: "core-sw1"},
		}},
		{"access-sw7", []TrapCheck{
			{What: "traps from 192.0.2.7", Accepted: true, Detail: "accepted as device access-sw7", Device: "access-sw7"},
			{What: "v2c traps with the community of profile wrong-v2c", Reason: "community", Detail: "unknown SNMP community"},
		}},
		{"192.0.2.99", []TrapCheck{
			{What: "traps from 192.0.2.99", Reason: "unknown_source", Detail: "trap from an address not in the inventory"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			got := p.traps(t.Context(), s, mustFind(t, p, s, tc.target), true).Checks
			if len(got) != len(tc.want) {
				t.Fatalf("checks %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("check %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	t.Run("configured by DNS name", func(t *testing.T) {
		// The CLI's inventory has no resolutions: the probe resolves the
		// device's name and the receiver's check finds it by that address.
		p := New(Options{Pinger: newFakePinger(), SNMPClient: agents(), Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			if host != "dns-sw.example.net" {
				return nil, errors.New("no such host")
			}
			return []netip.Addr{netip.MustParseAddr("192.0.2.50")}, nil
		}})
		got := p.traps(t.Context(), s, mustFind(t, p, s, "dns-sw"), true).Checks
		want := TrapCheck{What: "traps from 192.0.2.50", Accepted: true, Detail: "accepted as device dns-sw", Device: "dns-sw"}
		if len(got) != 2 || got[0] != want || !got[1].Accepted {
			t.Errorf("checks %+v, want the source accepted as dns-sw (%+v) and its v2c community", got, want)
		}
		// Without DNS the check says so instead of guessing.
		got = testProber(newFakePinger()).traps(t.Context(), s, mustFind(t, p, s, "dns-sw"), true).Checks
		if len(got) != 1 || got[0].Accepted || !strings.Contains(got[0].Detail, "does not resolve") {
			t.Errorf("checks without DNS: %+v", got)
		}
	})
	t.Run("no receiver", func(t *testing.T) {
		s := s
		cfg := *s.Config
		cfg.Traps.Listen = ""
		s.Config = &cfg
		if got := p.traps(t.Context(), s, mustFind(t, p, s, "core-sw1"), true); got.Skipped == "" || len(got.Checks) != 0 {
			t.Errorf("traps without a receiver: %+v, want skipped", got)
		}
	})
}

func mustFind(t *testing.T, p *Prober, s Snapshot, target string) *inventory.Device {
	t.Helper()
	d, _, err := p.find(t.Context(), s, target)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBadTargetAndConfig(t *testing.T) {
	p := testProber(newFakePinger())
	var out bytes.Buffer
	if _, err := p.Command(t.Context(), testConfig, "no-such-switch", false, &out); !errors.Is(err, ErrTarget) || !strings.Contains(err.Error(), "no-such-switch") {
		t.Errorf("unknown name: %v, want ErrTarget naming it", err)
	}
	if _, err := p.Command(t.Context(), testConfig, "", false, &out); !errors.Is(err, ErrTarget) {
		t.Errorf("no target: %v, want ErrTarget", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("devices:\n  - {name: a, adress: 10.0.0.1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := p.Command(t.Context(), bad, "a", false, &out)
	var ce config.Errors
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "bad.yaml:2") {
		t.Errorf("bad config: %v, want config errors with FILE:LINE", err)
	}
	if out.Len() != 0 {
		t.Errorf("output on errors: %q", out.String())
	}
}

// TestDeviceLimits: one probe per device at a time, a small global limit,
// unknown devices refused; refusals counted.
func TestDeviceLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ping := newFakePinger()
		ping.hold, ping.started = make(chan struct{}), make(chan string, 8)
		reg := prometheus.NewRegistry()
		s := snapshot(t)
		p := New(Options{Pinger: ping, SNMPClient: agents(), Resolve: noDNS, MaxConcurrent: 2, Registerer: reg, Logger: slog.New(slog.DiscardHandler),
			Current: func() Snapshot { return s }})
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := p.Device(t.Context(), "core-sw1"); err != nil {
				t.Errorf("first probe: %v", err)
			}
		})
		<-ping.started
		if _, err := p.Device(t.Context(), "core-sw1"); !errors.Is(err, ErrBusy) {
			t.Errorf("second probe of the same device: %v, want ErrBusy", err)
		}
		wg.Go(func() {
			if _, err := p.Device(t.Context(), "access-sw7"); err != nil {
				t.Errorf("probe of another device: %v", err)
			}
		})
		<-ping.started
		if _, err := p.Device(t.Context(), "quiet"); !errors.Is(err, ErrBusy) {
			t.Errorf("third probe with a limit of 2: %v, want ErrBusy", err)
		}
		if _, err := p.Device(t.Context(), "nope"); !errors.Is(err, ErrUnknownDevice) {
			t.Errorf("unknown device: %v, want ErrUnknownDevice", err)
		}
		close(ping.hold)
		wg.Wait()
		if _, err := p.Device(t.Context(), "core-sw1"); err != nil {
			t.Errorf("probe after the others ended: %v", err)
		}
		for result, want := range map[string]float64{"busy": 2, "answered": 2, "unanswered": 1} {
			if got := promtest.Value(t, reg, "nocbridge_manual_probes_total", "result", result); got != want {
				t.Errorf("nocbridge_manual_probes_total{result=%q} = %v, want %v", result, got, want)
			}
		}
	})
}

// TestProbeBounded: a pinger and an agent that never answer cannot hold a
// probe past its timeout.
func TestProbeBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ping := newFakePinger()
		ping.hold = make(chan struct{})
		hung := snmp.NewFakeAgent().SetLatency(24 * time.Hour)
		p := New(Options{Pinger: ping, SNMPClient: hung.Client, Resolve: noDNS, Timeout: 3 * time.Second})
		start := time.Now()
		r, err := p.Probe(t.Context(), snapshot(t), "core-sw1")
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("probe took %v, bound 3s", took)
		}
		if r.Answered || r.SNMP.Reason != snmp.ReasonTimeout || r.Ping.Error == "" {
			t.Errorf("hung device: answered %v, snmp %q, ping error %q", r.Answered, r.SNMP.Reason, r.Ping.Error)
		}
	})
}
