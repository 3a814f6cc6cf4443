package noise

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// A device that goes down and up every half minute flaps: after five
// changes one active goes out marked flapping, nothing more while it
// flaps, and the real state once it has been quiet for the window.
func TestFlappingPings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: []inventory.Device{pinged("sw", "")}, rules: immediateRule})
		defer l.stop()
		wait(15 * time.Second)
		for range 6 { // 12 changes in 6 minutes
			l.setDown(true, "sw")
			wait(30 * time.Second)
			l.setDown(false, "sw")
			wait(30 * time.Second)
		}
		got := l.routing.summary()
		if got != "active sw, resolved sw, active sw, resolved sw, active sw" {
			t.Fatalf("while flapping: %q, want the four changes before it flapped and one active", got)
		}
		flagged := l.sentFor("sw")[4].ev
		if flagged.Details["Flapping"] != "5 changes in 15m0s" {
			t.Errorf("the flapping active's details %v", flagged.Details)
		}
		if f := l.gate.Summary().Flapping; len(f) != 1 || f[0].Device != "sw" {
			t.Errorf("flapping list %+v", f)
		}
		wait(16 * time.Minute) // quiet, and up
		sent := l.sentFor("sw")
		if len(sent) != 6 || sent[5].ev.Status != event.StatusResolved || sent[5].ev.InstanceID != flagged.InstanceID {
			t.Fatalf("after the quiet window: %q, want the flapping active's resolve", l.routing.summary())
		}
		if f := l.gate.Summary().Flapping; len(f) != 0 {
			t.Errorf("still flapping: %+v", f)
		}
	})
}

// Flapping ends while the alert is active: nothing more goes out then (its
// active went); the resolve of the active receivers know follows the real
// resolve, whatever instance that is.
func TestFlappingEndsActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: []inventory.Device{pinged("sw", "")}, rules: immediateRule})
		defer l.stop()
		wait(15 * time.Second)
		for range 3 {
			l.setDown(true, "sw")
			wait(30 * time.Second)
			l.setDown(false, "sw")
			wait(30 * time.Second)
		}
		l.setDown(true, "sw") // and it stays down
		wait(20 * time.Minute)
		if got := l.routing.summary(); got != "active sw, resolved sw, active sw, resolved sw, active sw" {
			t.Fatalf("flapping ended down: %q", got)
		}
		told := l.sentFor("sw")[4].ev.InstanceID
		l.setDown(false, "sw")
		wait(time.Minute)
		sent := l.sentFor("sw")
		if len(sent) != 6 || sent[5].ev.Status != event.StatusResolved || sent[5].ev.InstanceID != told {
			t.Fatalf("after it came back: %q; the resolve must carry the told active's instance", l.routing.summary())
		}
	})
}

// Traps flap too: a port bouncing linkDown/linkUp flaps per ifIndex.
func TestFlappingTraps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const linkRule = `rules:
  - event_id: NETWORK-INTERFACES-2-301
    name: Interface down
    source: trap
    when: trap == "IF-MIB::linkDown"
    key: vars["IF-MIB::ifIndex"]
    resolve_when: trap == "IF-MIB::linkUp"
    severity: 2
`
		l := newLab(t, labOpts{devices: []inventory.Device{{Name: "sw", Address: "192.0.2.9"}}, rules: linkRule})
		defer l.stop()
		d, _ := l.inv.Device("sw")
		trap := func(name string, ifIndex int) {
			o := observation.Observation{Source: observation.Trap, Device: d, Time: time.Now(), Vars: map[string]any{
				"trap": name, "trap_oid": "", "source": "192.0.2.9", "version": "2c", "vars": map[string]any{"IF-MIB::ifIndex": ifIndex}}}
			l.gate.Observe(o)
			_ = l.mgr.Observe(context.Background(), o)
		}
		for range 10 {
			trap("IF-MIB::linkDown", 3)
			wait(5 * time.Second)
			trap("IF-MIB::linkUp", 3)
			wait(5 * time.Second)
		}
		trap("IF-MIB::linkDown", 4) // another port: its own alert
		wait(time.Second)
		var port3, port4 int
		for _, s := range l.routing.all() {
			switch s.ev.Key {
			case "3":
				port3++
			case "4":
				port4++
			}
		}
		if port3 != 5 || port4 != 1 {
			t.Fatalf("port 3 (20 changes): %d notifications, want 4 before it flapped + 1 flapping; port 4: %d, want 1", port3, port4)
		}
	})
}

// fakeMutes mutes named devices between two times.
type fakeMutes struct {
	mu      sync.Mutex
	windows []fakeWindow
	changed chan struct{}
}

type fakeWindow struct {
	name       string
	devices    []string
	start, end time.Time
}

func newFakeMutes() *fakeMutes { return &fakeMutes{changed: make(chan struct{}, 1)} }

func (m *fakeMutes) add(w fakeWindow) {
	m.mu.Lock()
	m.windows = append(m.windows, w)
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *fakeMutes) expire(name string, at time.Time) {
	m.mu.Lock()
	for i := range m.windows {
		if m.windows[i].name == name {
			m.windows[i].end = at
		}
	}
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *fakeMutes) MutedBy(d *inventory.Device, _ string, at time.Time) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, w := range m.windows {
		if slices.Contains(w.devices, d.Name) && !at.Before(w.start) && at.Before(w.end) {
			out = append(out, w.name)
		}
	}
	return out
}

