package noise

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history/historytest"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/schedule"
	"github.com/nocbridge/nocbridge/internal/store"
)

// The tests in this package run a small simulated network in a synctest
// bubble: the real alert manager and the real gate, fed ICMP rounds by a
// simulated prober that pings every device on its own phase of the grid
// (and at once when the gate asks for a parent), on a fake clock, so hours
// of outages take milliseconds and every ordering can be tried.

// icmpRule is the shipped unreachable rule: 20 s of loss, 10 s to clear.
const icmpRule = `rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
    for: 20s
    clear_when: loss == 0
    clear_for: 10s
    severity: 1
    description: "{{ .Device.Name }} is unreachable"
`

// immediateRule fires on the first failing round and clears on the first
// good one.
const immediateRule = `rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
    clear_when: loss == 0
    severity: 1
`

// siteRule is the shipped site outage rule.
const siteRule = `  - event_id: NETWORK-SITES-1-501
    name: Site unreachable
    source: site
    when: outage
    key: site
    severity: 1
    flap: false
    description: "site {{ .Vars.site }} down"
`

// sent is one notification routing received.
type sent struct {
	at time.Time
	ev event.Event
}

// routing records what the gate hands on; every active goes to "noc".
type routing struct {
	mu      sync.Mutex
	sent    []sent
	updates []sent // actives' updates, which only editors (Slack bot) get
}

func (r *routing) Dispatch(_ context.Context, ev event.Event, resolveTo []string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Update {
		r.updates = append(r.updates, sent{at: time.Now(), ev: ev})
		return nil, nil
	}
	if ev.Status == event.StatusResolved && len(resolveTo) == 0 {
		return nil, nil // routing sends a resolve only where its active went
	}
	r.sent = append(r.sent, sent{at: time.Now(), ev: ev})
	if ev.Status == event.StatusActive && ev.Kind != event.KindEvent {
		return []string{"noc"}, nil
	}
	return nil, nil
}

func (r *routing) all() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// summary is what receivers got, "status device" per notification.
func (r *routing) summary() string {
	var out []string
	for _, s := range r.all() {
		out = append(out, string(s.ev.Status)+" "+s.ev.Device.Name)
	}
	return strings.Join(out, ", ")
}

// lab is a simulated network behind the real alert manager and gate.
type lab struct {
	t       *testing.T
	inv     *inventory.Inventory
	set     *rules.Set
	cfg     config.Noise
	mutes   Mutes
	gates   *store.Memory
	alerts  *store.Memory
	routing *routing
	hist    *historytest.Recorder // what the gate and the manager hand to history

	mu       sync.Mutex
	down     map[string]bool
	phases   map[string]time.Duration
	interval time.Duration
	probes   chan string
	// dropProbes loses the gate's out-of-round probes.
	dropProbes bool

	gate   *Gate
	mgr    *alert.Manager
	cancel context.CancelFunc
	done   sync.WaitGroup
}

type labOpts struct {
	devices  []inventory.Device
	rules    string
	phases   map[string]time.Duration // default: from schedule.Phase
	noise    *config.Noise
	mutes    Mutes
	interval time.Duration
}

func defaultNoise() config.Noise {
	return config.Noise{
		Flap:       config.Flap{Changes: 5, Window: config.Duration(15 * time.Minute)},
		SiteOutage: config.SiteOutage{Window: config.Duration(time.Minute), MinDevices: 3, Ratio: 0.5},
	}
}

func pinged(name, site string, parents ...string) inventory.Device {
	return inventory.Device{Name: name, Address: "192.0.2.1", Site: site, Parents: parents,
		ICMP: &inventory.ICMP{Interval: 10 * time.Second, Timeout: time.Second, Count: 1}}
}

// newLab starts the lab; call it inside synctest.Test.
func newLab(t *testing.T, o labOpts) *lab {
	t.Helper()
	if o.rules == "" {
		o.rules = icmpRule
	}
	if o.interval == 0 {
		o.interval = 10 * time.Second
	}
	rs, errs := rules.Parse([]byte(o.rules), "lab.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	l := &lab{t: t, inv: inventory.Of(o.devices...), set: rules.NewSet(rs), cfg: defaultNoise(), mutes: o.mutes,
		gates: store.NewMemory(), alerts: store.NewMemory(), routing: &routing{}, hist: &historytest.Recorder{},
		down: map[string]bool{}, phases: map[string]time.Duration{}, interval: o.interval, probes: make(chan string, 64)}
	if o.noise != nil {
		l.cfg = *o.noise
	}
	for _, d := range l.inv.Devices() {
		if p, ok := o.phases[d.Name]; ok {
			l.phases[d.Name] = p
		} else {
			l.phases[d.Name] = schedule.Phase(d.Name, o.interval, 10*time.Millisecond)
		}
	}
	l.start()
	return l
}

