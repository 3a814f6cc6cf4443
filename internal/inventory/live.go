package inventory

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// Live holds the current inventory: Load is one atomic read, Store swaps a
// whole new one in (a reload), and Run resolves the DNS names of the
// current one in the background, so trap senders configured by name are
// found by their address.
type Live struct {
	cur     atomic.Pointer[Inventory]
	changed chan struct{}
	log     *slog.Logger
	lookup  func(ctx context.Context, host string) ([]netip.Addr, error)
	refresh time.Duration
}

// Resolution bounds: a slow DNS server delays name lookups of traps, never
// anything else; names are looked up again every refresh in case they moved.
const (
	resolveTimeout = 10 * time.Second
	refreshEvery   = 5 * time.Minute
)

// NewLive starts with inv.
func NewLive(inv *Inventory, log *slog.Logger) *Live {
	if log == nil {
		log = slog.Default()
	}
	l := &Live{changed: make(chan struct{}, 1), log: log, refresh: refreshEvery,
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}}
	l.Store(inv)
	return l
}

// Load returns the current inventory.
func (l *Live) Load() *Inventory { return l.cur.Load() }

// Store swaps inv in whole; Run resolves its DNS names.
func (l *Live) Store(inv *Inventory) {
	l.cur.Store(inv)
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// Run resolves the DNS names of the current inventory after every Store and
// every refresh interval, until ctx ends. A name that does not resolve
// leaves its traps counted as from an unknown source until it does.
func (l *Live) Run(ctx context.Context) error {
	tick := time.NewTicker(l.refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.changed:
		case <-tick.C:
		}
		inv := l.cur.Load()
		if len(inv.names) == 0 {
			continue
		}
		found := l.resolve(ctx, inv.names)
		// A reload meanwhile wins: its own resolution follows.
		if l.cur.CompareAndSwap(inv, inv.withAddresses(found)) {
			l.log.Debug("device names resolved", "names", len(inv.names), "addresses", len(found))
		}
	}
}

func (l *Live) resolve(ctx context.Context, devs []*Device) map[netip.Addr]*Device {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	found := map[netip.Addr]*Device{}
	for _, d := range devs {
		ips, err := l.lookup(ctx, d.Address)
		if err != nil {
			l.log.Debug("device name does not resolve", "device", d.Name, "address", d.Address, "err", err)
			continue
		}
		for _, ip := range ips {
			found[ip.Unmap()] = d
		}
	}
	return found
}
