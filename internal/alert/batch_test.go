package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/testutil/logtest"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
)

const linkRule = `
rules:
  - event_id: NETWORK-INTERFACES-2-301
    name: Interface down
    source: trap
    when: trap == "IF-MIB::linkDown"
    resolve_when: trap == "IF-MIB::linkUp"
    key: vars["IF-MIB::ifIndex"]
    severity: 2
    description: "if {{ .Key }}"
`

func trapObs(name string, ifIndex int) observation.Observation {
	return observation.Observation{Source: observation.Trap, Device: sw, Time: time.Now(), Vars: map[string]any{
		"trap": name, "trap_oid": "", "vars": map[string]any{"IF-MIB::ifIndex": ifIndex}, "source": "192.0.2.1", "version": "2c"}}
}

// slowDispatcher takes a millisecond per dispatch, notes how many run at
// once, and logs each dispatch into the store's log so that the order of
// store writes and dispatches can be checked. The first dispatch waits for
// gate when it is set.
type slowDispatcher struct {
	st   *opStore
	gate chan struct{}
	// onDispatch runs at the start of every dispatch (crash snapshots).
	onDispatch func(event.Event)
	// fail, when set, is every dispatch's answer.
	fail error

	mu          sync.Mutex
	events      []event.Event
	inFlight    int
	maxInFlight int
	gated       bool
}

func (d *slowDispatcher) Dispatch(_ context.Context, ev event.Event, resolveTo []string) ([]string, error) {
	d.mu.Lock()
	gate := d.gate
	first := !d.gated
	d.gated = true
	d.inFlight++
	d.maxInFlight = max(d.maxInFlight, d.inFlight)
	d.mu.Unlock()
	if d.onDispatch != nil {
		d.onDispatch(ev)
	}
	if gate != nil && first {
		<-gate
	}
	time.Sleep(time.Millisecond)
	d.st.mu.Lock()
	d.st.ops = append(d.st.ops, fmt.Sprintf("dispatch %s %s", ev.Key, ev.Status))
	d.st.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inFlight--
	if d.fail != nil {
		return nil, d.fail
	}
	d.events = append(d.events, ev)
	if ev.Status == event.StatusResolved && !slices.Equal(resolveTo, []string{"hook"}) {
		return nil, fmt.Errorf("resolve of %s sent to %v; want the active's destinations", ev.Key, resolveTo)
	}
	return []string{"hook"}, nil
}

func (d *slowDispatcher) snapshot() []event.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.events)
}

// brief shortens logged store operations for failure messages.
func brief(ops []string) []string {
	out := make([]string, len(ops))
	for i, op := range ops {
		if len(op) > 40 {
			op = op[:40] + "…"
		}
		out[i] = op
	}
	return out
}

// settle lets the bubble's clock run until everything is idle: dispatches
// take a (fake) millisecond each.
func settle() {
	time.Sleep(time.Second)
	synctest.Wait()
}

// runManager starts a manager with Run inside a synctest bubble.
func runManager(t *testing.T, ctx context.Context, st Store, d Dispatcher, reg prometheus.Registerer) (*Manager, chan error) {
	t.Helper()
	return runManagerWith(t, ctx, st, d, Options{Logger: slog.New(slog.DiscardHandler), Registerer: reg})
}

