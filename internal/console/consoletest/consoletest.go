// Package consoletest holds in-memory stand-ins for the console's read
// models that live on other branches or in other processes — the alert
// history and the per-minute ICMP series — and a generator of a realistic
// fleet (devices in every state, alerts, series, history), for the
// console's tests and `nocbench console`. The outbox and the silences are
// the real ones in both.
package consoletest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/noise"
	"github.com/nocbridge/nocbridge/internal/store"
)

// History is an alert history in memory with history.History's contract:
// Get wraps history.ErrNotFound, List pages newest first (by LastAt) with
// an opaque cursor. Safe for concurrent use.
type History struct {
	mu       sync.RWMutex
	byID     map[string]history.Alert
	byDevice map[string][]string // instance ids
	all      []string
}

// NewHistory makes an empty history.
func NewHistory() *History {
	return &History{byID: map[string]history.Alert{}, byDevice: map[string][]string{}}
}

// Put adds or replaces an alert.
func (h *History) Put(a history.Alert) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.byID[a.InstanceID]; !ok {
		h.byDevice[a.Device] = append(h.byDevice[a.Device], a.InstanceID)
		h.all = append(h.all, a.InstanceID)
	}
	h.byID[a.InstanceID] = a
}

// Get is one alert with its timeline.
func (h *History) Get(_ context.Context, id string) (history.Alert, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	a, ok := h.byID[id]
	if !ok {
		return history.Alert{}, fmt.Errorf("alert %s: %w", id, history.ErrNotFound)
	}
	a.Timeline = slices.Clone(a.Timeline)
	return a, nil
}

// DefaultLimit is List's page size when the query gives none.
const DefaultLimit = 50

// List is a page of alerts without their timelines, newest first.
func (h *History) List(_ context.Context, q history.Query) (history.Page, error) {
	from := 0
	if q.Cursor != "" {
		n, err := strconv.Atoi(q.Cursor)
		if err != nil || n < 0 {
			return history.Page{}, fmt.Errorf("bad cursor %q", q.Cursor)
		}
		from = n
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	h.mu.RLock()
	ids := h.all
	if q.Device != "" {
		ids = h.byDevice[q.Device]
	}
	var match []history.Alert
	for _, id := range ids {
		a := h.byID[id]
		if (q.EventID == "" || a.EventID == q.EventID) && (q.Status == "" || a.Status == q.Status) {
			a.Timeline = nil
			match = append(match, a)
		}
	}
	h.mu.RUnlock()
	slices.SortFunc(match, func(a, b history.Alert) int {
		return cmp.Or(b.LastAt.Compare(a.LastAt), cmp.Compare(a.InstanceID, b.InstanceID))
	})
	if from > len(match) {
		return history.Page{}, fmt.Errorf("bad cursor %q: past the end", q.Cursor)
	}
	p := history.Page{Items: match[from:min(from+limit, len(match))]}
	if from+limit < len(match) {
		p.Next = strconv.Itoa(from + limit)
	}
	if p.Items == nil {
		p.Items = []history.Alert{}
	}
	return p, nil
}

// Series is per-minute ICMP results per device, in memory. Safe for
// concurrent use.
type Series struct {
	mu sync.RWMutex
	m  map[string][]devstate.Point
}

// NewSeries makes an empty set of series.
func NewSeries() *Series { return &Series{m: map[string][]devstate.Point{}} }

// Set replaces a device's points (oldest first).
func (s *Series) Set(device string, pts []devstate.Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[device] = pts
}

// Series is a copy of a device's points.
func (s *Series) Series(device string) []devstate.Point {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.m[device])
}

// Fleet is a generated network: devices in every state, their alerts,
// series and history.
type Fleet struct {
	Devices []devstate.Status
	Alerts  []alert.Instance
	Series  *Series
	History *History
}

// roles of the generated devices, one core per site first.
var roles = []string{"core", "distribution", "access", "access", "access", "ap", "ap", "ap", "ap", "ap"}

