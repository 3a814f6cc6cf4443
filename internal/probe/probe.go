// Package probe answers "why is this device red?" by hand (`nocbridge
// probe`, and POST /api/v1/devices/{name}/probe): one round of ICMP echoes
// through pro-bing with the daemon's count, timeout and socket kind, one
// SNMP poll with the device's profile (the poller's own CPU chain and
// failure reasons) plus sysName and sysDescr, and which of its traps the
// receiver would let in (the receiver's own checks, trap.Judge). Every
// step is bounded by a context deadline; the daemon's engines are not
// touched.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/trap"
)

// Errors of Probe and Device; the API maps them to 404 and 429.
var (
	ErrUnknownDevice = errors.New("no such device in the inventory")
	ErrBusy          = errors.New("probe refused: too many probes in flight")
	// ErrTarget is a DEVICE|ADDRESS argument that is neither (exit code 1).
	ErrTarget = errors.New("not a device name or an address")
)

// Defaults of Options.
const (
	DefaultMaxConcurrent = 4
	DefaultTimeout       = 25 * time.Second // under the API's 30s write timeout
	resolveTimeout       = 5 * time.Second
)

// Snapshot is the configuration a probe runs with: the config, its
// inventory (the daemon's live one, DNS names resolved) and the trap
// receiver's options derived from it.
type Snapshot struct {
	Config    *config.Config
	Inventory *inventory.Inventory
	Traps     trap.Options
}

// SnapshotOf derives a Snapshot from a loaded config (the CLI's case).
func SnapshotOf(cfg *config.Config) (Snapshot, error) {
	traps, err := trap.OptionsFrom(cfg)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Config: cfg, Inventory: inventory.New(cfg), Traps: traps}, nil
}

// Options configure a Prober. Zero values take the real implementations
// and the defaults.
type Options struct {
	Pinger     Pinger                                 // nil: pro-bing
	SNMPClient func(snmp.Target) (snmp.Client, error) // nil: gosnmp
	Resolve    func(ctx context.Context, host string) ([]netip.Addr, error)
	// Current is the daemon's configuration, for Device (the API).
	Current func() Snapshot
	// MaxConcurrent bounds probes in flight at once; a device is probed by
	// one at a time anyway.
	MaxConcurrent int
	Timeout       time.Duration // bounds one whole probe
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// Prober runs probes; it is safe for concurrent use.
type Prober struct {
	opts  Options
	sem   chan struct{}
	mu    sync.Mutex
	busy  map[string]bool
	count *prometheus.CounterVec
}

// New builds a Prober.
func New(opts Options) *Prober {
	if opts.Pinger == nil {
		opts.Pinger = ProBing{}
	}
	if opts.Resolve == nil {
		opts.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Prober{opts: opts, sem: make(chan struct{}, opts.MaxConcurrent), busy: map[string]bool{},
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nocbridge_manual_probes_total",
			Help: "Probes of one device by hand (API), by result: answered, unanswered, or refused (busy).",
		}, []string{"result"})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(p.count); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if c, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					p.count = c
				}
			}
		}
	}
	return p
}

// Device probes the inventory device name with the daemon's current
// configuration (Options.Current): ErrUnknownDevice when there is none,
// ErrBusy when it is being probed already or too many probes run.
func (p *Prober) Device(ctx context.Context, name string) (Result, error) {
	s := p.opts.Current()
	if _, ok := s.Inventory.Device(name); !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownDevice, name)
	}
	if !p.acquire(name) {
		p.count.WithLabelValues("busy").Inc()
		return Result{}, fmt.Errorf("%w (one per device, %d at once)", ErrBusy, cap(p.sem))
	}
	defer p.release(name)
	r, err := p.Probe(ctx, s, name)
	if err == nil {
		p.count.WithLabelValues(map[bool]string{true: "answered", false: "unanswered"}[r.Answered]).Inc()
		p.opts.Logger.Info("device probed by hand", "device", name, "answered", r.Answered)
	}
	return r, err
}

func (p *Prober) acquire(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy[name] {
		return false
	}
	select {
	case p.sem <- struct{}{}:
	default:
		return false
	}
	p.busy[name] = true
	return true
}

func (p *Prober) release(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.busy, name)
	<-p.sem
}