func runManagerWith(t *testing.T, ctx context.Context, st Store, d Dispatcher, opts Options) (*Manager, chan error) {
	t.Helper()
	m, err := New(ctx, st, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetRules(ctx, mustRules(t, linkRule), swOnly); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	synctest.Wait() // Run is up: Observe queues from here on
	return m, done
}

// TestBurstIsOneJournalWriteThenConcurrentDispatch: while one alert is
// being dispatched, 50 more arrive; they are stored in one journal write
// before any of them is dispatched, dispatched concurrently, and then
// written to their own keys, the journal entry last.
func TestBurstIsOneJournalWriteThenConcurrentDispatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		d := &slowDispatcher{st: st, gate: make(chan struct{})}
		reg := prometheus.NewRegistry()
		m, _ := runManager(t, ctx, st, d, reg)

		m.Observe(ctx, trapObs("IF-MIB::linkDown", 1))
		synctest.Wait() // alert 1 is stored and held in its dispatch
		for i := 2; i <= 51; i++ {
			if err := m.Observe(ctx, trapObs("IF-MIB::linkDown", i)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		close(d.gate)
		settle()

		ops := st.log()
		journalAt, firstDispatch, journalDeleted := -1, -1, -1
		for i, op := range ops {
			switch {
			case strings.HasPrefix(op, "put "+journalPrefix):
				if journalAt >= 0 {
					t.Fatalf("two journal writes in %q; want the burst in one", brief(ops))
				}
				journalAt = i
			case strings.HasPrefix(op, "delete "+journalPrefix):
				journalDeleted = i
			case strings.HasPrefix(op, "dispatch ") && op != "dispatch 1 active" && firstDispatch < 0:
				firstDispatch = i
			}
		}
		if journalAt < 0 || firstDispatch < journalAt || journalDeleted != len(ops)-1 {
			t.Fatalf("ops %q; want one journal write before the burst's dispatches, and its deletion last", brief(ops))
		}
		// Before the burst's dispatches the store saw only alert 1 (its
		// own key, before and after its dispatch) and the journal.
		ownKeys := 0
		for _, op := range ops[:firstDispatch] {
			if strings.HasPrefix(op, "put a_") {
				ownKeys++
			}
		}
		if ownKeys > 2 {
			t.Errorf("%d own-key writes before the burst was dispatched; want alert 1's two only", ownKeys)
		}
		journal := ops[journalAt]
		var batch map[string]json.RawMessage
		if err := json.Unmarshal([]byte(journal[strings.Index(journal, "=")+1:]), &batch); err != nil || len(batch) != 50 {
			t.Fatalf("journal entry holds %d records (%v); want the 50 queued alerts", len(batch), err)
		}
		if d.maxInFlight < 50 {
			t.Errorf("at most %d dispatches at once; want the batch's 50 concurrently", d.maxInFlight)
		}

		data, _ := st.All(ctx)
		if len(data) != 51 {
			t.Errorf("%d store entries; want the 51 instances and no journal entry", len(data))
		}
		for k, v := range data {
			var r record
			if err := json.Unmarshal(v, &r); err != nil || r.Unsent != nil || !slices.Equal(r.ResolveTo, []string{"hook"}) || r.Rev == 0 {
				t.Errorf("stored %s = %s (%v); want sent, resolving to hook, with a revision", k, v, err)
			}
		}
		if v := promtest.Value(t, reg, "nocbridge_alerts_active", "event_id", "NETWORK-INTERFACES-2-301"); v != 51 {
			t.Errorf("nocbridge_alerts_active = %v; want 51", v)
		}
		m.Observe(ctx, trapObs("IF-MIB::linkUp", 3))
		settle()
		if v := promtest.Value(t, reg, "nocbridge_alerts_active", "event_id", "NETWORK-INTERFACES-2-301"); v != 50 {
			t.Errorf("nocbridge_alerts_active = %v after one resolve; want 50", v)
		}
	})
}