// NewFleet generates n devices over n/100 sites (at least one) as seen at
// now: about 2% down (each with a firing NETWORK-DEVICES-1-101 alert and a
// loss-heavy series), 3% unreachable behind their site's core switch, 1%
// unknown (never probed), the rest up; every probed device has an hour of
// per-minute points and SNMP values, and every down or once-flapping
// device has alerts in the history, resolved ones with full timelines.
func NewFleet(n int, now time.Time) *Fleet {
	f := &Fleet{Series: NewSeries(), History: NewHistory()}
	sites := max(1, n/100)
	now = now.Truncate(time.Second)
	for i := range n {
		site := fmt.Sprintf("site-%03d", i%sites)
		role := roles[(i/sites)%len(roles)]
		d := devstate.Status{Name: fmt.Sprintf("%s-%s-%05d", site, role, i), Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Site: site, Role: role, Labels: map[string]string{"vendor": []string{"cisco", "juniper", "aruba"}[i%3]}}
		if i < sites {
			d.Name, d.Role = site+"-core", "core"
		}
		switch r := i % 100; {
		case r == 17 || r == 61:
			d.State, d.LossPct, d.Error = "down", 100, "no echo reply in 3 of 3"
		case r == 23 || r == 24 || r == 77:
			d.State, d.LossPct, d.SuppressedBy = "unreachable", 100, []string{site + "-core"}
		case r == 99:
			d.State = "unknown"
		default:
			d.State, d.LossPct, d.RTTMs = "up", 0, 0.4+float64(i%37)/10
		}
		if d.State != "unknown" {
			d.LastProbe = now.Add(-time.Duration(i%20) * time.Second)
			cpu, mem, up := float64(5+i%70), float64(30+i%50), float64(86400*(1+i%200))
			d.SNMPState, d.LastPoll, d.CPU, d.Mem, d.UptimeS = "ok", now.Add(-time.Duration(i%60)*time.Second), &cpu, &mem, &up
			if d.State != "up" {
				d.SNMPState, d.SNMPError = "timeout", "no answer from "+d.Address+":161 in 2s (3 tries)"
			}
			f.Series.Set(d.Name, Points(now, i, d.State != "up"))
		}
		f.Devices = append(f.Devices, d)
		dev := inventory.Device{Name: d.Name, Address: d.Address, Site: d.Site, Role: d.Role, Labels: d.Labels}
		if d.State == "down" {
			since := now.Add(-time.Duration(1+i%180) * time.Minute)
			ev := DeviceDown(dev, fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), since)
			f.Alerts = append(f.Alerts, alert.Instance{EventID: ev.EventID, Device: dev, State: alert.StateFiring, Since: since.Add(-20 * time.Second),
				ActiveAt: since, Event: &ev, ResolveTo: []string{"noc-webhook"}, Value: 100.0})
			f.History.Put(Firing(ev, "noc-webhook"))
		}
		if d.State == "down" || i%50 == 5 { // a past outage, resolved
			ev := DeviceDown(dev, fmt.Sprintf("%08x-0000-4000-9000-%012x", i, i), now.Add(-time.Duration(2+i%20)*time.Hour))
			f.History.Put(Resolved(ev, "noc-webhook", ev.Timestamp.Add(7*time.Minute)))
		}
	}
	// By name, as devstate.Tracker.List gives them.
	slices.SortFunc(f.Devices, func(a, b devstate.Status) int { return cmp.Compare(a.Name, b.Name) })
	return f
}

