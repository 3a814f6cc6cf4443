package snmp

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/prometheus/client_golang/prometheus"
)

// fleet is a set of fake devices, one agent each.
type fleet struct {
	mu     sync.Mutex
	agents map[string]*FakeAgent
}

func newFleet(n int, mk func() *FakeAgent) (*fleet, []Target) {
	f := &fleet{agents: map[string]*FakeAgent{}}
	var ts []Target
	for i := range n {
		name := fmt.Sprintf("sw%03d", i)
		f.agents[name] = mk()
		ts = append(ts, Target{Device: name, Address: fmt.Sprintf("192.0.2.%d", i), Profile: config.SNMPProfile{Version: "2c"}, Interval: 10 * time.Second})
	}
	return f, ts
}

func (f *fleet) agent(device string) *FakeAgent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agents[device]
}

func (f *fleet) client(t Target) (Client, error) { return f.agent(t.Device).Client(t) }

// recorder collects results; report runs on Run's goroutine.
type recorder struct {
	mu      sync.Mutex
	results []Result
}

func (r *recorder) report(res Result) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
}

func (r *recorder) of(device string) []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Result
	for _, res := range r.results {
		if res.Device == device {
			out = append(out, res)
		}
	}
	return out
}

// start runs e in the bubble; the returned stop cancels it and checks Run.
func start(t *testing.T, e *Engine) (*recorder, func()) {
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.run(ctx, rec.report) }()
	return rec, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shared := ciscoSwitch()
		shared.SetLatency(40 * time.Millisecond) // discovery: 4 requests, 160ms a poll
		f, ts := newFleet(200, func() *FakeAgent { return shared })
		reg := prometheus.NewRegistry()
		e := New(Options{Concurrency: 4, Logger: discard(), Registerer: reg, Client: f.client})
		e.SetTargets(ts)
		rec, stop := start(t, e)
		time.Sleep(10*time.Second + time.Second) // one round and a little
		stop()

		if shared.MaxInFlight() != 4 {
			t.Errorf("max polls in flight = %d, want the concurrency, 4", shared.MaxInFlight())
		}
		for _, tg := range ts {
			if rs := rec.of(tg.Device); len(rs) == 0 || rs[0].Err != nil {
				t.Fatalf("%s: results %+v, want a successful poll in the first round", tg.Device, rs)
			}
		}
		if shared.Open() != 0 {
			t.Errorf("%d clients still open after Run returned", shared.Open())
		}
		if n := histogramCount(t, reg, "nocbridge_snmp_poll_duration_seconds", "ok"); n != uint64(len(rec.results)) {
			t.Errorf("poll duration histogram counted %d ok polls, want %d", n, len(rec.results))
		}
	})
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name, result string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func TestRoundsSpreadOverInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, ts := newFleet(100, ciscoSwitch)
		e := New(Options{Logger: discard(), Client: f.client})
		e.SetTargets(ts)
		t0 := time.Now()
		rec, stop := start(t, e)
		time.Sleep(25 * time.Second)
		stop()

		const interval = 10 * time.Second
		perSecond := map[int]int{}
		for _, tg := range ts {
			rs := rec.of(tg.Device)
			if len(rs) < 2 {
				t.Fatalf("%s: %d polls in 25s, want 2 or 3", tg.Device, len(rs))
			}
			first := rs[0].Time.Sub(t0)
			if first < 0 || first >= interval {
				t.Errorf("%s: first poll at %v, want within the first interval", tg.Device, first)
			}
			perSecond[int(first/time.Second)]++
			for i := 1; i < len(rs); i++ {
				if d := rs[i].Time.Sub(rs[i-1].Time); d != interval {
					t.Errorf("%s: polls %v apart, want exactly the interval", tg.Device, d)
				}
			}
		}
		// 100 devices over 10s: about 10 a second, never one burst.
		if len(perSecond) < 9 {
			t.Errorf("first round used %d distinct seconds of the interval (%v), want the whole interval", len(perSecond), perSecond)
		}
		for s, n := range perSecond {
			if n > 25 {
				t.Errorf("%d polls started in second %d of the round, want a spread (about 10)", n, s)
			}
		}
	})
}

func TestSlowDeviceNeverOverlaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, ts := newFleet(1, ciscoSwitch)
		f.agent(ts[0].Device).SetLatency(25 * time.Second) // longer than the interval
		reg := prometheus.NewRegistry()
		e := New(Options{Logger: discard(), Registerer: reg, Client: f.client})
		e.SetTargets(ts)
		rec, stop := start(t, e)
		time.Sleep(60 * time.Second)
		stop()

		a := f.agent(ts[0].Device)
		if a.MaxInFlight() != 1 {
			t.Errorf("max requests in flight to the slow device = %d, want 1", a.MaxInFlight())
		}
		rs := rec.of(ts[0].Device)
		if len(rs) == 0 || len(rs) > 6 {
			t.Fatalf("%d results in 60s at a 10s interval", len(rs))
		}
		for _, r := range rs {
			if r.Reason != ReasonTimeout || r.Vars != nil {
				t.Errorf("result %+v, want a timeout without vars (a poll never outlasts its interval)", r)
			}
		}
	})
}

func TestSetTargetsWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, ts := newFleet(3, ciscoSwitch)
		a, b, c := ts[0], ts[1], ts[2]
		e := New(Options{Logger: discard(), Client: f.client})
		e.SetTargets([]Target{a, b})
		rec, stop := start(t, e)
		time.Sleep(25 * time.Second)
		_, walksBefore, _ := f.agent(b.Device).Requests()

		changedAt := time.Now()
		e.SetTargets([]Target{b, c})
		synctest.Wait()
		if open := f.agent(a.Device).Open(); open != 0 {
			t.Errorf("removed device still has %d open clients", open)
		}
		time.Sleep(25 * time.Second)
		stop()

		for _, r := range rec.of(a.Device) {
			if r.Time.After(changedAt) {
				t.Errorf("removed device %s polled at %v, after its removal", a.Device, r.Time)
			}
		}
		if len(rec.of(c.Device)) < 2 {
			t.Errorf("added device %s polled %d times in 25s", c.Device, len(rec.of(c.Device)))
		}
		bs := rec.of(b.Device)
		for i := 1; i < len(bs); i++ {
			if d := bs[i].Time.Sub(bs[i-1].Time); d != 10*time.Second {
				t.Errorf("unchanged device %s: polls %v apart across SetTargets, want its schedule kept", b.Device, d)
			}
		}
		if _, walks, _ := f.agent(b.Device).Requests(); walks != walksBefore {
			t.Errorf("unchanged device %s walked again (%d → %d walks): what was learned was lost", b.Device, walksBefore, walks)
		}
		for name, ag := range f.agents {
			if ag.Open() != 0 {
				t.Errorf("%s: %d clients open after Run returned", name, ag.Open())
			}
		}
	})
}

func TestDuplicateTargetsPolledOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, ts := newFleet(1, ciscoSwitch)
		dup := ts[0]
		dup.Address = "192.0.2.200"
		e := New(Options{Logger: discard(), Client: f.client})
		e.SetTargets([]Target{ts[0], dup})
		rec, stop := start(t, e)
		time.Sleep(15 * time.Second)
		stop()
		if n := len(rec.of(ts[0].Device)); n < 1 || n > 2 {
			t.Fatalf("%d results in 15s for a device listed twice, want one per interval", n)
		}
	})
}

func TestRunTwiceIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(Options{Logger: discard(), Client: NewFakeAgent().Client})
		_, stop := start(t, e)
		synctest.Wait()
		if err := e.run(context.Background(), func(Result) {}); err == nil {
			t.Error("a second concurrent Run returned nil")
		}
		stop()
	})
}

// Run emits each poll as an observation with the inventory's record of the
// device; a reload that renews the record keeps the poller and what it
// learned, and the next polls carry the new record.
func TestRunEmitsObservationsWithTheInventoryRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		agent := ciscoSwitch()
		settings := &inventory.SNMP{Profile: config.SNMPProfile{Version: "2c", Community: "public"}, Interval: 10 * time.Second, Timeout: time.Second}
		first := inventory.Of(
			inventory.Device{Name: "sw1", Address: "192.0.2.1", Site: "HQ", SNMP: settings},
			inventory.Device{Name: "pinged-only", Address: "192.0.2.2"},
		)
		e := New(Options{Logger: discard(), Client: func(t Target) (Client, error) {
			if t.Device != "sw1" {
				return nil, fmt.Errorf("polled %s, which has no SNMP settings", t.Device)
			}
			return agent.Client(t)
		}})
		e.SetTargets(Targets(first))
		var mu sync.Mutex
		var got []observation.Observation
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- e.Run(ctx, func(o observation.Observation) {
				mu.Lock()
				got = append(got, o)
				mu.Unlock()
			})
		}()
		time.Sleep(11 * time.Second)
		_, walksBefore, _ := agent.Requests()
		second := inventory.Of(inventory.Device{Name: "sw1", Address: "192.0.2.1", Site: "DC", SNMP: settings})
		e.SetTargets(Targets(second))
		time.Sleep(20 * time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 {
			t.Fatalf("%d observations, want one per poll (3)", len(got))
		}
		if _, walks, _ := agent.Requests(); walks != walksBefore {
			t.Errorf("walked again after the reload (%d → %d walks): the poller restarted, losing what it learned", walksBefore, walks)
		}
		for i, o := range got {
			want, _ := first.Device("sw1")
			if i > 0 {
				want, _ = second.Device("sw1")
			}
			if o.Source != observation.SNMP || o.Device != want || o.Err != nil || o.Vars[VarCPU] == nil {
				t.Errorf("observation %d: source %s device %+v err %v vars %v; want snmp with cpu from %+v", i, o.Source, o.Device, o.Err, o.Vars, want)
			}
			if err := o.CheckVars(); err != nil {
				t.Error(err)
			}
		}
	})
}