// TestBatchesKeepPerAlertOrder: down/up/down/up of one interface, queued
// together with other interfaces, reach the dispatcher in order, each only
// after the previous transition of that interface was dispatched.
func TestBatchesKeepPerAlertOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		d := &slowDispatcher{st: st, gate: make(chan struct{})}
		m, _ := runManager(t, ctx, st, d, nil)

		m.Observe(ctx, trapObs("IF-MIB::linkDown", 100)) // held at the gate
		synctest.Wait()
		for i := range 5 {
			m.Observe(ctx, trapObs("IF-MIB::linkDown", 7))
			m.Observe(ctx, trapObs("IF-MIB::linkDown", 10+i))
			m.Observe(ctx, trapObs("IF-MIB::linkUp", 7))
		}
		close(d.gate)
		settle()

		var seven []event.Event
		for _, ev := range d.snapshot() {
			if ev.Key == "7" {
				seven = append(seven, ev)
			}
		}
		if len(seven) != 10 {
			t.Fatalf("%d events for ifIndex 7; want 5 active/resolved pairs", len(seven))
		}
		for i := 0; i < len(seven); i += 2 {
			a, r := seven[i], seven[i+1]
			if a.Status != event.StatusActive || r.Status != event.StatusResolved || a.InstanceID != r.InstanceID {
				t.Errorf("pair %d: %s %s then %s %s; want active then resolved of one instance", i/2, a.Status, a.InstanceID, r.Status, r.InstanceID)
			}
			if i > 0 && a.InstanceID == seven[i-1].InstanceID {
				t.Errorf("pair %d reuses the previous instance id", i/2)
			}
		}
		// Each transition of ifIndex 7 was dispatched (logged after its
		// one-millisecond dispatch) before the next one started: the log
		// alternates for it.
		var log7 []string
		for _, op := range st.log() {
			if strings.HasPrefix(op, "dispatch 7 ") {
				log7 = append(log7, strings.TrimPrefix(op, "dispatch 7 "))
			}
		}
		for i, s := range log7 {
			if want := []string{"active", "resolved"}[i%2]; s != want {
				t.Fatalf("ifIndex 7 dispatched %v; want alternating active, resolved", log7)
			}
		}
		if n := len(m.Instances()); n != 6 {
			t.Errorf("%d instances; want ifIndex 100 and 10..14 firing, 7 resolved", n)
		}
	})
}

// TestCrashReplaysJournaledTransitions: a crash while a batch is being
// dispatched, or after it was but before its sent marks are written, loses
// nothing: the next start dispatches the same events again (same instance
// and timestamp, so the same webhook-id), and folds the journal into the
// instances' own keys.
func TestCrashReplaysJournaledTransitions(t *testing.T) {
	for _, at := range []string{"during dispatch", "after dispatch"} {
		t.Run(at, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				st := newOpStore()
				st.hold = make(chan struct{})
				d := &slowDispatcher{st: st}
				var crashed map[string][]byte
				var once sync.Once
				if at == "during dispatch" {
					// The state a crash leaves as the burst's first
					// dispatch starts.
					d.onDispatch = func(ev event.Event) {
						if ev.Key != "1" {
							once.Do(func() { crashed, _ = st.All(ctx) })
						}
					}
				}
				m, _ := runManager(t, ctx, st, d, nil)
				m.Observe(ctx, trapObs("IF-MIB::linkDown", 1))
				synctest.Wait() // alert 1's own-key write is held
				for i := 2; i <= 10; i++ {
					m.Observe(ctx, trapObs("IF-MIB::linkDown", i))
				}
				synctest.Wait()
				close(st.hold)
				settle()
				if at == "after dispatch" {
					// As if no write after the journal's had landed.
					crashed = map[string][]byte{}
					for _, op := range st.log() {
						if k, v, ok := strings.Cut(strings.TrimPrefix(op, "put "), "="); ok && strings.HasPrefix(k, journalPrefix) {
							crashed[k] = []byte(v)
						}
					}
				}
				burst := map[string]string{} // ifIndex → webhook-id
				for _, ev := range d.snapshot() {
					if ev.Key != "1" {
						burst[ev.Key] = ev.NotificationID("hook")
					}
				}
				if len(burst) != 9 || len(crashed) == 0 {
					t.Fatalf("%d burst events dispatched, %d entries at the crash; want 9 and some", len(burst), len(crashed))
				}

				st2 := newOpStore()
				st2.data = crashed
				d2 := &slowDispatcher{st: st2}
				m2, _ := runManager(t, ctx, st2, d2, nil)
				settle()
				replayed := map[string]string{}
				for _, ev := range d2.snapshot() {
					replayed[ev.Key] = ev.NotificationID("hook")
				}
				for key, id := range burst {
					if replayed[key] != id {
						t.Errorf("ifIndex %s: replayed as %q; want webhook-id %s again", key, replayed[key], id)
					}
				}
				if n := len(m2.Instances()); n < 9 {
					t.Errorf("%d instances after the restart; want every journaled alert back", n)
				}
				data, _ := st2.All(ctx)
				for k, v := range data {
					var r record
					if strings.HasPrefix(k, journalPrefix) || json.Unmarshal(v, &r) != nil || r.Unsent != nil {
						t.Errorf("after the replay the store holds %s = %.60s; want only sent instances", k, v)
					}
				}
			})
		})
	}
}