// Points is an hour of per-minute ICMP results before now: low RTT with a
// little jitter, and for a failing device loss that grows to 100% over the
// last minutes (no reply: the RTT fields stay zero).
func Points(now time.Time, seed int, failing bool) []devstate.Point {
	start := now.Truncate(time.Minute).Add(-59 * time.Minute)
	pts := make([]devstate.Point, 0, 60)
	for m := range 60 {
		base := 0.5 + float64(seed%40)/10
		wave := 0.3 * (1 + math.Sin(float64(m+seed)/5))
		p := devstate.Point{At: start.Add(time.Duration(m) * time.Minute), Rounds: 6,
			RTTMinMs: round2(base), RTTAvgMs: round2(base + wave), RTTMaxMs: round2(base + 2*wave + float64((m*7+seed)%5)/10)}
		if m%17 == 9 {
			p.LossPct = 16.67
		}
		if failing && m >= 45 {
			p.LossPct = min(100, float64(m-44)*25)
			if p.LossPct == 100 {
				p.RTTMinMs, p.RTTAvgMs, p.RTTMaxMs = 0, 0, 0
			}
		}
		pts = append(pts, p)
	}
	return pts
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// DeviceDown is the shipped "Device unreachable" event of a device, active
// at since.
func DeviceDown(d inventory.Device, instanceID string, since time.Time) event.Event {
	return event.Event{InstanceID: instanceID, EventID: "NETWORK-DEVICES-1-101", Name: "Device unreachable",
		Description: fmt.Sprintf("%s (%s) is unreachable: 100%% loss for 20s", d.Name, d.Address),
		Category:    "ALERT", Domain: "Connectivity", SubDomain: "Devices", Severity: 1, Source: "icmp",
		Timestamp: since, Status: event.StatusActive, Device: d}
}

// Firing is the history of an active alert: pending, active, and its
// delivery to destination (a 503, then a 204).
func Firing(ev event.Event, destination string) history.Alert {
	at := ev.Timestamp
	return history.Alert{InstanceID: ev.InstanceID, EventID: ev.EventID, Name: ev.Name, Device: ev.Device.Name, Key: ev.Key,
		Severity: ev.Severity, Status: string(history.KindActive), FirstAt: at.Add(-20 * time.Second), LastAt: at.Add(1500 * time.Millisecond),
		Event: &ev, Timeline: []history.Entry{
			{At: at.Add(-20 * time.Second), Kind: history.KindPending, Detail: "loss 100% (for 20s)"},
			{At: at, Kind: history.KindActive, Status: event.StatusActive},
			{At: at.Add(30 * time.Millisecond), Kind: history.KindAttempt, Status: event.StatusActive, Destination: destination, Attempt: 1,
				Result: "retry", HTTPStatus: 503, DurationMs: 12.4, Detail: "HTTP 503: upstream busy"},
			{At: at.Add(1500 * time.Millisecond), Kind: history.KindAttempt, Status: event.StatusActive, Destination: destination, Attempt: 2,
				Result: "delivered", HTTPStatus: 204, DurationMs: 3.1},
		}}
}

// Resolved is the history of an alert that fired and resolved at
// resolvedAt, each notification delivered to destination.
func Resolved(ev event.Event, destination string, resolvedAt time.Time) history.Alert {
	a := Firing(ev, destination)
	res := ev
	res.Status, res.Timestamp = event.StatusResolved, resolvedAt
	a.Status, a.ResolvedAt, a.LastAt, a.Event = string(history.KindResolved), resolvedAt, resolvedAt.Add(4*time.Millisecond), &res
	a.Timeline = append(a.Timeline,
		history.Entry{At: resolvedAt, Kind: history.KindResolved, Status: event.StatusResolved, Detail: "loss 0% (for 10s)"},
		history.Entry{At: resolvedAt.Add(4 * time.Millisecond), Kind: history.KindAttempt, Status: event.StatusResolved, Destination: destination,
			Attempt: 1, Result: "delivered", HTTPStatus: 204, DurationMs: 2.7})
	return a
}

// Noise says what noise control would of a fleet: its unreachable
// devices' alerts suppressed behind their parents, and the device in the
// middle of the fleet flapping. Read-only after NewNoise.
type Noise struct {
	sum         noise.Summary
	unreachable map[string][]string
}

// NewNoise is noise control's view of f at now.
func NewNoise(f *Fleet, now time.Time) *Noise {
	n := &Noise{unreachable: map[string][]string{}}
	for _, d := range f.Devices {
		if d.State == "unreachable" {
			n.unreachable[d.Name] = d.SuppressedBy
			n.sum.Unreachable = append(n.sum.Unreachable, noise.UnreachableDevice{Name: d.Name, SuppressedBy: d.SuppressedBy})
		}
	}
	if len(f.Devices) > 0 {
		n.sum.Flapping = []noise.FlappingAlert{{EventID: "NETWORK-INTERFACES-2-301", Device: f.Devices[len(f.Devices)/2].Name, Key: "3",
			Changes: 6, Active: true, Ends: now.Add(10 * time.Minute)}}
	}
	return n
}

// AlertStatus is noise.Gate's answer for an alert of device.
func (n *Noise) AlertStatus(_, device, _ string) noise.AlertStatus {
	if by, ok := n.unreachable[device]; ok {
		return noise.AlertStatus{Suppressed: "parent", SuppressedBy: by}
	}
	return noise.AlertStatus{}
}

// Summary is noise.Gate's summary.
func (n *Noise) Summary() noise.Summary { return n.sum }

// ThreeNodes is a three-node cluster as the store reports it
// (store.Store.ClusterInfo): nb2 the meta leader and the OUTBOX stream's,
// nb3 unreachable for 12.5 s and 40 operations behind.
func ThreeNodes() store.ClusterInfo {
	return store.ClusterInfo{Enabled: true, Name: "noc-east", Node: "nb1", Ready: true, MetaLeader: "nb2",
		Nodes: []store.ClusterNode{
			{Name: "nb1", Reachable: true, Current: true},
			{Name: "nb2", Reachable: true, Current: true, Leader: true},
			{Name: "nb3", Reachable: false, LastSeenSeconds: 12.5, Lag: 40},
		},
		Streams: []store.StreamStatus{{Name: "OUTBOX", Replicas: 3, Leader: "nb2", Messages: 120, Lag: 40,
			Peers: []store.ClusterNode{{Name: "nb2", Reachable: true, Current: true, Leader: true},
				{Name: "nb1", Reachable: true, Current: true}, {Name: "nb3", LastSeenSeconds: 12.5, Lag: 40}}}},
	}
}
