package outbox

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
)

// TestResyncTakesOverAnotherNodesQueue: two outboxes on one store, as a
// cluster's nodes share the replicated log. The leader delivers one
// notification, retries another and dead-letters a third, then stops (its
// lease lost). The standby, opened before any of that, resyncs and runs:
// it delivers the retrying one with the same webhook-id, then its resolve,
// shows the dead letter, and never sends what the leader delivered.
func TestResyncTakesOverAnotherNodesQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	standby, err := New(ctx, f.st, Options{Logger: slog.New(slog.DiscardHandler), Registerer: reg, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}

	delivered := ev("inst-1", event.StatusActive, 0)
	retrying := ev("inst-2", event.StatusActive, 0)
	resolved := ev("inst-2", event.StatusResolved, time.Minute)
	rejected := ev("inst-3", event.StatusActive, 0)
	n := f.fake(func(nt notify.Notification, _ int) error {
		switch nt.Event.InstanceID {
		case "inst-1":
			return nil
		case "inst-3":
			return notify.StatusError(400, []byte("bad"), 0)
		}
		return errUnavailable
	})
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	f.enqueue(Item{Destination: "hook", Event: delivered}, Item{Destination: "hook", Event: retrying}, Item{Destination: "hook", Event: rejected})
	f.run()
	f.advanceUntil("the leader's attempts", func() bool {
		return len(n.callsFor(delivered.NotificationID("hook"))) == 1 && len(n.callsFor(retrying.NotificationID("hook"))) >= 2 &&
			len(f.ob.DeadLetterCounts()) == 1
	})
	f.enqueue(Item{Destination: "hook", Event: resolved})
	f.stopRun()

	if p := standby.Pending(); p["hook"] != 0 {
		t.Fatalf("the standby shows %v pending before Resync; want its own picture (none)", p)
	}
	if err := standby.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if dl := standby.DeadLetterCounts(); dl["hook"] != 1 {
		t.Errorf("dead letters after Resync %v; want the leader's one", dl)
	}
	ok := f.fake(nil)
	standby.SetDestinations([]Destination{dest("hook", ok)})
	if p := standby.Pending(); p["hook"] != 2 {
		t.Fatalf("pending after Resync %v; want the retrying active and its resolve", p)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- standby.Run(runCtx) }()
	waitFor(t, 10*time.Second, "the standby's deliveries", func() bool { return len(ok.got()) == 2 })
	stop()
	f.clock.Advance(stopGrace)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	calls := ok.got()
	if calls[0].ID != retrying.NotificationID("hook") || calls[1].ID != resolved.NotificationID("hook") {
		t.Errorf("the standby delivered %+v; want the retrying active (same webhook-id) then its resolve, nothing the leader delivered", calls)
	}
	// The alert manager hands over again what its stored state still
	// calls unsent: what either node delivered is not sent again (while
	// the log still holds it; it is trimmed once nothing older is pending).
	if err := standby.Enqueue(ctx, Item{Destination: "hook", Event: delivered}, Item{Destination: "hook", Event: retrying}); err != nil {
		t.Fatal(err)
	}
	if p := standby.Pending(); p["hook"] != 0 {
		t.Errorf("pending after re-enqueueing delivered notifications %v; want none", p)
	}
	// A dead-lettered one may be enqueued again: that is its retry.
	if err := standby.Enqueue(ctx, Item{Destination: "hook", Event: rejected}); err != nil {
		t.Fatal(err)
	}
	if p := standby.Pending(); p["hook"] != 1 {
		t.Errorf("pending after re-enqueueing a dead letter %v; want it queued", p)
	}
	if got := promtest.Value(t, reg, "nocbridge_notifications_total", "destination", "hook", "result", "already_delivered"); got != 2 {
		t.Errorf("nocbridge_notifications_total{result=\"already_delivered\"} = %v, want 2", got)
	}
	// Not hidden: the destination's attempts (/api/v1/deliveries) show
	// both, newest first, with their webhook-ids.
	var skipped []string
	for _, a := range standby.Recent("hook") {
		if a.Result == ResultAlreadyDelivered {
			skipped = append(skipped, a.ID)
		}
	}
	if want := []string{retrying.NotificationID("hook"), delivered.NotificationID("hook")}; !slices.Equal(skipped, want) {
		t.Errorf("attempts shown as already delivered %v; want %v", skipped, want)
	}
	if err := standby.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if p := standby.Pending(); p["hook"] != 1 {
		t.Errorf("pending after a second Resync %v; want the re-enqueued dead letter alone", p)
	}
}