// Probe probes target — an inventory device's name, or an address (a
// device's address finds the device; any other probes with the config's
// defaults and says so) — with snapshot s. Ping and SNMP run at once; the
// whole probe is bounded by Options.Timeout. The error is ErrTarget for a
// target that is neither a device nor an address; every failure of the
// device itself is in the Result.
func (p *Prober) Probe(ctx context.Context, s Snapshot, target string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	start := time.Now()
	dev, res, err := p.find(ctx, s, target)
	if err != nil {
		return Result{}, err
	}
	var wg sync.WaitGroup
	wg.Go(func() { res.Ping = p.ping(ctx, s, dev, res.InInventory) })
	wg.Go(func() { res.SNMP = p.snmp(ctx, s, dev) })
	res.Traps = p.traps(ctx, s, dev, res.InInventory)
	wg.Wait()
	res.Answered = res.Ping.Received > 0 || res.SNMP.OK
	res.Took = Duration(time.Since(start).Round(time.Millisecond))
	return res, nil
}

// find looks target up: by name, by address, or as an address outside the
// inventory.
func (p *Prober) find(ctx context.Context, s Snapshot, target string) (*inventory.Device, Result, error) {
	if d, ok := s.Inventory.Device(target); ok {
		return d, Result{Target: target, Device: d.Name, Address: d.Address, Site: d.Site, Role: d.Role, InInventory: true}, nil
	}
	if ip, err := netip.ParseAddr(target); err == nil {
		if d, ok := s.Inventory.ByAddress(ip); ok {
			return d, Result{Target: target, Device: d.Name, Address: d.Address, Site: d.Site, Role: d.Role, InInventory: true}, nil
		}
		return p.stranger(s, target), Result{Target: target, Address: target, Note: notInInventory}, nil
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	if _, err := p.opts.Resolve(rctx, target); err != nil {
		return nil, Result{}, fmt.Errorf("%w: %q is no device of the config, and as a DNS name: %w", ErrTarget, target, err)
	}
	return p.stranger(s, target), Result{Target: target, Address: target, Note: notInInventory}, nil
}

const notInInventory = "not in the inventory: probed with the config's icmp defaults, no SNMP profile"

// stranger is an address outside the inventory, with the icmp defaults.
func (p *Prober) stranger(s Snapshot, addr string) *inventory.Device {
	ic := s.Config.ICMP
	return &inventory.Device{Name: addr, Address: addr,
		ICMP: &inventory.ICMP{Interval: ic.Interval.D(), Timeout: ic.Timeout.D(), Count: ic.Count}}
}

func (p *Prober) ping(ctx context.Context, s Snapshot, d *inventory.Device, known bool) PingReport {
	if d.ICMP == nil {
		return PingReport{Skipped: "icmp disabled for this device in the config"}
	}
	count, spacing, timeout := icmp.Target{Interval: d.ICMP.Interval, Timeout: d.ICMP.Timeout, Count: d.ICMP.Count}.Round()
	req := PingRequest{Address: d.Address, Count: count, Spacing: spacing, Timeout: timeout,
		Mode: icmp.Mode(s.Config.ICMP.Privileged)}
	// Resolution, the round itself, and a second's grace.
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout+time.Duration(count-1)*spacing+timeout+time.Second)
	defer cancel()
	st, err := p.opts.Pinger.Ping(ctx, req)
	r := PingReport{Count: count, Timeout: Duration(timeout), Socket: st.Socket, IP: st.IP,
		Sent: st.Sent, Received: st.Recv, Late: st.Late, LossPct: st.Loss,
		MinMs: ms(st.Min), AvgMs: ms(st.Avg), MaxMs: ms(st.Max), MdevMs: ms(st.Mdev)}
	if err != nil {
		r.Error = fmt.Sprintf("ping %s: %v", d.Address, err)
	}
	return r
}

func (p *Prober) snmp(ctx context.Context, snap Snapshot, d *inventory.Device) SNMPReport {
	if d.SNMP == nil {
		return SNMPReport{Skipped: "no SNMP profile for this device"}
	}
	s := d.SNMP
	t := snmp.Target{Device: d.Name, Address: d.Address, Profile: s.Profile, Interval: s.Interval,
		Timeout: s.Timeout, Retries: s.Retries, OIDs: s.OIDs}
	// A poll makes a few requests (the GET, then walks of the CPU and
	// memory MIBs), each up to timeout × (retries + 1).
	per := max(s.Timeout, time.Millisecond) * time.Duration(max(s.Retries, 0)+1)
	ctx, cancel := context.WithTimeout(ctx, 8*per)
	defer cancel()
	start := time.Now()
	sys, res := snmp.PollOnce(ctx, t, p.opts.SNMPClient, nil)
	r := SNMPReport{Profile: profileName(snap.Config, d.Name), Version: s.Profile.Version, Port: s.Profile.Port,
		Took: Duration(time.Since(start).Round(time.Millisecond))}
	if r.Port == 0 {
		r.Port = snmp.DefaultPort
	}
	if s.Profile.Version == "3" {
		r.User = s.Profile.User
	}
	if res.Err != nil {
		r.Reason, r.Error, r.Hint = res.Reason, res.Err.Error(), hint(res.Reason, s.Profile.Version)
		return r
	}
	r.OK, r.SysName, r.SysDescr, r.CPUSource, r.MemSource = true, sys.Name, sys.Descr, res.CPUSource, res.MemSource
	if v, ok := res.Vars[snmp.VarUptime].(float64); ok {
		r.UptimeS = &v
	}
	if v, ok := res.Vars[snmp.VarCPU].(float64); ok {
		r.CPUPct = &v
	}
	if v, ok := res.Vars[snmp.VarMem].(float64); ok {
		r.MemPct = &v
	}
	return r
}

