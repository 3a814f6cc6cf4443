package alert

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/observation"
)

// acks records which observations were acknowledged, and what the store
// held for them at that moment.
type acks struct {
	mu     sync.Mutex
	got    []string
	stored []int // instances in the store when each ack came
}

func (a *acks) obs(o observation.Observation, name string, st Store) observation.Observation {
	o.Ack = func() {
		data, _ := st.All(context.Background())
		a.mu.Lock()
		defer a.mu.Unlock()
		a.got = append(a.got, name)
		a.stored = append(a.stored, len(data))
	}
	return o
}

func (a *acks) list() ([]string, []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...), append([]int(nil), a.stored...)
}

// TestAckOnlyAfterCommit: a cluster's leader acknowledges the observation
// bus through Observation.Ack, so an ack must mean the transition is in
// the store (or handed on); one that changed nothing is acknowledged too;
// one whose commit failed is not, so the bus delivers it again.
func TestAckOnlyAfterCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		d := &slowDispatcher{st: st}
		m, _ := runManager(t, ctx, st, d, nil)
		var a acks
		m.Observe(ctx, a.obs(trapObs("IF-MIB::linkDown", 1), "down1", st))
		m.Observe(ctx, a.obs(trapObs("IF-MIB::coldStart", 0), "nothing", st)) // no rule matches
		m.Observe(ctx, a.obs(ping(100), "other source", st))
		settle()
		got, stored := a.list()
		if len(got) != 3 || got[0] != "down1" {
			t.Fatalf("acknowledged %v; want down1, nothing and other source", got)
		}
		if stored[0] != 1 {
			t.Errorf("down1 acknowledged while the store held %d instances; want its instance stored first", stored[0])
		}

		d.mu.Lock()
		d.fail = errors.New("outbox unavailable")
		d.mu.Unlock()
		m.Observe(ctx, a.obs(trapObs("IF-MIB::linkDown", 2), "down2", st))
		settle()
		if got, _ := a.list(); len(got) != 3 {
			t.Errorf("acknowledged %v after a failed commit; want down2 left unacknowledged", got)
		}
	})
}

// TestResyncTakesOverFromAnotherNode: two managers share one store, as a
// cluster's nodes share the replicated bucket. The first leads, fires an
// alert and stops (its lease lost); the second, built before any of that,
// resyncs, runs, and resolves the alert to the destination it fired to.
// A transition the first stored but could not hand on is sent by the
// second.
func TestResyncTakesOverFromAnotherNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		dB := &slowDispatcher{st: st}
		b, err := New(ctx, st, dB, Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.SetRules(ctx, mustRules(t, linkRule), swOnly); err != nil {
			t.Fatal(err)
		}

		termA, endA := context.WithCancel(ctx)
		dA := &slowDispatcher{st: st}
		a, doneA := runManager(t, termA, st, dA, nil)
		a.Observe(termA, trapObs("IF-MIB::linkDown", 1))
		settle()
		dA.mu.Lock()
		dA.fail = errors.New("outbox unavailable")
		dA.mu.Unlock()
		a.Observe(termA, trapObs("IF-MIB::linkDown", 2)) // stored, not handed on
		settle()
		endA()
		if err := <-doneA; err != nil {
			t.Fatal(err)
		}
		if n := len(b.Instances()); n != 0 {
			t.Fatalf("the follower shows %d instances before Resync; want its own (none)", n)
		}

		if err := b.Resync(ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(b.Instances()); n != 2 {
			t.Fatalf("%d instances after Resync; want the 2 the leader stored", n)
		}
		settle()
		if evs := dB.snapshot(); len(evs) != 1 || evs[0].Key != "2" || evs[0].Status != event.StatusActive {
			t.Fatalf("the new leader dispatched %v; want the unsent active of ifIndex 2", evs)
		}
		go b.Run(ctx)
		synctest.Wait()
		b.Observe(ctx, trapObs("IF-MIB::linkUp", 1))
		settle()
		evs := dB.snapshot()
		if len(evs) != 2 || evs[1].Key != "1" || evs[1].Status != event.StatusResolved {
			t.Fatalf("after linkUp the new leader dispatched %v; want ifIndex 1 resolved (to the active's destination)", evs)
		}
		if err := b.Resync(ctx); err == nil {
			t.Error("Resync while Run runs was accepted")
		}
	})
}

// TestResyncTwiceRetriesWritesAgain: a node that led, stopped and leads
// again still retries a failed state write in its second term (the first
// term's stop had told the writer to give up retrying).
func TestResyncTwiceRetriesWritesAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		st := newOpStore()
		d := &slowDispatcher{st: st}
		term1, end1 := context.WithCancel(ctx)
		m, done := runManager(t, term1, st, d, nil)
		end1()
		<-done
		if err := m.Resync(ctx); err != nil {
			t.Fatal(err)
		}
		go m.Run(ctx)
		synctest.Wait()
		m.Observe(ctx, trapObs("IF-MIB::linkDown", 1))
		settle()
		m.Observe(ctx, trapObs("IF-MIB::linkUp", 1)) // resolved: its key is deleted behind
		synctest.Wait()
		k := instanceKey("NETWORK-INTERFACES-2-301", sw.Name, "1")
		st.mu.Lock()
		st.fails[k] = 2
		st.mu.Unlock()
		settle()
		settle()
		data, _ := st.All(ctx)
		if _, left := data[k]; left {
			t.Errorf("store ops %q: the resolved instance's deletion was not retried in the second term", brief(st.log()))
		}
	})
}