// TestFailedBatchStaysUnsent: when the outbox refuses a journaled batch,
// every transition stays unsent on its own key once the journal entry is
// retired, and the next start dispatches them.
func TestFailedBatchStaysUnsent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		d := &slowDispatcher{st: st, gate: make(chan struct{}), fail: errors.New("outbox unavailable")}
		m, _ := runManager(t, ctx, st, d, nil)
		m.Observe(ctx, trapObs("IF-MIB::linkDown", 1))
		synctest.Wait()
		for i := 2; i <= 6; i++ {
			m.Observe(ctx, trapObs("IF-MIB::linkDown", i))
		}
		synctest.Wait()
		close(d.gate)
		settle()

		data, _ := st.All(ctx)
		if len(data) != 6 {
			t.Fatalf("%d store entries %q; want the 6 instances, journal retired", len(data), brief(st.log()))
		}
		for k, v := range data {
			var r record
			if err := json.Unmarshal(v, &r); err != nil || r.Unsent == nil {
				t.Errorf("stored %s = %.60s; want the transition kept unsent", k, v)
			}
		}
		d2 := &slowDispatcher{st: newOpStore()}
		runManager(t, ctx, st, d2, nil)
		settle()
		if n := len(d2.snapshot()); n != 6 {
			t.Errorf("%d dispatched after the restart; want the 6 unsent", n)
		}
	})
}

// TestStopAppliesWhatWasQueued: observations accepted before Run is
// stopped are applied and dispatched before Run returns, and their state
// written.
func TestStopAppliesWhatWasQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		st := newOpStore()
		d := &slowDispatcher{st: st, gate: make(chan struct{})}
		m, done := runManager(t, ctx, st, d, nil)
		for i := range 20 {
			m.Observe(ctx, trapObs("IF-MIB::linkDown", i+1))
		}
		synctest.Wait()
		cancel()
		close(d.gate)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := len(d.snapshot()); n != 20 {
			t.Errorf("%d dispatched when Run returned; want all 20 queued", n)
		}
		data, _ := st.All(context.Background())
		if len(data) != 20 {
			t.Errorf("%d store entries when Run returned; want the 20 instances, journal retired", len(data))
		}
		// After Run, Observe applies at once.
		if err := m.Observe(context.Background(), trapObs("IF-MIB::linkUp", 1)); err != nil {
			t.Fatal(err)
		}
		if evs := d.snapshot(); evs[len(evs)-1].Status != event.StatusResolved {
			t.Errorf("last event %+v; want the resolve, applied by Observe itself", evs[len(evs)-1])
		}
	})
}