func (m *fakeMutes) NextBoundary(after time.Time) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for _, w := range m.windows {
		for _, b := range []time.Time{w.start, w.end} {
			if b.After(after) && (next.IsZero() || b.Before(next)) {
				next = b
			}
		}
	}
	return next, !next.IsZero()
}

func (m *fakeMutes) Changed() <-chan struct{} { return m.changed }

// Inside a maintenance window: a new active is not sent; one still active
// at the end goes out within a second of it; one that fired and cleared
// inside sends nothing; a resolve of an active told before is sent.
func TestMaintenanceWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mutes := newFakeMutes()
		devs := []inventory.Device{pinged("stays", ""), pinged("blips", ""), pinged("told", "")}
		l := newLab(t, labOpts{devices: devs, mutes: mutes})
		defer l.stop()
		wait(15 * time.Second)
		l.setDown(true, "told")
		wait(time.Minute) // told's active goes out before the window
		start := time.Now()
		end := start.Add(10 * time.Minute)
		mutes.add(fakeWindow{name: "maintenance patching", devices: []string{"stays", "blips", "told"}, start: start, end: end})
		l.setDown(true, "stays", "blips")
		wait(2 * time.Minute)
		l.setDown(false, "blips", "told")
		wait(time.Minute)
		if got := l.routing.summary(); got != "active told, resolved told" {
			t.Fatalf("inside the window: %q, want only told's active and resolve", got)
		}
		st := l.gate.AlertStatus("NETWORK-DEVICES-1-101", "stays", "")
		if strings.Join(st.MutedBy, ",") != "maintenance patching" {
			t.Errorf("stays' alert status %+v, want muted by the window", st)
		}
		wait(end.Sub(time.Now()) + 2*time.Second)
		sent := l.sentFor("stays")
		if len(sent) != 1 || sent[0].at.Sub(end) > time.Second || sent[0].at.Before(end) {
			t.Fatalf("stays after the window: %v, want its active within a second of %v", sent, end)
		}
		if n := len(l.sentFor("blips")); n != 0 {
			t.Errorf("blips fired and cleared inside the window: %d notifications, want none", n)
		}
	})
}

// A silence ended early releases at once what it held; one-shot events
// inside it are counted and listed, not sent.
func TestSilenceExpiringWhileActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mutes := newFakeMutes()
		l := newLab(t, labOpts{devices: []inventory.Device{pinged("sw", "")}, mutes: mutes})
		defer l.stop()
		wait(15 * time.Second)
		mutes.add(fakeWindow{name: "silence s1", devices: []string{"sw"}, start: time.Now(), end: time.Now().Add(time.Hour)})
		l.setDown(true, "sw")
		wait(time.Minute)
		oneShot := event.Event{InstanceID: "restart-1", EventID: "NETWORK-DEVICES-3-102", Kind: event.KindEvent, Status: event.StatusActive,
			Device: inventory.Device{Name: "sw"}, Timestamp: time.Now()}
		if _, err := l.gate.Dispatch(context.Background(), oneShot, nil); err != nil {
			t.Fatal(err)
		}
		if got := l.routing.summary(); got != "" {
			t.Fatalf("silenced: %q, want nothing", got)
		}
		if m := l.gate.Summary().Muted; len(m) != 1 || m[0].Event.InstanceID != "restart-1" || m[0].MutedBy[0] != "silence s1" {
			t.Errorf("muted one-shot events %+v", m)
		}
		expired := time.Now()
		mutes.expire("silence s1", expired)
		wait(5 * time.Second)
		sent := l.sentFor("sw")
		if len(sent) != 1 || sent[0].ev.EventID != "NETWORK-DEVICES-1-101" || sent[0].at.Sub(expired) > time.Second {
			t.Fatalf("after the silence ended: %q at %v, want sw's active within a second", l.routing.summary(), sent)
		}
	})
}

// A restart during a silence neither sends what it holds nor forgets it.
func TestRestartDuringSilence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mutes := newFakeMutes()
		l := newLab(t, labOpts{devices: []inventory.Device{pinged("sw", "")}, mutes: mutes})
		wait(15 * time.Second)
		end := time.Now().Add(5 * time.Minute)
		mutes.add(fakeWindow{name: "silence s1", devices: []string{"sw"}, start: time.Now(), end: end})
		l.setDown(true, "sw")
		wait(time.Minute)
		l.stop()
		l.start()
		defer l.stop()
		wait(time.Minute)
		if got := l.routing.summary(); got != "" {
			t.Fatalf("after a restart inside the silence: %q", got)
		}
		wait(end.Sub(time.Now()) + 2*time.Second)
		if got := l.routing.summary(); got != "active sw" {
			t.Fatalf("after the silence: %q, want sw's active once", got)
		}
	})
}

// A restart in the middle of a flap episode keeps it: no second flapping
// active, and the resolve once quiet.
func TestRestartMidFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, labOpts{devices: []inventory.Device{pinged("sw", "")}, rules: immediateRule})
		wait(15 * time.Second)
		for range 4 {
			l.setDown(true, "sw")
			wait(30 * time.Second)
			l.setDown(false, "sw")
			wait(30 * time.Second)
		}
		l.stop()
		l.start()
		defer l.stop()
		l.setDown(true, "sw")
		wait(30 * time.Second)
		l.setDown(false, "sw")
		wait(20 * time.Minute)
		got := l.routing.summary()
		if got != "active sw, resolved sw, active sw, resolved sw, active sw, resolved sw" {
			t.Fatalf("flap episode across a restart: %q", got)
		}
	})
}
