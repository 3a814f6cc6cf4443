package ruletest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/noise"
	"github.com/nocbridge/nocbridge/internal/observation"
	ob "github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/route"
	"github.com/nocbridge/nocbridge/internal/snmp/mib"
	"github.com/nocbridge/nocbridge/internal/store"
)

// trapVars is what a trap receiver makes of a trap named name (symbolic or
// numeric) with the given varbinds (by name or numeric OID), from d.
func trapVars(names *mib.Table, name string, in map[string]any, d *inventory.Device) (map[string]any, error) {
	oid, sym := strings.TrimPrefix(name, "."), name
	if isNumericOID(oid) {
		if n, ok := names.Name(oid); ok {
			sym = n
		} else {
			sym = oid
		}
	} else {
		o, ok := names.OID(name)
		if !ok {
			return nil, fmt.Errorf("trap %q: not a name nocbridge knows (write its numeric OID, or name it in the config's traps.mib)", name)
		}
		oid = o
	}
	vars := make(map[string]any, len(in))
	for k, v := range in {
		key := k
		if o := strings.TrimPrefix(k, "."); isNumericOID(o) {
			// A varbind OID carries its instance (ifIndex.3): rules see the
			// name without it, as the receiver makes them.
			if n, _, ok := names.Lookup(o); ok {
				key = n
			} else {
				key = o
			}
		} else if _, ok := names.OID(k); !ok {
			return nil, fmt.Errorf("var %q: not a name nocbridge knows (write its numeric OID, or name it in the config's traps.mib)", k)
		}
		switch v.(type) {
		case int, uint64, float64, string:
		default:
			return nil, fmt.Errorf("var %q: want a number or a string", k)
		}
		vars[key] = v
	}
	return map[string]any{"trap": sym, "trap_oid": oid, "vars": vars, "source": d.Address, "version": "2c"}, nil
}

func isNumericOID(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// icmpVars is the round an ICMP engine reports for a sample: of the
// device's count of echoes, loss percent lost.
func icmpVars(s icmpYAML, d *inventory.Device) map[string]any {
	sent := 1
	if d.ICMP != nil && d.ICMP.Count > 0 {
		sent = d.ICMP.Count
	}
	recv := sent - int(math.Round(float64(sent)*s.Loss/100))
	switch {
	case s.Loss >= 100:
		recv = 0
	case recv < 1:
		recv = 1 // some loss, but it answered
	case s.Loss > 0 && recv == sent && sent > 1:
		recv = sent - 1
	}
	rtt, lo, hi := 0.0, 0.0, 0.0
	if recv > 0 {
		if s.RTTms != nil {
			rtt = *s.RTTms
		}
		lo, hi = rtt, rtt
		if s.RTTMinms != nil {
			lo = *s.RTTMinms
		}
		if s.RTTMaxms != nil {
			hi = *s.RTTMaxms
		}
	}
	return map[string]any{"up": recv > 0, "loss": s.Loss, "rtt_ms": rtt, "rtt_min_ms": lo, "rtt_max_ms": hi, "sent": sent, "recv": recv}
}

// snmpVars is a poll's values: numbers as float64 (as the poller reports
// them), uptime_reset a boolean. uptime_reset, unless given, is worked out
// from uptime_s going backwards when the test runs.
func snmpVars(in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		switch x := v.(type) {
		case int:
			out[k] = float64(x)
		case float64:
			out[k] = x
		case string:
			if k == "uptime_reset" {
				return nil, fmt.Errorf("snmp uptime_reset: want true or false")
			}
			out[k] = x
		case bool:
			if k != "uptime_reset" {
				return nil, fmt.Errorf("snmp %s: want a number or a string", k)
			}
			out[k] = x
		default:
			return nil, fmt.Errorf("snmp %s: want a number or a string", k)
		}
	}
	return out, nil
}

func sortInputs(in []input) {
	sort.SliceStable(in, func(i, j int) bool { return in[i].at < in[j].at })
}

// clock is the simulated time every component reads.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// sent is one notification as routing handed it to the outbox: the event
// and the destinations it went to.
type sent struct {
	at           time.Duration
	ev           event.Event
	destinations []string
}

// outbox stands for the durable outbox behind the real routing: it records
// what it is handed, at the simulated time.
type outbox struct {
	mu    sync.Mutex
	clock *clock
	start time.Time
	sent  []sent
}

func (o *outbox) Enqueue(_ context.Context, items ...ob.Item) error {
	if len(items) == 0 {
		return nil
	}
	s := sent{at: o.clock.Now().Sub(o.start), ev: items[0].Event}
	for _, it := range items {
		s.destinations = append(s.destinations, it.Destination)
	}
	sort.Strings(s.destinations)
	o.mu.Lock()
	o.sent = append(o.sent, s)
	o.mu.Unlock()
	return nil
}

// everything is the subscription of a test without a config: every event
// to one destination, resolves included.
var everything = []config.Subscription{{Name: "everything", Destinations: []string{"test"}}}

// defaultTail is how long a test runs past its last input or expectation.
const defaultTail = time.Hour