// TestMassOutageWakesDeadlineScanOnce: a thousand devices going pending
// (a core switch down) and observed again and again must not rescan every
// deadline per observation: only an earlier deadline wakes the scan. The
// alerts still fire when their `for` elapses.
func TestMassOutageWakesDeadlineScanOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		d := &slowDispatcher{st: st}
		m, err := New(ctx, st, d, Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		const devices = 1000
		var devs []inventory.Device
		for i := range devices {
			devs = append(devs, inventory.Device{Name: fmt.Sprintf("access-%d", i), Address: fmt.Sprintf("198.18.%d.%d", i/250, i%250+1)})
		}
		inv := inventory.Of(devs...)
		if err := m.SetRules(ctx, mustRules(t, icmpRule), inv); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		synctest.Wait()
		before := m.ticks.Load()

		down := map[string]any{"up": false, "loss": 100.0, "rtt_ms": 0.0, "sent": 1, "recv": 0}
		for round := range 3 { // three probe rounds inside the 20s `for`
			for _, dev := range inv.Devices() {
				if err := m.Observe(ctx, observation.Observation{Source: observation.ICMP, Device: dev, Time: time.Now(), Vars: down}); err != nil {
					t.Fatal(err)
				}
				synctest.Wait() // one at a time, as rounds spread over the interval arrive
			}
			if round < 2 {
				time.Sleep(5 * time.Second)
			}
		}
		if n := m.ticks.Load() - before; n > 5 {
			t.Errorf("%d deadline scans for %d pending devices observed 3 times; want a handful", n, devices)
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if got := len(d.snapshot()); got != devices {
			t.Fatalf("%d alerts fired after `for`, want %d", got, devices)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnsentRetriedWhileRunning: transitions the outbox refused (a store
// outage) are handed over again while running, without waiting for a
// restart or reload, and only once it takes them.
func TestUnsentRetriedWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		d := &slowDispatcher{st: st, fail: errors.New("outbox unavailable")}
		m, _ := runManager(t, ctx, st, d, nil)
		for i := 1; i <= 3; i++ {
			m.Observe(ctx, trapObs("IF-MIB::linkDown", i))
		}
		settle()
		attempts := func() int {
			st.mu.Lock()
			defer st.mu.Unlock()
			n := 0
			for _, op := range st.ops {
				if strings.HasPrefix(op, "dispatch ") {
					n++
				}
			}
			return n
		}
		tries := attempts()
		if tries != 3 {
			t.Fatalf("%d dispatch attempts, want 3", tries)
		}
		time.Sleep(unsentRetryInterval / 2)
		synctest.Wait()
		if n := attempts(); n != tries {
			t.Fatalf("%d dispatch attempts before the retry interval, want %d", n, tries)
		}

		d.mu.Lock()
		d.fail = nil // the outage ends
		d.mu.Unlock()
		time.Sleep(unsentRetryInterval)
		synctest.Wait()
		var delivered []string
		for _, ev := range d.snapshot() {
			delivered = append(delivered, ev.Key)
		}
		slices.Sort(delivered)
		if !slices.Equal(delivered, []string{"1", "2", "3"}) {
			t.Fatalf("after the outage dispatched keys %v; want 1, 2 and 3 once each", delivered)
		}
		for _, in := range m.Instances() {
			if in.Unsent != nil {
				t.Errorf("instance %s still unsent", in.Key)
			}
		}
	})
}

// TestRefusedOneShotEventRetried: a kind: event notification the outbox
// refused has no stored instance to retry from; it is kept and handed over
// again, with the same instance id (so the same webhook-id).
func TestRefusedOneShotEventRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		var offeredMu sync.Mutex
		var offered []string // instance ids of every attempt
		d := &slowDispatcher{st: st, fail: errors.New("outbox unavailable"), onDispatch: func(ev event.Event) {
			offeredMu.Lock()
			offered = append(offered, ev.InstanceID)
			offeredMu.Unlock()
		}}
		m, _ := runManager(t, ctx, st, d, nil)
		restart := mustRules(t, `
rules:
  - event_id: NETWORK-DEVICES-3-102
    name: Device restarted
    source: trap
    kind: event
    when: trap == "SNMPv2-MIB::coldStart"
    severity: 3
    description: "restarted"
`)
		if err := m.SetRules(ctx, restart, swOnly); err != nil {
			t.Fatal(err)
		}
		m.Observe(ctx, trapObs("SNMPv2-MIB::coldStart", 0))
		settle()
		if n := len(d.snapshot()); n != 0 {
			t.Fatalf("%d events taken while the outbox refuses", n)
		}
		offeredMu.Lock()
		tries := slices.Clone(offered)
		offeredMu.Unlock()
		if len(tries) != 1 {
			t.Fatalf("offered %d times before the retry, want once", len(tries))
		}

		d.mu.Lock()
		d.fail = nil
		d.mu.Unlock()
		time.Sleep(unsentRetryInterval)
		synctest.Wait()
		got := d.snapshot()
		if len(got) != 1 || got[0].EventID != "NETWORK-DEVICES-3-102" || got[0].InstanceID != tries[0] {
			t.Fatalf("after the outage got %+v; want the restart event once, instance %s as first offered", got, tries[0])
		}
		time.Sleep(2 * unsentRetryInterval)
		synctest.Wait()
		if n := len(d.snapshot()); n != 1 {
			t.Fatalf("%d deliveries; a delivered event must not be retried again", n)
		}
	})
}

