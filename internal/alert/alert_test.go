package alert

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
)

type memStore struct {
	mu   sync.Mutex
	data map[string][]byte
	fail bool
}

func (s *memStore) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("disk full")
	}
	s.data[k] = append([]byte(nil), v...)
	return nil
}
func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, k)
	return nil
}
func (s *memStore) All(context.Context) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.data), nil
}

type recorder struct {
	mu     sync.Mutex
	events []event.Event
	tos    [][]string
	fail   error
}

func (r *recorder) Dispatch(_ context.Context, ev event.Event, resolveTo []string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return nil, r.fail
	}
	r.events = append(r.events, ev)
	r.tos = append(r.tos, resolveTo)
	return []string{"hook"}, nil
}

func (r *recorder) snapshot() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.events...)
}

const icmpRule = `
rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: loss == 100
    for: 20s
    clear_when: loss == 0
    clear_for: 10s
    severity: 1
    domain: Connectivity
    sub_domain: Devices
    description: "{{ .Device.Name }} ({{ .Device.Address }}) is unreachable"
`

var sw = &inventory.Device{Name: "core-sw1", Address: "192.0.2.1", Site: "HQ", Role: "core"}

// swOnly is an inventory of sw alone.
var swOnly = inventory.Of(*sw)

func mustRules(t *testing.T, src string) *rules.Set {
	t.Helper()
	rs, errs := rules.Parse([]byte(src), "t.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return rules.NewSet(rs)
}

func ping(loss float64) observation.Observation {
	return observation.Observation{Source: observation.ICMP, Device: sw, Time: time.Now(),
		Vars: map[string]any{"up": loss < 100, "loss": loss, "rtt_ms": 0.5, "sent": 1, "recv": 0}}
}

// start runs a manager inside a synctest bubble.
func start(t *testing.T, ctx context.Context, st *memStore, rec *recorder) *Manager {
	t.Helper()
	m, err := New(ctx, st, rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetRules(ctx, mustRules(t, icmpRule), swOnly); err != nil {
		t.Fatal(err)
	}
	go m.Run(ctx)
	return m
}

func TestFireAfterForAndResolveAfterClearFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		m := start(t, ctx, st, rec)
		t0 := time.Now()

		m.Observe(ctx, ping(100))
		time.Sleep(19 * time.Second)
		synctest.Wait()
		if n := len(rec.snapshot()); n != 0 {
			t.Fatalf("fired before for elapsed: %d events", n)
		}
		time.Sleep(1 * time.Second)
		synctest.Wait()
		evs := rec.snapshot()
		if len(evs) != 1 || evs[0].Status != event.StatusActive {
			t.Fatalf("after for: %+v", evs)
		}
		if got := evs[0].Timestamp.Sub(t0); got != 20*time.Second {
			t.Errorf("fired at +%v, want +20s", got)
		}
		if evs[0].Description != "core-sw1 (192.0.2.1) is unreachable" || evs[0].InstanceID == "" {
			t.Errorf("event = %+v", evs[0])
		}
		// Partial loss neither clears nor re-fires (hysteresis).
		m.Observe(ctx, ping(50))
		m.Observe(ctx, ping(0))
		time.Sleep(5 * time.Second)
		m.Observe(ctx, ping(100)) // flap: clearing restarts
		m.Observe(ctx, ping(0))
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if n := len(rec.snapshot()); n != 1 {
			t.Fatalf("resolved before clear_for held: %d events", n)
		}
		time.Sleep(1 * time.Second)
		synctest.Wait()
		evs = rec.snapshot()
		if len(evs) != 2 || evs[1].Status != event.StatusResolved || evs[1].InstanceID != evs[0].InstanceID {
			t.Fatalf("resolve: %+v", evs)
		}
		if rec.tos[1][0] != "hook" {
			t.Errorf("resolve sent to %v, want the active's destinations", rec.tos[1])
		}
		if len(st.data) != 0 || len(m.Instances()) != 0 {
			t.Errorf("state left after resolve: %d stored, %d in memory", len(st.data), len(m.Instances()))
		}
	})
}

func TestPendingCancelledByRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		m := start(t, ctx, st, rec)
		m.Observe(ctx, ping(100))
		time.Sleep(10 * time.Second)
		m.Observe(ctx, ping(0))
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(rec.snapshot()); n != 0 {
			t.Fatalf("a recovered pending alert fired: %d events", n)
		}
	})
}

func TestRestartNeitherRefiresNorForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		ctx1, stop1 := context.WithCancel(t.Context())
		m := start(t, ctx1, st, rec)
		m.Observe(ctx1, ping(100))
		time.Sleep(21 * time.Second)
		synctest.Wait()
		stop1()
		if len(rec.snapshot()) != 1 {
			t.Fatal("did not fire")
		}

		// Restart: still down → nothing new; the device then recovers.
		ctx2, stop2 := context.WithCancel(t.Context())
		defer stop2()
		m2 := start(t, ctx2, st, rec)
		if got := m2.Instances(); len(got) != 1 || got[0].State != StateFiring {
			t.Fatalf("after restart: %+v", got)
		}
		m2.Observe(ctx2, ping(100))
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := len(rec.snapshot()); n != 1 {
			t.Fatalf("re-fired after restart: %d events", n)
		}
		m2.Observe(ctx2, ping(0))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		evs := rec.snapshot()
		if len(evs) != 2 || evs[1].Status != event.StatusResolved || evs[1].InstanceID != evs[0].InstanceID {
			t.Fatalf("recovery after restart: %+v", evs)
		}
	})
}

func TestUnsentTransitionRedispatchedAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{data: map[string][]byte{}}
		failing := &recorder{fail: errors.New("outbox unavailable")}
		ctx1, stop1 := context.WithCancel(t.Context())
		m := start(t, ctx1, st, failing)
		m.Observe(ctx1, ping(100))
		time.Sleep(21 * time.Second)
		synctest.Wait()
		stop1()
		if len(st.data) != 1 {
			t.Fatalf("transition not persisted before dispatch: %d records", len(st.data))
		}
		rec := &recorder{}
		ctx2, stop2 := context.WithCancel(t.Context())
		defer stop2()
		start(t, ctx2, st, rec)
		evs := rec.snapshot()
		if len(evs) != 1 || evs[0].Status != event.StatusActive {
			t.Fatalf("unsent active not redispatched at start: %+v", evs)
		}
	})
}

func TestRemovedDeviceResolvesOnReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		m := start(t, ctx, st, rec)
		m.Observe(ctx, ping(100))
		time.Sleep(21 * time.Second)
		synctest.Wait()
		if err := m.SetRules(ctx, mustRules(t, icmpRule), inventory.Of()); err != nil {
			t.Fatal(err)
		}
		evs := rec.snapshot()
		if len(evs) != 2 || evs[1].Status != event.StatusResolved {
			t.Fatalf("removed device's alert not resolved: %+v", evs)
		}
	})
}

func TestTrapRuleKeyedResolveAndOneShot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		m, err := New(ctx, st, rec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		set := mustRules(t, `
rules:
  - event_id: NETWORK-INTERFACES-2-301
    name: Interface down
    source: trap
    when: trap == "IF-MIB::linkDown"
    resolve_when: trap == "IF-MIB::linkUp"
    key: vars["IF-MIB::ifIndex"]
    severity: 2
    description: "if {{ .Key }}"
  - event_id: NETWORK-DEVICES-3-102
    name: Device restarted
    source: trap
    kind: event
    when: trap == "SNMPv2-MIB::coldStart"
    severity: 3
    description: restarted
`)
		if err := m.SetRules(ctx, set, swOnly); err != nil {
			t.Fatal(err)
		}
		trap := func(name string, idx int) observation.Observation {
			return observation.Observation{Source: observation.Trap, Device: sw, Time: time.Now(), Vars: map[string]any{
				"trap": name, "trap_oid": "", "vars": map[string]any{"IF-MIB::ifIndex": idx}, "source": "192.0.2.1", "version": "2c"}}
		}
		m.Observe(ctx, trap("IF-MIB::linkDown", 1))
		m.Observe(ctx, trap("IF-MIB::linkDown", 2))
		m.Observe(ctx, trap("IF-MIB::linkDown", 2)) // repeated: no second alert
		m.Observe(ctx, trap("IF-MIB::linkUp", 2))
		m.Observe(ctx, trap("SNMPv2-MIB::coldStart", 0))
		m.Observe(ctx, trap("SNMPv2-MIB::coldStart", 0))
		evs := rec.snapshot()
		type k struct {
			id, key string
			st      event.Status
		}
		var got []k
		for _, e := range evs {
			got = append(got, k{e.EventID, e.Key, e.Status})
		}
		want := []k{
			{"NETWORK-INTERFACES-2-301", "1", event.StatusActive},
			{"NETWORK-INTERFACES-2-301", "2", event.StatusActive},
			{"NETWORK-INTERFACES-2-301", "2", event.StatusResolved},
			{"NETWORK-DEVICES-3-102", "", event.StatusActive},
			{"NETWORK-DEVICES-3-102", "", event.StatusActive},
		}
		if len(got) != len(want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("event %d = %v, want %v", i, got[i], want[i])
			}
		}
		if evs[3].InstanceID == evs[4].InstanceID {
			t.Error("one-shot events share an instance id")
		}
	})
}