// maxSteps bounds a simulation's steps, so a component that keeps asking
// for the same moment cannot hang a test.
const maxSteps = 10_000_000

// result is what one test's run produced.
type result struct {
	sent      []sent
	simulated time.Duration
	logs      string // warnings and errors the components logged
}

// run feeds the test's inputs through the real alert manager and noise
// gate, advancing the clock from one input or deadline to the next.
func (f *File) run(ctx context.Context, t *Test) (result, error) {
	clk := &clock{now: f.start}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // the simulated time is in the offsets
			}
			return a
		}}))
	out := &outbox{clock: clk, start: f.start}
	subs := f.cfg.Subscriptions
	if !f.configured {
		subs = everything
	}
	routing := route.NewDispatcher(route.New(subs), out)
	windows, err := muteWindows(f.cfg)
	if err != nil {
		return result{}, err
	}
	mutes, err := mute.New(ctx, store.NewMemory(), windows, mute.Options{Logger: log, Now: clk.Now})
	if err != nil {
		return result{}, err
	}
	var mgr *alert.Manager
	gate, err := noise.New(ctx, noise.Options{Store: store.NewMemory(), Next: routing, Mutes: mutes, Logger: log, Now: clk.Now,
		Emit: func(o observation.Observation) { _ = mgr.Observe(ctx, o) }})
	if err != nil {
		return result{}, err
	}
	gate.Configure(f.cfg.Noise, f.rules, f.inv)
	if mgr, err = alert.New(ctx, store.NewMemory(), gate, alert.Options{Logger: log, Now: clk.Now}); err != nil {
		return result{}, err
	}
	if err := mgr.SetRules(ctx, f.rules, f.inv); err != nil {
		return result{}, err
	}
	for _, s := range t.silent {
		if _, err := mutes.Add(ctx, mute.NewSilence{Match: s.Match, StartsAt: f.start.Add(s.At.D()), EndsAt: f.start.Add(s.Until.D()),
			Comment: s.Comment, CreatedBy: "nocbridge test rules"}); err != nil {
			return result{}, fmt.Errorf("silence: %w", err)
		}
	}

	end := t.until
	if end == 0 {
		last := time.Duration(0)
		if n := len(t.inputs); n > 0 {
			last = t.inputs[n-1].at
		}
		for _, e := range t.expect {
			last = max(last, e.At.D())
		}
		end = last + defaultTail
	}
	uptimes := map[string]float64{}
	var nextMgr, nextGate time.Time
	i := 0
	for step := 0; ; step++ {
		if step >= maxSteps {
			return result{}, fmt.Errorf("the simulation did not settle within %d steps (at %s)", maxSteps, offset(clk.Now().Sub(f.start)))
		}
		next := time.Time{}
		if i < len(t.inputs) {
			next = f.start.Add(t.inputs[i].at)
		}
		for _, d := range []time.Time{nextMgr, nextGate} {
			if d.IsZero() {
				continue
			}
			d = later(d, clk.Now())
			if next.IsZero() || d.Before(next) {
				next = d
			}
		}
		if next.IsZero() || next.Sub(f.start) > end {
			break
		}
		clk.set(next)
		for ; i < len(t.inputs) && !f.start.Add(t.inputs[i].at).After(next); i++ {
			in := t.inputs[i]
			o := observation.Observation{Source: observation.Source(in.kind), Device: in.device, Time: next, Vars: in.vars}
			if in.kind == "snmp" {
				o.Vars = withUptimeReset(in.vars, uptimes, in.device.Name)
			}
			gate.Observe(o)
			if err := mgr.Observe(ctx, o); err != nil {
				return result{}, fmt.Errorf("input at %s (line %d): %w", offset(in.at), in.line, err)
			}
		}
		nextMgr = mgr.Tick(ctx)
		nextGate = gate.Tick(ctx)
		if m := mgr.Tick(ctx); !m.IsZero() { // the gate's site observations may have set one
			nextMgr = m
		}
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	return result{sent: slices.Clone(out.sent), simulated: clk.Now().Sub(f.start), logs: logs.String()}, nil
}

// later is d, or a millisecond past now when d is not after it: a
// deadline that is due already is applied at the next step, never twice
// at the same moment.
func later(d, now time.Time) time.Time {
	if d.After(now) {
		return d
	}
	return now.Add(time.Millisecond)
}

// withUptimeReset adds uptime_reset as the poller does: true on the poll
// whose uptime_s went backwards.
func withUptimeReset(vars map[string]any, last map[string]float64, device string) map[string]any {
	up, ok := vars["uptime_s"].(float64)
	if !ok {
		return vars
	}
	if _, given := vars["uptime_reset"]; given {
		last[device] = up
		return vars
	}
	prev, seen := last[device]
	last[device] = up
	out := maps.Clone(vars)
	out["uptime_reset"] = seen && up < prev
	return out
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func muteWindows(cfg *config.Config) ([]*mute.Window, error) {
	ws, err := mute.Compile(cfg.Maintenance)
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	return ws, nil
}
