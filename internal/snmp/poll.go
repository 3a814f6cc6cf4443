package snmp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/gosnmp/gosnmp"
)

// rediscoverEvery is how many polls a device's CPU and memory sources are
// trusted before they are looked up again, so that rows added later (a new
// supervisor, a memory pool) are seen, and a device without any source is
// not walked on every poll.
const rediscoverEvery = 30

// Variable names in Result.Vars.
const (
	VarCPU         = "cpu"
	VarMem         = "mem"
	VarUptime      = "uptime_s"
	VarUptimeReset = "uptime_reset"
)

// builtinVars cannot be used as names of custom OIDs.
var builtinVars = map[string]bool{VarCPU: true, VarMem: true, VarUptime: true, VarUptimeReset: true, "device": true}

// poller polls one device. Its state persists from poll to poll; only one
// goroutine uses it at a time (the scheduler never overlaps polls of a device).
type poller struct {
	cfg       Target
	custom    []customOID // sorted by name
	newClient func(Target) (Client, error)
	log       *slog.Logger

	client Client // connected; nil after a failure, so the next poll reconnects
	cpu    sourceState
	mem    sourceState
	uptime struct {
		ticks uint32
		at    time.Time
		known bool
	}
	missingCustom map[string]bool // custom OIDs the device lacks, logged once
	loggedErr     string          // last failure logged, so a persisting one is logged once
}

type customOID struct{ name, oid string }

// sourceState remembers where a metric came from on this device.
type sourceState struct {
	metric     string  // "CPU" or "memory", for logs
	src        *source // nil: no source answered at the last discovery
	oids       []string
	pollsLeft  int  // until the next discovery
	noneLogged bool // "no source" was logged and nothing was found since
}

func newPoller(cfg Target, custom []customOID, newClient func(Target) (Client, error), log *slog.Logger) *poller {
	return &poller{
		cfg: cfg, custom: custom, newClient: newClient,
		log:           log.With("device", cfg.Device, "address", cfg.Address),
		cpu:           sourceState{metric: "CPU"},
		mem:           sourceState{metric: "memory"},
		missingCustom: map[string]bool{},
	}
}

// poll runs one poll and says what it saw. A failed poll carries no
// variables: rules must neither fire nor resolve on missing data.
func (p *poller) poll(ctx context.Context) Result {
	vars, ticks, err := p.collect(ctx)
	now := time.Now()
	res := Result{Device: p.cfg.Device, Time: now}
	if err != nil {
		p.closeClient()
		res.Err = fmt.Errorf("SNMP poll of %s (%s port %d): %w", p.cfg.Device, p.cfg.Address, p.cfg.Profile.Port, err)
		res.Reason = classify(err)
		if !errors.Is(err, context.Canceled) { // else Run is stopping and discards the result
			p.logOutcome(res)
		}
		return res
	}
	if ticks != nil {
		vars[VarUptime] = float64(*ticks) / 100
		vars[VarUptimeReset] = p.uptimeWentBack(*ticks, now)
		p.uptime.ticks, p.uptime.at, p.uptime.known = *ticks, now, true
	}
	res.Vars = vars
	if p.cpu.src != nil {
		res.CPUSource = p.cpu.src.name
	}
	if p.mem.src != nil {
		res.MemSource = p.mem.src.name
	}
	p.logOutcome(res)
	return res
}

// collect asks, in one GET where it can, for sysUpTime, the custom OIDs
// and the objects of the CPU and memory sources found earlier.
func (p *poller) collect(ctx context.Context) (map[string]any, *uint32, error) {
	if p.client == nil {
		c, err := p.newClient(p.cfg)
		if err != nil {
			return nil, nil, err
		}
		if err := c.Connect(ctx); err != nil {
			_ = c.Close()
			return nil, nil, err
		}
		p.client = c
	}
	oids := make([]string, 0, 1+len(p.custom)+len(p.cpu.oids)+len(p.mem.oids))
	oids = append(oids, oidSysUpTime)
	for _, c := range p.custom {
		oids = append(oids, c.oid)
	}
	cpuAt := len(oids)
	oids = append(oids, p.cpu.oids...)
	memAt := len(oids)
	oids = append(oids, p.mem.oids...)
	vals, err := p.client.Get(ctx, oids)
	if err != nil {
		return nil, nil, err
	}

	vars := map[string]any{}
	var ticks *uint32
	if t, ok := vals[0].Value.(uint32); ok && vals[0].Type == gosnmp.TimeTicks {
		ticks = &t
	}
	for i, c := range p.custom {
		if v, ok := customValue(vals[1+i]); ok {
			vars[c.name] = v
			delete(p.missingCustom, c.name)
		} else if !p.missingCustom[c.name] {
			p.missingCustom[c.name] = true
			p.log.Warn("custom OID not available on the device", "name", c.name, "oid", c.oid, "type", vals[1+i].Type.String())
		}
	}
	for _, m := range []struct {
		state   *sourceState
		sources []source
		vals    []gosnmp.SnmpPDU
		name    string
	}{
		{&p.cpu, cpuSources, vals[cpuAt:memAt], VarCPU},
		{&p.mem, memSources, vals[memAt:], VarMem},
	} {
		v, ok, err := m.state.read(ctx, p.client, m.vals, m.sources, p.log)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			vars[m.name] = v
		}
	}
	if len(vars) == 0 && ticks == nil {
		return nil, nil, ErrNoSuchObject
	}
	return vars, ticks, nil
}

