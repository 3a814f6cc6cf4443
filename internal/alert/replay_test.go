package alert

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// seqTrap is trapObs as a cluster's leader gets it: with its bus sequence.
func seqTrap(name string, ifIndex int, seq uint64) observation.Observation {
	o := trapObs(name, ifIndex)
	o.Seq = seq
	return o
}

// TestReplayedTrapsAreNotAppliedTwice: a leader commits a linkDown and its
// linkUp and dies before the bus has their acknowledgements; the next
// leader gets both again. It must not raise and resolve the alert a second
// time (a new instance id, a second outage for the receiver); a later
// linkDown raises a new alert as ever. The resolved alert's tombstone goes
// after tombKeep. Alone (no sequence) a resolved alert leaves nothing.
func TestReplayedTrapsAreNotAppliedTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		k1 := instanceKey("NETWORK-INTERFACES-2-301", sw.Name, "1")
		k2 := instanceKey("NETWORK-INTERFACES-2-301", sw.Name, "2")

		termA, endA := context.WithCancel(ctx)
		dA := &slowDispatcher{st: st}
		a, doneA := runManager(t, termA, st, dA, nil)
		a.Observe(termA, seqTrap("IF-MIB::linkDown", 1, 10))
		a.Observe(termA, seqTrap("IF-MIB::linkUp", 1, 11))
		a.Observe(termA, seqTrap("IF-MIB::linkDown", 2, 12)) // still firing at the kill
		settle()
		endA()
		if err := <-doneA; err != nil {
			t.Fatal(err)
		}
		if evs := dA.snapshot(); len(evs) != 3 {
			t.Fatalf("the first leader dispatched %v; want ifIndex 1 raised and resolved, ifIndex 2 raised", evs)
		}
		data, _ := st.All(ctx)
		var r record
		if err := json.Unmarshal(data[k1], &r); err != nil || r.ResolvedAt.IsZero() || r.BusSeq != 11 {
			t.Fatalf("ifIndex 1's stored record %s (%v); want a tombstone at bus sequence 11", data[k1], err)
		}

		dB := &slowDispatcher{st: st}
		b, doneB := runManager(t, ctx, st, dB, nil)
		for _, o := range []observation.Observation{
			seqTrap("IF-MIB::linkDown", 1, 10), seqTrap("IF-MIB::linkUp", 1, 11), seqTrap("IF-MIB::linkDown", 2, 12),
		} {
			b.Observe(ctx, o)
		}
		settle()
		if evs := dB.snapshot(); len(evs) != 0 {
			t.Fatalf("the new leader dispatched %v for traps the first had applied; want nothing", evs)
		}
		if n := b.Replayed(); n != 3 {
			t.Errorf("%d replayed traps counted; want 3", n)
		}
		b.Observe(ctx, seqTrap("IF-MIB::linkUp", 2, 13))
		b.Observe(ctx, seqTrap("IF-MIB::linkDown", 1, 14))
		settle()
		evs := dB.snapshot()
		byKey := map[string]event.Event{}
		for _, ev := range evs {
			byKey[ev.Key] = ev
		}
		if len(evs) != 2 || byKey["2"].Status != event.StatusResolved || byKey["1"].Status != event.StatusActive {
			t.Fatalf("the new leader dispatched %v; want ifIndex 2 resolved and ifIndex 1 raised anew", evs)
		}
		if first := dA.snapshot()[0]; byKey["1"].InstanceID == first.InstanceID {
			t.Errorf("ifIndex 1's new outage has the first one's instance id %s", first.InstanceID)
		}

		// Past tombKeep, the tombstone of ifIndex 2 goes; ifIndex 1's key
		// holds its new alert and stays.
		time.Sleep(tombKeep + time.Minute)
		b.Tick(ctx)
		settle()
		data, _ = st.All(ctx)
		if _, ok := data[k2]; ok {
			t.Errorf("ifIndex 2's tombstone still stored after %v: %s", tombKeep, data[k2])
		}
		var r1 record
		if err := json.Unmarshal(data[k1], &r1); err != nil || !r1.ResolvedAt.IsZero() || r1.State != StateFiring {
			t.Errorf("ifIndex 1's record %s (%v); want its new firing alert", data[k1], err)
		}
		cancel()
		<-doneB

		// Alone: no sequence, no tombstone.
		ctx2, cancel2 := context.WithCancel(t.Context())
		defer cancel2()
		st2 := newOpStore()
		c, doneC := runManagerWith(t, ctx2, st2, &slowDispatcher{st: st2}, Options{Logger: slog.New(slog.DiscardHandler)})
		c.Observe(ctx2, trapObs("IF-MIB::linkDown", 1))
		c.Observe(ctx2, trapObs("IF-MIB::linkUp", 1))
		settle()
		if data, _ := st2.All(ctx2); len(data) != 0 {
			t.Errorf("alone, a resolved alert left %d records; want none", len(data))
		}
		cancel2()
		<-doneC
	})
}