// traps judges, with the receiver's own checks, traps from the device's
// address (with a credential the receiver accepts: only the source is in
// question) and traps sent with the device's SNMP profile.
func (p *Prober) traps(ctx context.Context, s Snapshot, d *inventory.Device, known bool) TrapsReport {
	tc := s.Config.Traps
	if tc.Listen == "" {
		return TrapsReport{Skipped: "no trap receiver in the config (traps.listen)"}
	}
	opts := s.Traps
	opts.Inventory = func() *inventory.Inventory { return s.Inventory }
	r := TrapsReport{UnknownSources: cmpOr(tc.UnknownSources, "accept")}
	ip, err := netip.ParseAddr(d.Address)
	if err != nil {
		rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		ips, rerr := p.opts.Resolve(rctx, d.Address)
		cancel()
		if rerr != nil || len(ips) == 0 {
			r.Checks = append(r.Checks, TrapCheck{What: "traps from " + d.Address, Detail: fmt.Sprintf("the address does not resolve: %v", rerr)})
			return r
		}
		ip = ips[0]
		if known {
			// The daemon finds devices configured by name by their resolved
			// addresses: so does the judge.
			opts.Inventory = func() *inventory.Inventory { return s.Inventory.WithResolved(d, ips) }
		}
	}
	// The source alone: a credential the receiver accepts.
	var accepted *config.SNMPProfile
	switch {
	case len(opts.Communities) > 0:
		accepted = &config.SNMPProfile{Version: "2c", Community: opts.Communities[0]}
	case len(opts.Users) > 0:
		accepted = &opts.Users[0]
	}
	what := "traps from " + ip.String()
	if accepted == nil {
		r.Checks = append(r.Checks, TrapCheck{What: what, Reason: trap.ReasonCommunity,
			Detail: "the receiver accepts no community and no v3 user (traps.communities, traps.users)"})
	} else {
		r.Checks = append(r.Checks, judge(opts, ip, *accepted, what))
	}
	if d.SNMP != nil {
		prof := d.SNMP.Profile
		name := profileName(s.Config, d.Name)
		what := fmt.Sprintf("v%s traps with the community of profile %s", prof.Version, name)
		if prof.Version == "3" {
			what = fmt.Sprintf("v3 traps as user %s (profile %s)", prof.User, name)
		}
		r.Checks = append(r.Checks, judge(opts, ip, prof, what))
	}
	return r
}

func judge(opts trap.Options, ip netip.Addr, prof config.SNMPProfile, what string) TrapCheck {
	b, err := trap.SampleTrap(prof)
	if err != nil {
		return TrapCheck{What: what, Reason: "error", Detail: err.Error()}
	}
	v, err := trap.Judge(opts, ip, b)
	if err != nil {
		return TrapCheck{What: what, Reason: "error", Detail: err.Error()}
	}
	c := TrapCheck{What: what, Accepted: v.Accepted, Reason: v.Reason, Detail: v.Detail, Device: v.Device}
	if v.Accepted {
		c.Detail = "accepted as device " + v.Device
		if v.Device == "" {
			c.Detail = "accepted from an unknown sender (traps.unknown_sources: accept)"
		}
	}
	return c
}

// profileName is the name of the SNMP profile the config gives device.
func profileName(cfg *config.Config, device string) string {
	for _, d := range cfg.Devices {
		if d.Name == device {
			return d.SNMP
		}
	}
	return ""
}

// hint says what an SNMP failure reason usually means.
func hint(reason, version string) string {
	switch {
	case reason == snmp.ReasonTimeout && version == "3":
		return "no answer: the device is down or unreachable, its agent is off or filtered, or the privacy passphrase is wrong"
	case reason == snmp.ReasonTimeout:
		return "no answer: the device is down or unreachable, its agent is off or filtered, or it does not accept this community (agents stay silent to a wrong one)"
	case reason == snmp.ReasonAuth:
		return "authentication: the agent refused the v3 user, its passphrases or its security level"
	case reason == snmp.ReasonUnreachable:
		return "unreachable: nothing listens at the address and port (ICMP unreachable, no route, or the name does not resolve)"
	}
	return ""
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
