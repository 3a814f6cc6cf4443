// Package inventory is the one runtime picture of the devices: names,
// addresses (DNS names resolved), sites, roles, labels, the ICMP and SNMP
// settings each device is probed with, and the topology (parents, children,
// the devices of a site). It is built from the config, swapped whole on
// reload and read without locks: sources take their targets from it and
// look trap senders up in it; rules, alerts and noise control see devices as
// its Device.
package inventory

import (
	"maps"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

// Device is one device as everything past the config sees it. The JSON
// form (name, address, site, role, labels) is what alert state and
// notifications carry; probe settings stay out of it.
type Device struct {
	Name    string            `json:"name"`
	Address string            `json:"address"` // IPv4, IPv6 or DNS name, as configured
	Site    string            `json:"site,omitempty"`
	Role    string            `json:"role,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Parents []string          `json:"-"` // upstream devices, by name
	ICMP    *ICMP             `json:"-"` // nil: not pinged
	SNMP    *SNMP             `json:"-"` // nil: not polled
	// Remote: an edge site's collector probes it (its site is one of
	// hub.sites), not this node; its observations come through the hub.
	Remote bool `json:"-"`
}

// In reports whether the selector picks the device.
func (d *Device) In(s config.Selector) bool { return s.Matches(d.Name, d.Site, d.Role, d.Labels) }

// ICMP is a device's effective ping settings (config defaults applied).
type ICMP struct {
	Interval, Timeout time.Duration
	Count             int
}

// SNMP is a device's effective polling settings.
type SNMP struct {
	Profile           config.SNMPProfile // version and credentials
	Interval, Timeout time.Duration
	Retries           int
	OIDs              map[string]string // custom values: name → numeric OID
}

// Inventory is one immutable snapshot. Its methods are safe for concurrent
// use; a reload builds a new one.
type Inventory struct {
	devices  []*Device // config order
	byName   map[string]*Device
	literal  map[netip.Addr]*Device // configured literal addresses
	byAddr   map[netip.Addr]*Device // literal addresses, plus resolved names
	children map[string][]*Device
	sites    map[string][]*Device
	siteDevs map[string]*Device // each site's own record
	names    []*Device          // devices configured by DNS name, for the resolver
	// unknownExpire is traps.unknown_expire when unknown trap senders are
	// accepted (traps.unknown_sources: accept); zero when they are not.
	unknownExpire time.Duration
}

// New builds the inventory of a loaded (validated) config.
func New(cfg *config.Config) *Inventory {
	devs := make([]Device, 0, len(cfg.Devices))
	for _, d := range cfg.Devices {
		dev := Device{Name: d.Name, Address: d.Address, Site: d.Site, Role: d.Role,
			Labels: maps.Clone(d.Labels), Parents: slices.Clone(d.Parents)}
		dev.Remote = cfg.Hub != nil && d.Site != "" && slices.Contains(cfg.Hub.Sites, d.Site)
		if !d.ICMP.Disabled {
			eff := cfg.EffectiveICMP(d)
			dev.ICMP = &ICMP{Interval: eff.Interval.D(), Timeout: eff.Timeout.D(), Count: eff.Count}
		}
		if p, ok := cfg.SNMP.Profiles[d.SNMP]; ok && d.SNMP != "" {
			dev.SNMP = &SNMP{Profile: p, Interval: cfg.SNMP.PollInterval.D(), Timeout: cfg.SNMP.Timeout.D(),
				Retries: cfg.SNMP.Retries, OIDs: maps.Clone(cfg.SNMP.OIDs)}
		}
		devs = append(devs, dev)
	}
	inv := Of(devs...)
	if cfg.Traps.Listen != "" && cfg.Traps.UnknownSources == "accept" {
		inv = inv.WithUnknownSenders(cfg.Traps.UnknownExpire.D())
	}
	return inv
}

// Of builds an inventory from devices (New does, from config; tests and
// tools use it directly). The first device of a name wins.
func Of(devices ...Device) *Inventory {
	inv := &Inventory{
		byName:   make(map[string]*Device, len(devices)),
		literal:  make(map[netip.Addr]*Device, len(devices)),
		children: map[string][]*Device{},
		sites:    map[string][]*Device{},
		siteDevs: map[string]*Device{},
	}
	for i := range devices {
		d := &devices[i]
		if _, dup := inv.byName[d.Name]; dup {
			continue
		}
		inv.devices = append(inv.devices, d)
		inv.byName[d.Name] = d
		if ip, err := netip.ParseAddr(d.Address); err == nil {
			if _, taken := inv.literal[ip.Unmap()]; !taken {
				inv.literal[ip.Unmap()] = d
			}
		} else if d.Address != "" {
			inv.names = append(inv.names, d)
		}
		for _, p := range d.Parents {
			inv.children[p] = append(inv.children[p], d)
		}
		if d.Site != "" {
			inv.sites[d.Site] = append(inv.sites[d.Site], d)
			if _, ok := inv.siteDevs[d.Site]; !ok {
				inv.siteDevs[d.Site] = &Device{Name: d.Site, Site: d.Site, Role: SiteRole}
			}
		}
	}
	inv.byAddr = inv.literal
	return inv
}

// Len is the number of devices.
func (inv *Inventory) Len() int { return len(inv.devices) }

// Devices lists every device in config order. The slice is shared: do not
// modify it.
func (inv *Inventory) Devices() []*Device { return inv.devices }

// Device finds a device by name.
func (inv *Inventory) Device(name string) (*Device, bool) {
	d, ok := inv.byName[name]
	return d, ok
}

// ByAddress finds the device with address ip: a configured literal, or a
// DNS name as last resolved.
func (inv *Inventory) ByAddress(ip netip.Addr) (*Device, bool) {
	d, ok := inv.byAddr[ip.Unmap()]
	return d, ok
}

// Parents are the device's upstream devices that are in the inventory.
func (inv *Inventory) Parents(d *Device) []*Device {
	var out []*Device
	for _, name := range d.Parents {
		if p, ok := inv.byName[name]; ok {
			out = append(out, p)
		}
	}
	return out
}

// Children are the devices that name the device as a parent.
func (inv *Inventory) Children(name string) []*Device { return inv.children[name] }

// Site lists the devices of a site, in config order.
func (inv *Inventory) Site(site string) []*Device { return inv.sites[site] }

// SiteRole is the role of a site's own record (SiteDevice).
const SiteRole = "site"

// SiteDevice is the record a site-wide alert (a site outage) is about: named
// after the site, role "site", no address. ok is false for an unknown site.
func (inv *Inventory) SiteDevice(site string) (*Device, bool) {
	d, ok := inv.siteDevs[site]
	return d, ok
}

// Current finds today's record of d as an alert stored it: the device of
// that name, or the record of a site that still has devices.
func (inv *Inventory) Current(d Device) (*Device, bool) {
	if d.Role == SiteRole && d.Address == "" {
		cur, ok := inv.siteDevs[d.Name]
		return cur, ok
	}
	cur, ok := inv.byName[d.Name]
	return cur, ok
}

// UnknownSender is the record of a trap sender outside the inventory: a
// device named by its address, with nothing else known. Alerts keep it as
// their device, so it is the sender's identity across reloads and restarts.
func UnknownSender(ip netip.Addr) *Device {
	s := ip.Unmap().String()
	return &Device{Name: s, Address: s}
}

// WithUnknownSenders is a copy that accepts unknown trap senders' records
// (Unknown), their alerts expiring after expire.
func (inv *Inventory) WithUnknownSenders(expire time.Duration) *Inventory {
	cp := *inv
	cp.unknownExpire = expire
	return &cp
}

// Unknown reports whether d is an UnknownSender record this inventory
// accepts: unknown senders are let in, and no device has d's name or
// address (a sender added to the config since is a device like any other).
// expire is how long its alerts stay open without their clear trap.
func (inv *Inventory) Unknown(d Device) (expire time.Duration, ok bool) {
	if inv.unknownExpire <= 0 || d.Site != "" || d.Role != "" || len(d.Labels) > 0 {
		return 0, false
	}
	ip, err := netip.ParseAddr(d.Name)
	if err != nil || UnknownSender(ip).Name != d.Name || d.Address != d.Name {
		return 0, false
	}
	if _, named := inv.byName[d.Name]; named {
		return 0, false
	}
	if _, known := inv.ByAddress(ip); known {
		return 0, false
	}
	return inv.unknownExpire, true
}

// Sites lists the site names, sorted.
func (inv *Inventory) Sites() []string {
	out := make([]string, 0, len(inv.sites))
	for s := range inv.sites {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// withAddresses is a copy that finds devices configured by DNS name by the
// addresses they resolved to (replacing an earlier resolution); configured
// literals keep precedence.
func (inv *Inventory) withAddresses(found map[netip.Addr]*Device) *Inventory {
	cp := *inv
	cp.byAddr = maps.Clone(inv.literal)
	for ip, d := range found {
		if _, literal := inv.literal[ip]; !literal {
			cp.byAddr[ip] = d
		}
	}
	return &cp
}

// WithResolved is a copy that also finds d by ips, the addresses its DNS
// name resolves to now (Live does this in the background for the daemon; a
// one-off lookup such as `nocbridge probe` resolves the one device it needs).
func (inv *Inventory) WithResolved(d *Device, ips []netip.Addr) *Inventory {
	found := map[netip.Addr]*Device{}
	for ip, dev := range inv.byAddr {
		if _, literal := inv.literal[ip]; !literal {
			found[ip] = dev
		}
	}
	for _, ip := range ips {
		found[ip.Unmap()] = d
	}
	return inv.withAddresses(found)
}