// read computes the metric from the values of the remembered objects, or
// discovers the source afresh when it is time to, or when they are gone.
func (s *sourceState) read(ctx context.Context, c Client, vals []gosnmp.SnmpPDU, sources []source, log *slog.Logger) (float64, bool, error) {
	if s.pollsLeft > 0 {
		s.pollsLeft--
		if s.src == nil {
			return 0, false, nil
		}
		if v, ok := s.src.compute(vals); ok {
			return v, true, nil
		}
	}
	before := s.src
	s.src, s.oids, s.pollsLeft = nil, nil, rediscoverEvery
	for i := range sources {
		src := &sources[i]
		oids, found, err := src.discover(ctx, c)
		if err != nil && !unavailable(err) {
			return 0, false, fmt.Errorf("reading %s from %s: %w", s.metric, src.name, err)
		}
		if len(oids) == 0 {
			continue
		}
		if v, ok := src.compute(found); ok {
			s.src, s.oids, s.noneLogged = src, oids, false
			if before != src {
				log.Info("SNMP source found", "metric", s.metric, "source", src.name, "objects", len(oids))
			}
			return v, true, nil
		}
	}
	if !s.noneLogged {
		log.Info("no SNMP source for this metric: the device answers none of the known MIBs", "metric", s.metric)
		s.noneLogged = true
	}
	return 0, false, nil
}

// uptimeWentBack reports whether sysUpTime is lower than at the last
// successful poll. TimeTicks wrap after 497 days: a decrease is a wrap, not
// a restart, when the counter was due to pass 2^32 in the time elapsed.
func (p *poller) uptimeWentBack(ticks uint32, now time.Time) bool {
	if !p.uptime.known || ticks >= p.uptime.ticks {
		return false
	}
	elapsed := now.Sub(p.uptime.at)
	slack := elapsed/10 + 10*time.Second // agent and local clocks drift apart
	expected := uint64(p.uptime.ticks) + uint64((elapsed+slack)/(10*time.Millisecond))
	return expected < 1<<32
}

func (p *poller) closeClient() {
	if p.client != nil {
		_ = p.client.Close()
		p.client = nil
	}
}

// logOutcome logs a failure when it starts or changes, and the recovery.
func (p *poller) logOutcome(r Result) {
	switch {
	case r.Err != nil && r.Err.Error() != p.loggedErr:
		p.log.Warn("SNMP poll failed", "reason", r.Reason, "err", r.Err)
		p.loggedErr = r.Err.Error()
	case r.Err == nil && p.loggedErr != "":
		p.log.Info("SNMP poll works again")
		p.loggedErr = ""
	}
}

// customOIDs validates and orders a target's custom OIDs; bad ones are
// logged and left out.
func customOIDs(t Target, log *slog.Logger) []customOID {
	out := make([]customOID, 0, len(t.OIDs))
	for name, oid := range t.OIDs {
		norm, ok := normalizeOID(oid)
		switch {
		case builtinVars[name]:
			log.Warn("custom OID ignored: its name is a built-in variable", "device", t.Device, "name", name)
		case name == "":
			log.Warn("custom OID ignored: it has no name", "device", t.Device, "oid", oid)
		case !ok:
			log.Warn("custom OID ignored: not a numeric OID", "device", t.Device, "name", name, "oid", oid)
		default:
			out = append(out, customOID{name: name, oid: norm})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// normalizeOID accepts "1.3.6.1…" and ".1.3.6.1…" and returns the dotted
// form gosnmp uses for names.
func normalizeOID(oid string) (string, bool) {
	if len(oid) > 0 && oid[0] == '.' {
		oid = oid[1:]
	}
	arcs, digits := 0, 0
	for i := 0; i < len(oid); i++ {
		switch c := oid[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && digits > 0:
			arcs, digits = arcs+1, 0
		default:
			return "", false
		}
	}
	if digits == 0 || arcs < 1 {
		return "", false
	}
	return "." + oid, true
}
