package alert

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// stranger is a trap sender outside the inventory, as the receiver names it.
var stranger = inventory.UnknownSender(netip.MustParseAddr("192.0.2.77"))

func strangerTrap(name string, ifIndex int) observation.Observation {
	o := trapObs(name, ifIndex)
	o.Device = stranger
	o.Vars["source"] = stranger.Address
	return o
}

// runWith runs a manager over st with rules src and inventory inv until
// ctx ends.
func runWith(t *testing.T, ctx context.Context, st *memStore, rec *recorder, reg prometheus.Registerer, src string, inv *inventory.Inventory) *Manager {
	t.Helper()
	m, err := New(ctx, st, rec, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetRules(ctx, mustRules(t, src), inv); err != nil {
		t.Fatal(err)
	}
	go m.Run(ctx)
	synctest.Wait()
	return m
}

// An unknown sender's alert is kept by a reload and a restart like any
// other, and resolved by its own clear trap.
func TestUnknownSenderAlertSurvivesReloadAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		accepting := swOnly.WithUnknownSenders(24 * time.Hour)
		ctx1, stop1 := context.WithCancel(t.Context())
		m := runWith(t, ctx1, st, rec, nil, linkRule, accepting)
		m.Observe(ctx1, strangerTrap("IF-MIB::linkDown", 3))
		synctest.Wait()
		if err := m.SetRules(ctx1, mustRules(t, linkRule), accepting); err != nil { // a reload
			t.Fatal(err)
		}
		synctest.Wait()
		if evs := rec.snapshot(); len(evs) != 1 || evs[0].Status != event.StatusActive || evs[0].Device.Name != "192.0.2.77" {
			t.Fatalf("after a reload: %+v; want the one active", evs)
		}
		stop1()
		synctest.Wait()

		ctx2, stop2 := context.WithCancel(t.Context())
		defer stop2()
		m = runWith(t, ctx2, st, rec, nil, linkRule, accepting) // a restart
		if got := m.Instances(); len(got) != 1 || got[0].State != StateFiring || got[0].Device.Name != stranger.Name {
			t.Fatalf("after a restart: %+v", got)
		}
		m.Observe(ctx2, strangerTrap("IF-MIB::linkUp", 3))
		synctest.Wait()
		evs := rec.snapshot()
		if len(evs) != 2 || evs[1].Status != event.StatusResolved || evs[1].InstanceID != evs[0].InstanceID {
			t.Fatalf("after its clear trap: %+v", evs)
		}
	})
}

// Without its clear trap, an unknown sender's alert resolves
// traps.unknown_expire after it fired, at that moment; once unknown senders
// are no longer accepted (unknown_sources: drop), a reload resolves it.
func TestUnknownSenderAlertExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		m := runWith(t, ctx, st, rec, nil, linkRule, swOnly.WithUnknownSenders(time.Hour))
		t0 := time.Now()
		m.Observe(ctx, strangerTrap("IF-MIB::linkDown", 3))
		m.Observe(ctx, strangerTrap("IF-MIB::linkDown", 4))
		m.Observe(ctx, trapObs("IF-MIB::linkDown", 5)) // a known device's: never expires
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if n := len(rec.snapshot()); n != 3 {
			t.Fatalf("%d events before the expiry, want the 3 actives", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		evs := rec.snapshot()
		if len(evs) != 5 {
			t.Fatalf("events %+v; want the unknown sender's two resolved", evs)
		}
		for _, ev := range evs[3:] {
			if ev.Status != event.StatusResolved || ev.Device.Name != stranger.Name || !ev.Timestamp.Equal(t0.Add(time.Hour).UTC()) {
				t.Errorf("event %+v; want a resolve of %s at +1h", ev, stranger.Name)
			}
		}
		m.Observe(ctx, strangerTrap("IF-MIB::linkDown", 6))
		synctest.Wait()
		if err := m.SetRules(ctx, mustRules(t, linkRule), swOnly); err != nil { // unknown_sources: drop
			t.Fatal(err)
		}
		synctest.Wait()
		evs = rec.snapshot()
		if len(evs) != 7 || evs[6].Status != event.StatusResolved || evs[6].Key != "6" {
			t.Fatalf("events %+v; want ifIndex 6 resolved by the reload", evs)
		}
		if got := m.Instances(); len(got) != 1 || got[0].Device.Name != sw.Name {
			t.Errorf("instances %+v; want only the known device's", got)
		}
	})
}

// A template that fails at run time does not drop the notification: it
// goes out with the fallback description, counted by event id.
func TestTemplateFailureStillNotifies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		reg := prometheus.NewRegistry()
		rule := strings.Replace(linkRule, `description: "if {{ .Key }}"`,
			`description: '{{ range .Vars }}{{ range 100000 }}{{ printf "%01000d" 0 }}{{ end }}{{ end }}'`, 1)
		m := runWith(t, ctx, st, rec, reg, rule, swOnly)
		m.Observe(ctx, trapObs("IF-MIB::linkDown", 3))
		synctest.Wait()
		evs := rec.snapshot()
		if len(evs) != 1 || evs[0].Name != "Interface down" ||
			!strings.HasPrefix(evs[0].Description, "NETWORK-INTERFACES-2-301 on core-sw1: the rule's text could not be rendered (") ||
			!strings.Contains(evs[0].Description, "render budget") {
			t.Fatalf("events %+v; want the active with the fallback description", evs)
		}
		want := `
# HELP nocbridge_template_errors_total Rule templates that failed to render (the event went out with a fallback description), by event id.
# TYPE nocbridge_template_errors_total counter
nocbridge_template_errors_total{event_id="NETWORK-INTERFACES-2-301"} 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nocbridge_template_errors_total"); err != nil {
			t.Error(err)
		}
	})
}
