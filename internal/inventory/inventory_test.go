package inventory

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

func names(ds []*Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

// New carries every device's effective settings and the topology.
func TestNewFromConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nocbridge.yaml")
	err := os.WriteFile(path, []byte(`
icmp: {interval: 20s, timeout: 2s, count: 2}
snmp:
  poll_interval: 30s
  profiles:
    lab: {version: 2c, community: public}
  oids: {temp_c: .1.3.6.1.4.1.9.9.13.1.3.1.3.1}
devices:
  - {name: core1, address: 192.0.2.1, site: HQ, role: core, snmp: lab, labels: {vendor: cisco}}
  - {name: core2, address: "2001:db8::2", site: HQ, role: core}
  - {name: acc1, address: 192.0.2.11, site: HQ, role: access, parents: [core1, core2], icmp: {interval: 5s}}
  - {name: acc2, address: acc2.example.net, site: Branch, role: access, parents: [core1], icmp: {disabled: true}}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	inv := New(cfg)
	if inv.Len() != 4 || !slices.Equal(names(inv.Devices()), []string{"core1", "core2", "acc1", "acc2"}) {
		t.Fatalf("devices %v, want the config's four in order", names(inv.Devices()))
	}
	core1, _ := inv.Device("core1")
	acc1, _ := inv.Device("acc1")
	acc2, _ := inv.Device("acc2")
	if core1.SNMP == nil || core1.SNMP.Interval != 30*time.Second || core1.SNMP.Profile.Community.Reveal() != "public" || core1.SNMP.OIDs["temp_c"] == "" {
		t.Errorf("core1 SNMP settings %+v", core1.SNMP)
	}
	if core1.ICMP == nil || *core1.ICMP != (ICMP{Interval: 20 * time.Second, Timeout: 2 * time.Second, Count: 2}) {
		t.Errorf("core1 ICMP %+v, want the config defaults", core1.ICMP)
	}
	if acc1.ICMP == nil || acc1.ICMP.Interval != 5*time.Second || acc1.ICMP.Count != 2 || acc1.SNMP != nil {
		t.Errorf("acc1 ICMP %+v SNMP %+v, want its own interval over the defaults and no polling", acc1.ICMP, acc1.SNMP)
	}
	if acc2.ICMP != nil {
		t.Errorf("acc2 has icmp disabled, got settings %+v", acc2.ICMP)
	}
	if got := names(inv.Parents(acc1)); !slices.Equal(got, []string{"core1", "core2"}) {
		t.Errorf("parents of acc1: %v", got)
	}
	if got := names(inv.Children("core1")); !slices.Equal(got, []string{"acc1", "acc2"}) {
		t.Errorf("children of core1: %v", got)
	}
	if got := names(inv.Site("HQ")); !slices.Equal(got, []string{"core1", "core2", "acc1"}) {
		t.Errorf("site HQ: %v", got)
	}
	if got := inv.Sites(); !slices.Equal(got, []string{"Branch", "HQ"}) {
		t.Errorf("sites %v", got)
	}
	for addr, want := range map[string]string{"192.0.2.1": "core1", "2001:db8::2": "core2", "::ffff:192.0.2.11": "acc1"} {
		if d, ok := inv.ByAddress(netip.MustParseAddr(addr)); !ok || d.Name != want {
			t.Errorf("ByAddress(%s) = %v, %v; want %s", addr, d, ok, want)
		}
	}
	if _, ok := inv.ByAddress(netip.MustParseAddr("192.0.2.99")); ok {
		t.Error("an address outside the inventory was found")
	}
}

// Live resolves DNS names in the background; a literal address keeps
// precedence, a reload's own resolution replaces the previous one, and a
// name that no longer resolves is no longer found.
func TestLiveResolvesNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		answers := map[string][]netip.Addr{"acc2.example.net": {netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.1")}}
		lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
			mu.Lock()
			defer mu.Unlock()
			if a, ok := answers[host]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		}
		first := Of(Device{Name: "core1", Address: "192.0.2.1"}, Device{Name: "acc2", Address: "acc2.example.net"})
		l := NewLive(first, slog.New(slog.DiscardHandler))
		l.lookup = lookup
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		synctest.Wait()

		if d, ok := l.Load().ByAddress(netip.MustParseAddr("198.51.100.7")); !ok || d.Name != "acc2" {
			t.Errorf("resolved address found %v, %v; want acc2", d, ok)
		}
		if d, _ := l.Load().ByAddress(netip.MustParseAddr("192.0.2.1")); d.Name != "core1" {
			t.Errorf("a name resolving to core1's literal address took it over: %s", d.Name)
		}
		if d, _ := l.Load().Device("acc2"); d.Address != "acc2.example.net" {
			t.Errorf("acc2's configured address changed to %s", d.Address)
		}
		if _, ok := first.ByAddress(netip.MustParseAddr("198.51.100.7")); ok {
			t.Error("resolution modified the snapshot in use instead of swapping a new one")
		}

		mu.Lock()
		answers["acc2.example.net"] = []netip.Addr{netip.MustParseAddr("198.51.100.8")}
		mu.Unlock()
		time.Sleep(refreshEvery + time.Second)
		inv := l.Load()
		if _, ok := inv.ByAddress(netip.MustParseAddr("198.51.100.7")); ok {
			t.Error("the old address of a moved name is still found after the refresh")
		}
		if d, ok := inv.ByAddress(netip.MustParseAddr("198.51.100.8")); !ok || d.Name != "acc2" {
			t.Errorf("the moved name's new address: %v, %v", d, ok)
		}

		l.Store(Of(Device{Name: "acc3", Address: "acc3.example.net"}))
		synctest.Wait()
		if _, ok := l.Load().ByAddress(netip.MustParseAddr("198.51.100.8")); ok {
			t.Error("a device removed by the reload is still found by its resolved address")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// An unknown trap sender's record is accepted while unknown senders are and
// while no device has its name or address.
func TestUnknownSender(t *testing.T) {
	inv := Of(Device{Name: "sw1", Address: "192.0.2.1"}, Device{Name: "192.0.2.9", Address: "sw9.example.net"})
	rec := *UnknownSender(netip.MustParseAddr("::ffff:192.0.2.50"))
	if rec.Name != "192.0.2.50" || rec.Address != "192.0.2.50" {
		t.Fatalf("record %+v, want one named by its (unmapped) address", rec)
	}
	if _, ok := inv.Unknown(rec); ok {
		t.Error("an inventory that does not accept unknown senders accepted one")
	}
	acc := inv.WithUnknownSenders(time.Hour)
	tests := []struct {
		name string
		d    Device
		want bool
	}{
		{"unknown sender", rec, true},
		{"IPv6 sender", *UnknownSender(netip.MustParseAddr("2001:db8::7")), true},
		{"a device's address", *UnknownSender(netip.MustParseAddr("192.0.2.1")), false},
		{"a device's name", Device{Name: "192.0.2.9", Address: "192.0.2.9"}, false},
		{"a configured device", Device{Name: "sw1", Address: "192.0.2.1"}, false},
		{"not canonical", Device{Name: "2001:DB8::7", Address: "2001:DB8::7"}, false},
		{"with a site", Device{Name: "192.0.2.50", Address: "192.0.2.50", Site: "HQ"}, false},
		{"a site record", Device{Name: "HQ", Site: "HQ", Role: SiteRole}, false},
	}
	for _, tt := range tests {
		expire, ok := acc.Unknown(tt.d)
		if ok != tt.want || (ok && expire != time.Hour) {
			t.Errorf("%s: Unknown(%+v) = %v, %v; want %v", tt.name, tt.d, expire, ok, tt.want)
		}
	}
}

func TestNewAcceptsUnknownSendersAsConfigured(t *testing.T) {
	rec := *UnknownSender(netip.MustParseAddr("192.0.2.50"))
	for _, tt := range []struct {
		traps  string
		expire time.Duration
	}{
		{"", 0},
		{"traps: {communities: [public]}\n", 24 * time.Hour},
		{"traps: {communities: [public], unknown_expire: 2h}\n", 2 * time.Hour},
		{"traps: {communities: [public], unknown_sources: drop}\n", 0},
	} {
		path := filepath.Join(t.TempDir(), "nocbridge.yaml")
		if err := os.WriteFile(path, []byte(tt.traps), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if expire, _ := New(cfg).Unknown(rec); expire != tt.expire {
			t.Errorf("%q: unknown senders expire after %v, want %v (0: not accepted)", tt.traps, expire, tt.expire)
		}
	}
}

func TestWithResolved(t *testing.T) {
	inv := Of(Device{Name: "lit", Address: "192.0.2.1"}, Device{Name: "named", Address: "sw.example.net"}, Device{Name: "other", Address: "other.example.net"})
	other, _ := inv.Device("other")
	inv = inv.withAddresses(map[netip.Addr]*Device{netip.MustParseAddr("192.0.2.9"): other})
	named, _ := inv.Device("named")
	got := inv.WithResolved(named, []netip.Addr{netip.MustParseAddr("192.0.2.5"), netip.MustParseAddr("192.0.2.1")})
	for addr, want := range map[string]string{"192.0.2.5": "named", "192.0.2.1": "lit", "192.0.2.9": "other"} {
		if d, ok := got.ByAddress(netip.MustParseAddr(addr)); !ok || d.Name != want {
			t.Errorf("ByAddress(%s) = %v, %v; want %s (literals first, earlier resolutions kept)", addr, d, ok, want)
		}
	}
	if _, ok := inv.ByAddress(netip.MustParseAddr("192.0.2.5")); ok {
		t.Error("WithResolved changed the inventory it was called on")
	}
}
