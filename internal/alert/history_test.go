package alert

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/history/historytest"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// TestHistoryTransitions: every transition reaches history under the
// instance id its notifications carry, pending included (chosen then), at
// the transition's time; a pending that never fires says so.
func TestHistoryTransitions(t *testing.T) {
	const eventRule = `
  - event_id: NETWORK-DEVICES-3-102
    name: Device restarted
    source: trap
    kind: event
    when: trap == "SNMPv2-MIB::coldStart"
    severity: 3
    description: restarted
`
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		hist := &historytest.Recorder{}
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{}
		m, err := New(ctx, st, rec, Options{History: hist})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetRules(ctx, mustRules(t, icmpRule+eventRule), swOnly); err != nil {
			t.Fatal(err)
		}
		go m.Run(ctx)
		t0 := time.Now()

		// A pending that clears before `for`.
		m.Observe(ctx, ping(100))
		time.Sleep(5 * time.Second)
		m.Observe(ctx, ping(0))
		synctest.Wait()
		all := hist.All()
		if len(all) != 2 {
			t.Fatalf("pending then cleared: %d entries, want 2: %+v", len(all), all)
		}
		cleared := all[0].Event.InstanceID
		if got := hist.Kinds(cleared); !slices.Equal(got, []history.Kind{history.KindPending, history.KindNotSent}) {
			t.Errorf("cleared pending kinds = %v", got)
		}
		if d := hist.Of(cleared)[1].Detail; !strings.Contains(d, "never fired") {
			t.Errorf("cleared pending detail = %q", d)
		}

		// Pending, firing after for, resolved after clear_for.
		time.Sleep(time.Second)
		m.Observe(ctx, ping(100))
		time.Sleep(20 * time.Second)
		synctest.Wait()
		m.Observe(ctx, ping(0))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		evs := rec.snapshot()
		if len(evs) != 2 {
			t.Fatalf("%d notifications, want active and resolve", len(evs))
		}
		id := evs[0].InstanceID
		if id == cleared {
			t.Fatal("a new pending reuses the cleared one's instance id")
		}
		want := []history.Entry{
			{At: t0.Add(6 * time.Second), Kind: history.KindPending, Detail: "condition holds; fires after for: 20s"},
			{At: t0.Add(26 * time.Second).UTC(), Kind: history.KindActive, Status: event.StatusActive, Detail: "resolve owed to hook"},
			{At: t0.Add(36 * time.Second).UTC(), Kind: history.KindResolved, Status: event.StatusResolved, Detail: "to hook"},
		}
		got := hist.Of(id)
		if len(got) != len(want) {
			t.Fatalf("entries of %s = %+v, want %+v", id, got, want)
		}
		for i := range want {
			if !got[i].At.Equal(want[i].At) || got[i].Kind != want[i].Kind || got[i].Status != want[i].Status || got[i].Detail != want[i].Detail {
				t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
			}
		}

		// A one-shot event.
		m.Observe(ctx, observation.Observation{Source: observation.Trap, Device: sw, Time: time.Now(),
			Vars: map[string]any{"trap": "SNMPv2-MIB::coldStart", "trap_oid": "", "vars": map[string]any{}, "source": "192.0.2.1", "version": "2c"}})
		synctest.Wait()
		evs = rec.snapshot()
		one := evs[len(evs)-1]
		if got := hist.Kinds(one.InstanceID); !slices.Equal(got, []history.Kind{history.KindEvent}) || one.Kind != event.KindEvent {
			t.Errorf("one-shot event %s: kinds %v", one.InstanceID, got)
		}
	})
}

// TestHistoryRefusedTransitionOnce: a transition the dispatcher refuses
// reaches history once it is handed on, once.
func TestHistoryRefusedTransitionOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		hist := &historytest.Recorder{}
		st, rec := &memStore{data: map[string][]byte{}}, &recorder{fail: context.DeadlineExceeded}
		m, err := New(ctx, st, rec, Options{History: hist})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetRules(ctx, mustRules(t, icmpRule), swOnly); err != nil {
			t.Fatal(err)
		}
		go m.Run(ctx)
		m.Observe(ctx, ping(100))
		time.Sleep(21 * time.Second)
		synctest.Wait()
		id := hist.All()[0].Event.InstanceID
		if got := hist.Kinds(id); !slices.Equal(got, []history.Kind{history.KindPending}) {
			t.Fatalf("refused active in history: %v", got)
		}
		rec.mu.Lock()
		rec.fail = nil
		rec.mu.Unlock()
		time.Sleep(unsentRetryInterval + time.Second)
		synctest.Wait()
		if got := hist.Kinds(id); !slices.Equal(got, []history.Kind{history.KindPending, history.KindActive}) {
			t.Errorf("after the retry: %v", got)
		}
	})
}