// TestStoreOutageKeepsOrderAndRetriesAtRecovery: while the store cannot
// write, an alert raised and cleared is held in memory, active then
// resolve; the resolve waits behind the active (a receiver is never told
// of a resolve for an alert it never saw), and both go, in order, as soon
// as the store says it writes again rather than at the periodic retry.
func TestStoreOutageKeepsOrderAndRetriesAtRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		st.down = true
		d := &slowDispatcher{st: st}
		reg := prometheus.NewRegistry()
		m, done := runManager(t, ctx, st, d, reg)
		m.Observe(ctx, trapObs("IF-MIB::linkDown", 7))
		settle()
		m.Observe(ctx, trapObs("IF-MIB::linkUp", 7))
		settle()
		if n := len(d.snapshot()); n != 0 {
			t.Fatalf("%d dispatched while the store refuses writes", n)
		}
		unsent, unstored := m.Unsent()
		if unsent != 1 || unstored != 1 {
			t.Fatalf("Unsent() = %d, %d; want the one alert, not stored", unsent, unstored)
		}
		if got := promtest.Value(t, reg, "nocbridge_alert_transitions_unsent", "stored", "false"); got != 1 {
			t.Fatalf("nocbridge_alert_transitions_unsent{stored=false} = %v, want 1", got)
		}
		ins := m.Instances()
		if len(ins) != 1 || ins[0].Unsent == nil || ins[0].Unsent.Status != event.StatusActive || ins[0].ResolveAfter == nil {
			t.Fatalf("held instance %+v; want the active unsent and the resolve after it", ins)
		}

		st.mu.Lock()
		st.down = false
		st.mu.Unlock()
		time.Sleep(time.Second) // well inside the periodic retry's 10 s
		m.RetryUnsent()
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		var got []string
		for _, ev := range d.snapshot() {
			got = append(got, ev.Key+" "+string(ev.Status))
		}
		if want := []string{"7 active", "7 resolved"}; !slices.Equal(got, want) {
			t.Fatalf("dispatched %v after recovery; want %v", got, want)
		}
		if n := len(m.Instances()); n != 0 {
			t.Fatalf("%d instances left after the resolve went", n)
		}
		if unsent, _ := m.Unsent(); unsent != 0 {
			t.Fatalf("%d still unsent", unsent)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestStopCountsWhatTheStoreNeverTook: stopping while the store cannot
// write loses what is only in memory; the log says how much.
func TestStopCountsWhatTheStoreNeverTook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		st := newOpStore()
		st.down = true
		var logs logtest.Logs
		m, done := runManagerWith(t, ctx, st, &slowDispatcher{st: st}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		m.Observe(ctx, trapObs("IF-MIB::linkDown", 1))
		m.Observe(ctx, trapObs("IF-MIB::linkDown", 2))
		settle()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "level=ERROR msg=\"stopping with alert transitions that could not be stored") || !strings.Contains(logs.String(), "lost=2") {
			t.Fatalf("stop did not report the 2 lost transitions:\n%s", logs.String())
		}
	})
}
