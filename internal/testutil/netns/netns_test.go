package netns_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/testutil/netns"
)

var benchmarkRange = netip.MustParsePrefix("198.18.0.0/15")

// prober pings devices with the real engine, from the test's namespace.
type prober struct {
	results chan observation.Observation
}

func newProber(t *testing.T, devs ...*netns.Host) *prober {
	t.Helper()
	e, err := icmp.New(icmp.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		netns.SkipOrFail(t, "needs ICMP sockets: %v", err)
	}
	var targets []icmp.Target
	for _, d := range devs {
		targets = append(targets, icmp.Target{Device: d.Name, Address: d.Addr.String(), Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond})
	}
	e.SetTargets(targets)
	p := &prober{results: make(chan observation.Observation, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, func(o observation.Observation) { p.results <- o }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("icmp engine: %v", err)
		}
	})
	return p
}

// waitState waits until a round of dev answers (up) or loses every echo.
func (p *prober) waitState(t *testing.T, dev *netns.Host, up bool) {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case o := <-p.results:
			if o.Device.Name == dev.Name && o.Vars["up"] == up && (up || o.Vars["loss"] == 100.0) {
				return
			}
		case <-deadline:
			t.Fatalf("%s (%s) not %s within 3s", dev.Name, dev.Addr, map[bool]string{true: "answering", false: "silent"}[up])
		}
	}
}

func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	var dev *netns.Host
	t.Run("device", func(t *testing.T) {
		dev = netns.New(t)
		for _, link := range []string{dev.HostLink, dev.DeviceLink} {
			if len(link) > 15 {
				t.Errorf("link name %q is longer than 15 bytes", link)
			}
		}
		if dev.Prefix.Bits() != 30 || !benchmarkRange.Contains(dev.Prefix.Addr()) ||
			!dev.Prefix.Contains(dev.Addr) || !dev.Prefix.Contains(dev.MonitorAddr) || dev.Addr == dev.MonitorAddr {
			t.Errorf("addresses %s and %s on %s: want two hosts of a /30 in %s", dev.MonitorAddr, dev.Addr, dev.Prefix, benchmarkRange)
		}
		if !strings.Contains(run(t, "ip", "netns", "list"), dev.Name) {
			t.Errorf("namespace %s not listed", dev.Name)
		}
		out, err := dev.Exec(t, "ip", "-4", "-o", "addr", "show", "dev", dev.DeviceLink).CombinedOutput()
		if err != nil || !strings.Contains(string(out), dev.Addr.String()+"/30") {
			t.Errorf("Exec in the namespace: %v: %s; want %s on %s", err, out, dev.Addr, dev.DeviceLink)
		}

		p := newProber(t, dev)
		p.waitState(t, dev, true)
		dev.LinkDown(t)
		p.waitState(t, dev, false)
		dev.LinkUp(t)
		p.waitState(t, dev, true)
	})
	if dev == nil {
		return // skipped
	}
	if strings.Contains(run(t, "ip", "netns", "list"), dev.Name) {
		t.Errorf("namespace %s left behind", dev.Name)
	}
	if err := exec.Command("ip", "link", "show", dev.HostLink).Run(); err == nil {
		t.Errorf("link %s left behind", dev.HostLink)
	}
}

func TestDevicesDoNotCollide(t *testing.T) {
	t.Parallel()
	var devs []*netns.Host
	names, prefixes := map[string]bool{}, map[netip.Prefix]bool{}
	for range 4 {
		d := netns.New(t)
		if names[d.Name] || prefixes[d.Prefix] {
			t.Fatalf("device %s (%s) reuses a name or subnet in use", d.Name, d.Prefix)
		}
		names[d.Name], prefixes[d.Prefix] = true, true
		devs = append(devs, d)
	}
	p := newProber(t, devs...)
	for _, d := range devs {
		p.waitState(t, d, true)
	}
	// One device down leaves the others up.
	devs[0].LinkDown(t)
	p.waitState(t, devs[0], false)
	p.waitState(t, devs[1], true)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A device behind another is reached through it, and cut off with it.
func TestBehind(t *testing.T) {
	core := netns.New(t)
	acc := core.Behind(t)
	p := newProber(t, core, acc)
	p.waitState(t, core, true)
	p.waitState(t, acc, true)
	core.LinkDown(t)
	p.waitState(t, acc, false)
	p.waitState(t, core, false)
	core.LinkUp(t)
	p.waitState(t, core, true)
	p.waitState(t, acc, true)
}