func (l *lab) ProbeNow(devices ...string) {
	l.mu.Lock()
	drop := l.dropProbes
	l.mu.Unlock()
	if drop {
		return
	}
	for _, d := range devices {
		select {
		case l.probes <- d:
		default:
		}
	}
}

// start runs the gate, the alert manager and the prober (again after stop:
// a restart with the same stores).
func (l *lab) start() { l.run(l.build()) }

// member is one node's gate and alert manager over the lab's stores.
type member struct {
	gate *Gate
	mgr  *alert.Manager
	ctx  context.Context
	stop context.CancelFunc
}

// build makes a gate and an alert manager that load what the stores hold
// now; run runs them.
func (l *lab) build() *member {
	l.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{ctx: ctx, stop: cancel}
	log := slog.New(slog.DiscardHandler)
	var err error
	m.gate, err = New(ctx, Options{Store: l.gates, Next: l.routing, Prober: l, Mutes: l.mutes, Logger: log, History: l.hist,
		Emit: func(o observation.Observation) { _ = m.mgr.Observe(ctx, o) }})
	if err != nil {
		l.t.Fatal(err)
	}
	m.gate.Configure(l.cfg, l.set, l.inv)
	if m.mgr, err = alert.New(ctx, l.alerts, m.gate, alert.Options{Logger: log, History: l.hist}); err != nil {
		l.t.Fatal(err)
	}
	if err := m.mgr.SetRules(ctx, l.set, l.inv); err != nil {
		l.t.Fatal(err)
	}
	return m
}

func (l *lab) run(m *member) {
	l.gate, l.mgr, l.cancel = m.gate, m.mgr, m.stop
	l.done.Go(func() { _ = m.mgr.Run(m.ctx) })
	l.done.Go(func() { _ = m.gate.Run(m.ctx) })
	l.done.Go(func() { l.prober(m.ctx) })
}

func (l *lab) stop() {
	l.cancel()
	l.done.Wait()
}

// prober pings every pinged device at its slots, and at once when asked.
func (l *lab) prober(ctx context.Context) {
	next := map[string]time.Time{}
	now := time.Now()
	for _, d := range l.inv.Devices() {
		if d.ICMP != nil {
			next[d.Name] = schedule.Slot(now, d.ICMP.Interval, l.phases[d.Name])
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		var names []string
		first := time.Time{}
		for name, at := range next {
			if !at.After(now) {
				names = append(names, name)
				d, _ := l.inv.Device(name)
				next[name] = at.Add(d.ICMP.Interval)
			}
			if first.IsZero() || next[name].Before(first) {
				first = next[name]
			}
		}
		sort.Strings(names)
		for _, n := range names {
			l.ping(ctx, n)
		}
		if first.IsZero() {
			first = now.Add(time.Hour) // nothing pinged: wait for probes
		}
		timer.Reset(first.Sub(now))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case n := <-l.probes:
			l.ping(ctx, n)
		}
	}
}

// ping runs one round of a device: an answer comes at once, silence is
// known only at the round's timeout; the round is delivered as the app
// does, to the gate first, then to the rules.
func (l *lab) ping(ctx context.Context, name string) {
	d, _ := l.inv.Device(name)
	l.mu.Lock()
	up := !l.down[name]
	l.mu.Unlock()
	if !up {
		l.done.Go(func() {
			select {
			case <-ctx.Done():
			case <-time.After(d.ICMP.Timeout):
				l.deliver(ctx, d, false)
			}
		})
		return
	}
	l.deliver(ctx, d, true)
}

func (l *lab) deliver(ctx context.Context, d *inventory.Device, up bool) {
	loss, recv := 100.0, 0
	if up {
		loss, recv = 0, 1
	}
	o := observation.Observation{Source: observation.ICMP, Device: d, Time: time.Now(),
		Vars: map[string]any{"up": up, "loss": loss, "rtt_ms": 1.0, "sent": 1, "recv": recv}}
	l.gate.Observe(o)
	_ = l.mgr.Observe(ctx, o)
}

func (l *lab) setDown(down bool, names ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		l.down[n] = down
	}
}

// sentFor lists what receivers got about one device.
func (l *lab) sentFor(device string) []sent {
	var out []sent
	for _, s := range l.routing.all() {
		if s.ev.Device.Name == device {
			out = append(out, s)
		}
	}
	return out
}

// wait lets the simulated time pass.
func wait(d time.Duration) { time.Sleep(d) }

func names(n int, prefix string) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, i+1))
	}
	return out
}
