package app

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/httpapi"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/snmp"
)

// kvStore adapts a JetStream KV bucket to alert.Store.
type kvStore struct{ kv jetstream.KeyValue }

func (s kvStore) Put(ctx context.Context, key string, value []byte) error {
	_, err := s.kv.Put(ctx, key, value)
	return err
}

// Delete purges the key with an expiring marker, so resolved alerts leave no
// tombstone behind for ever.
func (s kvStore) Delete(ctx context.Context, key string) error {
	err := s.kv.Purge(ctx, key, jetstream.PurgeTTL(time.Hour))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

func (s kvStore) All(ctx context.Context) (map[string][]byte, error) {
	out := map[string][]byte{}
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer lister.Stop()
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[k] = e.Value()
	}
	return out, nil
}

var bucketUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

func sanitizeBucket(s string) string { return bucketUnsafe.ReplaceAllString(s, "_") }

// deviceTracker keeps the last probe result per device for the API.
type deviceTracker struct {
	mu     sync.RWMutex
	inv    map[string]config.Device
	status map[string]httpapi.DeviceStatus
	// byAddr finds the device a trap came from: literal addresses, plus DNS
	// names as resolved in the background after each inventory change.
	byAddr map[netip.Addr]string
	gen    int // inventory generation, so a slow lookup cannot apply to a newer one
}

func newDeviceTracker(devs []config.Device) *deviceTracker {
	t := &deviceTracker{status: map[string]httpapi.DeviceStatus{}}
	t.setInventory(devs)
	return t
}

func (t *deviceTracker) setInventory(devs []config.Device) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inv = make(map[string]config.Device, len(devs))
	t.byAddr = make(map[netip.Addr]string, len(devs))
	t.gen++
	var named []config.Device
	for _, d := range devs {
		t.inv[d.Name] = d
		if ip, err := netip.ParseAddr(d.Address); err == nil {
			t.byAddr[ip.Unmap()] = d.Name
		} else {
			named = append(named, d)
		}
	}
	if len(named) > 0 {
		go t.resolve(t.gen, named)
	}
	for name := range t.status {
		if _, ok := t.inv[name]; !ok {
			delete(t.status, name)
		}
	}
}

// resolve adds the addresses of devices configured by DNS name.
func (t *deviceTracker) resolve(gen int, devs []config.Device) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found := map[netip.Addr]string{}
	for _, d := range devs {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", d.Address)
		if err != nil {
			continue // its traps count as from an unknown source until the next reload
		}
		for _, ip := range ips {
			found[ip.Unmap()] = d.Name
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gen != gen {
		return
	}
	for ip, name := range found {
		if _, literal := t.byAddr[ip]; !literal {
			t.byAddr[ip] = name
		}
	}
}

// known reports whether a trap source is in the inventory.
func (t *deviceTracker) known(ip netip.Addr) bool {
	_, ok := t.byAddress(ip)
	return ok
}

// byAddress finds the device with address ip.
func (t *deviceTracker) byAddress(ip netip.Addr) (rules.Device, bool) {
	t.mu.RLock()
	name, ok := t.byAddr[ip.Unmap()]
	t.mu.RUnlock()
	if !ok {
		return rules.Device{}, false
	}
	return t.device(name)
}

func (t *deviceTracker) device(name string) (rules.Device, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	d, ok := t.inv[name]
	if !ok {
		return rules.Device{}, false
	}
	return rules.Device{Name: d.Name, Address: d.Address, Site: d.Site, Role: d.Role, Labels: d.Labels}, true
}

func (t *deviceTracker) recordICMP(r icmp.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.status[r.Device]
	s.LossPct = r.Loss
	s.RTTMs = float64(r.RTT) / float64(time.Millisecond)
	s.LastProbe = r.Time
	s.State = "down"
	if r.Recv > 0 {
		s.State = "up"
	}
	s.Error = ""
	if r.Err != nil {
		s.Error = r.Err.Error()
	}
	t.status[r.Device] = s
}

func (t *deviceTracker) recordSNMP(r snmp.Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.status[r.Device]
	s.LastPoll = r.Time
	s.SNMPState, s.SNMPError = "ok", ""
	if r.Err != nil {
		s.SNMPState, s.SNMPError = r.Reason, r.Err.Error()
		t.status[r.Device] = s
		return // the last good values stay, with the failure beside them
	}
	if v, ok := r.Vars["cpu"].(float64); ok {
		s.CPU = &v
	}
	if v, ok := r.Vars["mem"].(float64); ok {
		s.Mem = &v
	}
	if v, ok := r.Vars["uptime_s"].(float64); ok {
		s.UptimeS = &v
	}
	t.status[r.Device] = s
}

func (t *deviceTracker) list() []httpapi.DeviceStatus {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]httpapi.DeviceStatus, 0, len(t.inv))
	for name, d := range t.inv {
		s := t.status[name]
		s.Name, s.Address, s.Site, s.Role, s.Labels = d.Name, d.Address, d.Site, d.Role, d.Labels
		if s.State == "" {
			s.State = "unknown"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *App) apiDeps() httpapi.Deps {
	return httpapi.Deps{
		Logger:   a.log.With("component", "http"),
		Gatherer: a.reg,
		Ready:    a.Ready,
		Alerts:   a.alerts.Instances,
		Devices:  a.devices.list,
		Destinations: func() []string {
			var names []string
			for _, d := range a.gen.Load().destinations {
				names = append(names, d.Name)
			}
			return names
		},
		Outbox: a.outbox,
		Token:  func() config.Secret { return a.gen.Load().cfg.HTTP.Token },
	}
}
