package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

func TestRetryUntilSuccessKeepsIDAndBacksOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(failFirst(2, errUnavailable))
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	e := ev("inst-1", event.StatusActive, 0)
	f.enqueue(Item{Destination: "hook", Event: e})
	f.run()

	id := e.NotificationID("hook")
	f.advanceUntil("delivery", func() bool { return f.ob.Pending()["hook"] == 0 })
	calls := n.got()
	if len(calls) != 3 {
		t.Fatalf("%d attempts, want 3 (2 failures, 1 success): %+v", len(calls), calls)
	}
	for i, c := range calls {
		if c.ID != id || c.Attempt != i+1 {
			t.Errorf("attempt %d: id %s attempt %d; want id %s attempt %d", i+1, c.ID, c.Attempt, id, i+1)
		}
		if i > 0 && c.At.Sub(calls[i-1].At) < 20*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous one; want at least retry.initial (20ms)", i+1, c.At.Sub(calls[i-1].At))
		}
	}

	recent := f.ob.Recent("hook")
	var results []string
	for _, a := range recent {
		results = append(results, a.Result)
		if a.ID != id || a.InstanceID != "inst-1" || a.Destination != "hook" || a.Status != event.StatusActive {
			t.Errorf("recent attempt %+v does not describe the notification", a)
		}
	}
	if got := strings.Join(results, ","); got != "delivered,retry,retry" {
		t.Errorf("Recent results %s; want delivered,retry,retry (newest first)", got)
	}
	if recent[1].Error != errUnavailable.Error() || recent[0].Attempt != 3 {
		t.Errorf("recent[1].Error %q recent[0].Attempt %d", recent[1].Error, recent[0].Attempt)
	}
	b, _ := json.Marshal(recent[0])
	for _, key := range []string{`"id":`, `"instance_id":"inst-1"`, `"event_id":`, `"status":"active"`, `"attempt":3`, `"at":`, `"duration":"`, `"result":"delivered"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("attempt JSON %s lacks %s", b, key)
		}
	}

	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nocbridge_notifications_total", []string{"destination", "hook", "result", "delivered"}, 1},
		{"nocbridge_notifications_total", []string{"destination", "hook", "result", "failed"}, 2},
		{"nocbridge_notifications_total", []string{"destination", "hook", "result", "dead"}, 0},
		{"nocbridge_notification_duration_seconds", []string{"destination", "hook"}, 3},
		{"nocbridge_outbox_pending", []string{"destination", "hook"}, 0},
		{"nocbridge_deadletters", []string{"destination", "hook"}, 0},
	} {
		if got := f.metric(m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	slowDown := &notify.Error{Retryable: true, Status: 429, RetryAfter: 300 * time.Millisecond, Reason: "HTTP 429: slow down"}
	n := f.fake(failFirst(1, slowDown))
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	f.enqueue(Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)})
	f.run()
	f.advanceUntil("delivery", func() bool { return f.ob.Pending()["hook"] == 0 })
	calls := n.got()
	if len(calls) != 2 {
		t.Fatalf("%d attempts, want 2", len(calls))
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < 300*time.Millisecond {
		t.Fatalf("retried after %v; the service asked for 300ms", gap)
	}
}

func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(func(notify.Notification, int) error { return nil })
	hang := &hangingNotifier{fake: n, hangFirst: 1}
	d := dest("hook", hang)
	d.Timeout = 50 * time.Millisecond
	f.ob.SetDestinations([]Destination{d})
	f.enqueue(Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)})
	f.run()
	f.advanceUntil("delivery after a timed-out attempt", func() bool { return f.ob.Pending()["hook"] == 0 })
	r := f.ob.Recent("hook")
	if len(r) != 2 || r[1].Result != ResultRetry || !strings.Contains(r[1].Error, "deadline exceeded") {
		t.Fatalf("recent %+v; want a timed-out attempt retried", r)
	}
	if r[1].Duration < 50*time.Millisecond || r[1].Duration > 2*time.Second {
		t.Errorf("timed-out attempt took %v; want about the 50ms timeout", r[1].Duration)
	}
}

// hangingNotifier blocks its first attempts until their context ends.
type hangingNotifier struct {
	fake      *fakeNotifier
	hangFirst int
	mu        sync.Mutex
	hung      int
}

func (h *hangingNotifier) Send(ctx context.Context, n notify.Notification) error {
	h.mu.Lock()
	hang := h.hung < h.hangFirst
	h.hung++
	h.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.fake.Send(ctx, n)
}

func TestRejectedIsDeadLetteredThenReplayed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reject := notify.StatusError(400, []byte(`{"error":"field severity must be a string"}`), 0)
	n := f.fake(always(reject))
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	e := ev("inst-1", event.StatusActive, 0)
	id := e.NotificationID("hook")
	f.enqueue(Item{Destination: "hook", Event: e})
	f.run()

	var dls []DeadLetter
	waitFor(t, 5*time.Second, "the dead letter", func() bool {
		var err error
		dls, err = f.ob.DeadLetters(context.Background())
		return err == nil && len(dls) == 1 && f.ob.Pending()["hook"] == 0
	})
	dl := dls[0]
	if dl.ID != id || dl.Destination != "hook" || dl.Status != 400 || dl.Attempts != 1 ||
		dl.Reason != `HTTP 400: {"error":"field severity must be a string"}` || dl.Event.InstanceID != "inst-1" ||
		!dl.Event.Timestamp.Equal(e.Timestamp) || dl.DeadAt.IsZero() || dl.EnqueuedAt.IsZero() {
		t.Fatalf("dead letter %+v", dl)
	}
	if len(n.got()) != 1 {
		t.Fatalf("a non-retryable failure was retried: %d attempts", len(n.got()))
	}
	b, _ := json.Marshal(dl)
	for _, key := range []string{`"id":`, `"destination":"hook"`, `"reason":`, `"status":400`, `"attempts":1`, `"enqueued_at":`, `"dead_at":`, `"event":{`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("dead letter JSON %s lacks %s", b, key)
		}
	}
	if got := f.metric("nocbridge_deadletters", "destination", "hook"); got != 1 {
		t.Errorf("nocbridge_deadletters = %v, want 1", got)
	}
	if got := f.metric("nocbridge_notifications_total", "destination", "hook", "result", "dead"); got != 1 {
		t.Errorf("dead counter = %v, want 1", got)
	}
	if recs := f.log.find("notification dead-lettered"); len(recs) != 1 || recs[0].Level != slog.LevelError || recs[0].Attrs["destination"] != "hook" {
		t.Errorf("dead-letter log records %+v; want one Error scoped with the destination", recs)
	}

	// Dead letters survive a restart.
	f.restart()
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	f.run()
	if dls, err := f.ob.DeadLetters(context.Background()); err != nil || len(dls) != 1 || dls[0].ID != id {
		t.Fatalf("dead letters after restart: %+v %v", dls, err)
	}

	n.setAnswer(always(nil))
	if err := f.ob.Replay(context.Background(), id); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	waitFor(t, 5*time.Second, "the replayed delivery", func() bool { return len(n.got()) == 2 && f.ob.Pending()["hook"] == 0 })
	if c := n.got()[1]; c.ID != id || c.Attempt != 1 {
		t.Errorf("replayed attempt %+v; want id %s, attempt count restarted at 1", c, id)
	}
	if dls, err := f.ob.DeadLetters(context.Background()); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters after replay: %+v %v", dls, err)
	}
	if got := f.metric("nocbridge_deadletters", "destination", "hook"); got != 0 {
		t.Errorf("nocbridge_deadletters after replay = %v", got)
	}
	if err := f.ob.Replay(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Replay = %v; want ErrNotFound", err)
	}
	if err := f.ob.Replay(context.Background(), "msg_nosuch"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "msg_nosuch") {
		t.Errorf("Replay(unknown) = %v; want ErrNotFound naming the id", err)
	}
}

func TestMaxAgeDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(always(errUnavailable))
	d := dest("hook", n)
	d.Retry = RetryPolicy{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond, MaxAge: 200 * time.Millisecond}
	f.ob.SetDestinations([]Destination{d})
	f.enqueue(Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)})
	f.run()
	var dls []DeadLetter
	f.advanceUntil("the dead letter", func() bool {
		dls, _ = f.ob.DeadLetters(context.Background())
		return len(dls) == 1
	})
	f.waitQuiet()
	attempts := len(n.got())
	if attempts < 3 {
		t.Errorf("gave up after %d attempts within a 200ms max_age at 20-40ms backoff", attempts)
	}
	if r := dls[0].Reason; !strings.HasPrefix(r, errUnavailable.Error()) || !strings.Contains(r, "retry.max_age 200ms") {
		t.Errorf("reason %q; want the last failure and the max_age", r)
	}
	if dls[0].Attempts != attempts || dls[0].Status != 503 {
		t.Errorf("dead letter attempts %d status %d; want %d and 503", dls[0].Attempts, dls[0].Status, attempts)
	}
	// Nothing waits on the clock any more: a minute on, still nothing.
	f.clock.Advance(time.Minute)
	f.waitQuiet()
	if len(n.got()) != attempts || f.ob.Pending()["hook"] != 0 {
		t.Error("attempts continued after the dead letter")
	}
}

func TestOrderPerAlertInstance(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	active := ev("inst-1", event.StatusActive, 0)
	resolved := ev("inst-1", event.StatusResolved, time.Minute)
	n := f.fake(func(nt notify.Notification, calls int) error {
		if nt.Event.Status == event.StatusActive && calls <= 2 {
			return errUnavailable
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	f.enqueue(Item{Destination: "hook", Event: active})
	f.run()
	waitFor(t, 5*time.Second, "the first failure", func() bool { return len(n.got()) >= 1 })
	f.enqueue(Item{Destination: "hook", Event: resolved})
	f.advanceUntil("both deliveries", func() bool { return f.ob.Pending()["hook"] == 0 })
	var order []string
	for _, c := range n.got() {
		order = append(order, string(c.Status))
	}
	if got := strings.Join(order, ","); got != "active,active,active,resolved" {
		t.Fatalf("delivery order %s; want active,active,active,resolved", got)
	}
}

// TestResolveWaitsForItsDeadLetteredActive: when an alert's active is
// dead-lettered, its resolve must not reach the receiver first (a replayed
// active would then reopen a closed alert): it is dead-lettered beside it,
// and replaying the destination's dead letters delivers both, in order.
func TestResolveWaitsForItsDeadLetteredActive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(func(nt notify.Notification, _ int) error {
		if nt.Event.Status == event.StatusActive {
			return notify.StatusError(422, []byte("bad"), 0)
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	active := Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)}
	f.enqueue(active, Item{Destination: "hook", Event: ev("inst-1", event.StatusResolved, time.Minute)})
	f.run()
	waitFor(t, 5*time.Second, "both handled", func() bool { return f.ob.Pending()["hook"] == 0 })
	if calls := n.got(); len(calls) != 1 || calls[0].Status != event.StatusActive {
		t.Fatalf("calls %+v; want only the active: its resolve must wait", calls)
	}
	dls, err := f.ob.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	activeID := active.Event.NotificationID("hook")
	var resolveReason string
	for _, dl := range dls {
		if dl.Event.Status == event.StatusResolved {
			resolveReason = dl.Reason
		}
	}
	if len(dls) != 2 || !strings.Contains(resolveReason, activeID) {
		t.Fatalf("dead letters %+v; want the active and its resolve, the resolve naming %s", dls, activeID)
	}

	n.setAnswer(func(notify.Notification, int) error { return nil })
	if got, err := f.ob.ReplayAll(context.Background(), "hook"); err != nil || got != 2 {
		t.Fatalf("ReplayAll = %d, %v; want 2", got, err)
	}
	waitFor(t, 5*time.Second, "the replayed pair", func() bool { return len(n.got()) >= 3 })
	calls := n.got()
	if len(calls) != 3 || calls[1].Status != event.StatusActive || calls[2].Status != event.StatusResolved {
		t.Fatalf("calls %+v; want the replayed active, then its resolve", calls)
	}
}

func TestParallelInstancesAndDestinations(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stuck := ev("stuck", event.StatusActive, 0)
	flaky := f.fake(func(nt notify.Notification, _ int) error {
		if nt.Event.InstanceID == "stuck" {
			return errUnavailable
		}
		return nil
	})
	// A destination whose receiver hangs until the attempt times out.
	hung := &hangingNotifier{fake: f.fake(nil), hangFirst: 1 << 30}
	slow := dest("down", hung)
	slow.Timeout = 10 * time.Second
	f.ob.SetDestinations([]Destination{dest("hook", flaky), slow})
	f.enqueue(Item{Destination: "hook", Event: stuck})
	for i := range 40 {
		f.enqueue(Item{Destination: "down", Event: ev(fmt.Sprintf("down-%d", i), event.StatusActive, 0)})
	}
	f.run()
	waitFor(t, 5*time.Second, "the stuck instance failing", func() bool { return len(flaky.got()) >= 1 })
	start := time.Now()
	for i := range 20 {
		f.enqueue(Item{Destination: "hook", Event: ev(fmt.Sprintf("ok-%d", i), event.StatusActive, 0)})
	}
	waitFor(t, 5*time.Second, "the other instances", func() bool { return f.ob.Pending()["hook"] == 1 })
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("20 deliveries took %v next to a failing instance and a hung destination", took)
	}
	if p := f.ob.Pending(); p["down"] != 40 {
		t.Errorf("pending %v; want all 40 of the hung destination still pending", p)
	}
	if got := f.metric("nocbridge_outbox_pending", "destination", "down"); got != 40 {
		t.Errorf("nocbridge_outbox_pending{down} = %v", got)
	}
	hung.mu.Lock()
	inflight := hung.hung
	hung.mu.Unlock()
	if inflight != maxInFlight {
		t.Errorf("%d concurrent attempts to the hung destination; want the bound %d", inflight, maxInFlight)
	}
}

func TestRestartMidRetryDeliversSameID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(always(errUnavailable))
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	retrying := ev("inst-1", event.StatusActive, 0)
	resolved := ev("inst-1", event.StatusResolved, time.Minute)
	delivered := ev("inst-2", event.StatusActive, 0)
	f.enqueue(Item{Destination: "hook", Event: retrying})
	f.run()
	f.advanceUntil("two failed attempts", func() bool { return len(n.got()) >= 2 })
	f.enqueue(Item{Destination: "hook", Event: resolved})
	n.setAnswer(func(nt notify.Notification, _ int) error {
		if nt.Event.InstanceID == "inst-2" {
			return nil
		}
		return errUnavailable
	})
	f.enqueue(Item{Destination: "hook", Event: delivered})
	waitFor(t, 5*time.Second, "the other delivery", func() bool { return len(n.callsFor(delivered.NotificationID("hook"))) == 1 })

	f.restart()
	if p := f.ob.Pending(); p["hook"] != 2 {
		t.Fatalf("pending after restart %v; want the retrying active and its resolve", p)
	}
	ok := f.fake(nil)
	f.ob.SetDestinations([]Destination{dest("hook", ok)})
	f.run()
	waitFor(t, 5*time.Second, "delivery after restart", func() bool { return f.ob.Pending()["hook"] == 0 })
	calls := ok.got()
	if len(calls) != 2 || calls[0].ID != retrying.NotificationID("hook") || calls[1].ID != resolved.NotificationID("hook") {
		t.Fatalf("after restart delivered %+v; want the original active (id %s) then its resolve, and nothing already delivered",
			calls, retrying.NotificationID("hook"))
	}
}

func TestDuplicateEnqueueIsNoop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(nil)
	e := ev("inst-1", event.StatusActive, 0)
	item := Item{Destination: "hook", Event: e}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := f.ob.Enqueue(context.Background(), item, item); err != nil {
				t.Errorf("Enqueue: %v", err)
			}
		})
	}
	wg.Wait()
	if p := f.ob.Pending(); p["hook"] != 1 {
		t.Fatalf("pending %v after 16 enqueues of one notification; want 1", p)
	}
	f.restart()
	f.enqueue(item) // the alert manager re-dispatching after a crash
	if p := f.ob.Pending(); p["hook"] != 1 {
		t.Fatalf("pending %v after a re-enqueue across a restart; want 1", p)
	}
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	f.run()
	waitFor(t, 5*time.Second, "delivery", func() bool { return f.ob.Pending()["hook"] == 0 })
	f.waitQuiet()
	if len(n.got()) != 1 {
		t.Fatalf("%d deliveries; want 1", len(n.got()))
	}
}

func TestEnqueueRejectsItemWithoutDestination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	err := f.ob.Enqueue(context.Background(), Item{Event: ev("inst-1", event.StatusActive, 0)})
	if err == nil || !strings.Contains(err.Error(), "no destination") {
		t.Fatalf("Enqueue without destination = %v", err)
	}
	if len(f.ob.Pending()) != 0 {
		t.Fatalf("pending %v", f.ob.Pending())
	}
}

func TestUnknownDestinationIsDeadLetteredAndReplayableOnceBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(nil)
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	e := ev("inst-1", event.StatusActive, 0)
	f.enqueue(Item{Destination: "gone", Event: e})
	f.run()
	var dls []DeadLetter
	waitFor(t, 5*time.Second, "the dead letter", func() bool {
		dls, _ = f.ob.DeadLetters(context.Background())
		return len(dls) == 1
	})
	if dls[0].Destination != "gone" || !strings.Contains(dls[0].Reason, `destination "gone" is not in the current configuration`) || dls[0].Attempts != 0 {
		t.Fatalf("dead letter %+v", dls[0])
	}
	if err := f.ob.Replay(context.Background(), dls[0].ID); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("Replay to a missing destination = %v; want an error saying so", err)
	}
	if _, err := f.ob.ReplayAll(context.Background(), "gone"); err == nil {
		t.Fatal("ReplayAll to a missing destination succeeded")
	}
	if n, err := f.ob.ReplayAll(context.Background(), ""); err != nil || n != 0 {
		t.Fatalf("ReplayAll(\"\") = %d, %v; want 0 (its destination is missing), nil", n, err)
	}

	back := f.fake(nil)
	f.ob.SetDestinations([]Destination{dest("hook", n), dest("gone", back)})
	if err := f.ob.Replay(context.Background(), dls[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the replayed delivery", func() bool { return len(back.got()) == 1 })
	if back.got()[0].ID != e.NotificationID("gone") {
		t.Fatalf("replayed id %s", back.got()[0].ID)
	}
}

func TestReloadRemovingDestinationDeadLettersItsQueue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(always(errUnavailable))
	d := dest("hook", n)
	d.Retry.Initial, d.Retry.Max = 200*time.Millisecond, 200*time.Millisecond
	f.ob.SetDestinations([]Destination{d})
	f.enqueue(Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)})
	f.run()
	waitFor(t, 5*time.Second, "a failed attempt", func() bool { return len(n.got()) == 1 })
	f.ob.SetDestinations(nil)
	f.advanceUntil("the dead letter", func() bool {
		dls, _ := f.ob.DeadLetters(context.Background())
		return len(dls) == 1 && strings.Contains(dls[0].Reason, "not in the current configuration")
	})
	// The removed destination disappears once its last item is off the queue.
	waitFor(t, 5*time.Second, "the removed destination to go", func() bool { return len(f.ob.Pending()) == 0 })
	if got := f.metric("nocbridge_deadletters", "destination", "hook"); got != 1 {
		t.Errorf("nocbridge_deadletters{hook} = %v; a removed destination's dead letters stay counted", got)
	}
}

func TestReplayAllByDestination(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reject := notify.StatusError(400, []byte("no"), 0)
	a, b := f.fake(always(reject)), f.fake(always(reject))
	f.ob.SetDestinations([]Destination{dest("a", a), dest("b", b)})
	for i := range 3 {
		e := ev(fmt.Sprintf("inst-%d", i), event.StatusActive, 0)
		f.enqueue(Item{Destination: "a", Event: e}, Item{Destination: "b", Event: e})
	}
	f.run()
	waitFor(t, 5*time.Second, "six dead letters", func() bool {
		dls, _ := f.ob.DeadLetters(context.Background())
		return len(dls) == 6
	})
	if got := f.metric("nocbridge_deadletters", "destination", "a"); got != 3 {
		t.Errorf("nocbridge_deadletters{a} = %v", got)
	}
	if got := f.ob.DeadLetterCounts(); !maps.Equal(got, map[string]int{"a": 3, "b": 3}) {
		t.Errorf("DeadLetterCounts() = %v, want a and b 3 each", got)
	}
	a.setAnswer(always(nil))
	n, err := f.ob.ReplayAll(context.Background(), "a")
	if err != nil || n != 3 {
		t.Fatalf("ReplayAll(a) = %d, %v; want 3", n, err)
	}
	waitFor(t, 5*time.Second, "the replays", func() bool { return len(a.got()) == 6 && f.ob.Pending()["a"] == 0 })
	dls, _ := f.ob.DeadLetters(context.Background())
	if len(dls) != 3 {
		t.Fatalf("%d dead letters left; want b's 3", len(dls))
	}
	if got := f.ob.DeadLetterCounts(); !maps.Equal(got, map[string]int{"b": 3}) {
		t.Errorf("DeadLetterCounts() after replaying a = %v, want b 3", got)
	}
	for _, dl := range dls {
		if dl.Destination != "b" {
			t.Errorf("dead letter of %s left after replaying a", dl.Destination)
		}
	}
	b.setAnswer(always(nil))
	if n, err := f.ob.ReplayAll(context.Background(), ""); err != nil || n != 3 {
		t.Fatalf("ReplayAll(\"\") = %d, %v; want 3", n, err)
	}
	waitFor(t, 5*time.Second, "b's replays", func() bool { return f.ob.Pending()["b"] == 0 && len(b.got()) == 6 })
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(nil)
	d := dest("hook", n)
	d.RateLimit = 20 // burst 20, then one per 50ms
	f.ob.SetDestinations([]Destination{d})
	for i := range 30 {
		f.enqueue(Item{Destination: "hook", Event: ev(fmt.Sprintf("inst-%d", i), event.StatusActive, 0)})
	}
	start := f.clock.Now()
	f.run()
	// The burst goes at once; the other 10 wait in the limiter, 50ms apart.
	waitFor(t, 5*time.Second, "the burst", func() bool { return f.ob.Pending()["hook"] <= 10 && f.clock.dueWithin(500*time.Millisecond) == 10 })
	if p, sent := f.ob.Pending()["hook"], len(n.got()); p != 10 || sent != 20 {
		t.Fatalf("%d sent, %d pending at once; want the burst of 20 sent, 10 waiting", sent, p)
	}
	f.clock.Advance(449 * time.Millisecond)
	waitFor(t, 5*time.Second, "the deliveries of the first 449ms", func() bool { return f.ob.Pending()["hook"] <= 2 })
	if p, sent, waiting := f.ob.Pending()["hook"], len(n.got()), f.clock.dueWithin(time.Second); p != 2 || sent != 28 || waiting != 2 {
		t.Fatalf("%d sent, %d pending, %d waiting in the limiter 449ms on; want 28 sent and 2 waiting: 30 at 20/s (burst 20) take 500ms", sent, p, waiting)
	}
	f.clock.Advance(51 * time.Millisecond)
	waitFor(t, 5*time.Second, "30 deliveries", func() bool { return f.ob.Pending()["hook"] == 0 })
	if took := f.clock.Now().Sub(start); len(n.got()) != 30 || took != 500*time.Millisecond {
		t.Fatalf("%d deliveries in %v; want 30 in 500ms", len(n.got()), took)
	}
}

func TestLogLevels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := &notify.Error{Retryable: true, Reason: "POST http://127.0.0.1/hook: timeout"}
	n := f.fake(func(_ notify.Notification, calls int) error {
		switch calls {
		case 1, 2:
			return errUnavailable
		case 3:
			return other
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	f.enqueue(Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)})
	f.run()
	f.advanceUntil("delivery", func() bool { return f.ob.Pending()["hook"] == 0 })
	var levels []string
	for _, r := range f.log.find("notification delivery failed; will retry") {
		levels = append(levels, r.Level.String())
		if r.Attrs["destination"] != "hook" {
			t.Errorf("log record without the destination: %+v", r)
		}
	}
	if got := strings.Join(levels, ","); got != "WARN,DEBUG,WARN" {
		t.Errorf("failure log levels %s; want WARN (first), DEBUG (same reason), WARN (new reason)", got)
	}
	if recs := f.log.find("notification delivered after failures"); len(recs) != 1 || recs[0].Level != slog.LevelInfo {
		t.Errorf("delivered-after-failure records %+v; want one at Info", recs)
	}
}

// TestRunStopsCleanly is not parallel: it counts goroutines.
func TestRunStopsCleanly(t *testing.T) {
	f := newFixture(t)
	before := runtime.NumGoroutine()
	hung := &hangingNotifier{fake: f.fake(nil), hangFirst: 1 << 30}
	d := dest("hook", hung)
	d.Timeout = time.Minute
	d.RateLimit = 1 // a second attempt waits in the limiter
	f.ob.SetDestinations([]Destination{d})
	f.enqueue(Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)},
		Item{Destination: "hook", Event: ev("inst-2", event.StatusActive, 0)},
		Item{Destination: "hook", Event: ev("inst-3", event.StatusActive, 0)})
	f.run()
	waitFor(t, 5*time.Second, "an attempt under way", func() bool {
		hung.mu.Lock()
		defer hung.mu.Unlock()
		return hung.hung >= 1
	})
	f.clock.waitUntil(t, "the other two attempts to wait in the limiter", func() bool { return f.clock.dueWithin(2*time.Second) == 2 })
	start, realStart := f.clock.Now(), time.Now()
	f.stopRun()
	if took := f.clock.Now().Sub(start); took > stopGrace {
		t.Errorf("Run took %v on the clock to stop with an attempt hanging; want the stop grace, %v", took, stopGrace)
	}
	if took := time.Since(realStart); took > 2*time.Second {
		t.Errorf("Run took %v to stop with an attempt hanging", took)
	}
	if p := f.ob.Pending(); p["hook"] != 3 {
		t.Errorf("pending %v after stopping; abandoned attempts must stay queued", p)
	}
	waitFor(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if r := f.ob.Recent("hook"); len(r) != 0 {
		t.Errorf("abandoned attempts were recorded: %+v", r)
	}

	// Run again: the abandoned attempt is made again, counted as attempt 1.
	ok := f.fake(nil)
	f.ob.SetDestinations([]Destination{dest("hook", ok)})
	f.run()
	waitFor(t, 5*time.Second, "delivery", func() bool { return f.ob.Pending()["hook"] == 0 })
	for _, c := range ok.got() {
		if c.Attempt != 1 {
			t.Errorf("attempt %+v; an abandoned attempt must not count", c)
		}
	}
	if err := f.ob.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second concurrent Run = %v", err)
	}
}

func TestNothingIsSentBeforeDestinationsAreSet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enqueue(Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)})
	f.run()
	f.looped()
	f.ob.mu.Lock()
	started := f.ob.dests["hook"].inflight
	f.ob.mu.Unlock()
	if started != 0 {
		t.Fatal("an attempt started before any config was set")
	}
	if dls, _ := f.ob.DeadLetters(context.Background()); len(dls) != 0 {
		t.Fatalf("dead-lettered before any config was set: %+v", dls)
	}
	n := f.fake(nil)
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(n.got()) == 1 })
}

// TestLogHeadIsTrimmedPastAStuckItem: a notification retrying for long is
// copied forward so the stream does not grow behind it, and keeps its
// place ahead of its resolve across a restart.
func TestLogHeadIsTrimmedPastAStuckItem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ob.relocateLag = 8
	down := f.fake(always(errUnavailable))
	up := f.fake(nil)
	d := dest("down", down)
	d.Retry = RetryPolicy{Initial: time.Hour, Max: time.Hour, MaxAge: 2 * time.Hour}
	f.ob.SetDestinations([]Destination{d, dest("up", up)})
	active, resolved := ev("stuck", event.StatusActive, 0), ev("stuck", event.StatusResolved, time.Minute)
	f.enqueue(Item{Destination: "down", Event: active})
	f.run()
	waitFor(t, 5*time.Second, "the first failure", func() bool { return len(down.got()) == 1 })
	f.enqueue(Item{Destination: "down", Event: resolved})
	for i := range 100 {
		f.enqueue(Item{Destination: "up", Event: ev(fmt.Sprintf("inst-%d", i), event.StatusActive, 0)})
	}
	waitFor(t, 5*time.Second, "the other deliveries", func() bool { return f.ob.Pending()["up"] == 0 })
	// One more record after the last completion lets the trim catch up.
	f.clock.Advance(purgeInterval)
	f.enqueue(Item{Destination: "up", Event: ev("last", event.StatusActive, 0)})
	waitFor(t, 5*time.Second, "the last delivery", func() bool { return f.ob.Pending()["up"] == 0 })

	state, err := f.ob.queue.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if state.Records > 30 {
		t.Fatalf("outbox log holds %d records (first %d, last %d) behind a stuck notification; want it trimmed",
			state.Records, state.First, state.Last)
	}

	f.restart()
	if p := f.ob.Pending(); p["down"] != 2 || p["up"] != 0 {
		t.Fatalf("pending after restart %v; want the stuck active and its resolve only", p)
	}
	ok := f.fake(nil)
	f.ob.SetDestinations([]Destination{dest("down", ok), dest("up", up)})
	f.run()
	waitFor(t, 5*time.Second, "delivery", func() bool { return f.ob.Pending()["down"] == 0 })
	calls := ok.got()
	if len(calls) != 2 || calls[0].ID != active.NotificationID("down") || calls[1].ID != resolved.NotificationID("down") {
		t.Fatalf("after restart %+v; want the active then its resolve, same ids", calls)
	}
	if calls[0].Attempt != 2 {
		t.Errorf("attempt number after the copy and restart %d; want 2 (the count travels with the copy)", calls[0].Attempt)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{Initial: time.Second, Max: 5 * time.Minute}
	top := func(n int64) int64 { return n - 1 }
	bottom := func(int64) int64 { return 0 }
	tests := []struct {
		n      int
		randN  func(int64) int64
		want   time.Duration
		policy RetryPolicy
	}{
		{1, top, time.Second, p},
		{2, top, 2 * time.Second, p},
		{3, top, 4 * time.Second, p},
		{5, top, 16 * time.Second, p},
		{9, top, 256 * time.Second, p},
		{10, top, 5 * time.Minute, p},
		{1000, top, 5 * time.Minute, p},
		{5, bottom, time.Second, p},
		{3, top, 3 * time.Second, RetryPolicy{Initial: time.Second, Max: 3 * time.Second}},
		{4, top, time.Second, RetryPolicy{Initial: time.Second, Max: time.Second}},
		{80, top, time.Duration(1<<62) * 1, RetryPolicy{Initial: time.Nanosecond, Max: time.Duration(1 << 62)}},
	}
	for _, tt := range tests {
		if got := backoff(tt.policy, tt.n, tt.randN); got != tt.want {
			t.Errorf("backoff(%+v, %d) = %v, want %v", tt.policy, tt.n, got, tt.want)
		}
	}

	// Full jitter: a seeded source covers the whole window.
	r := rand.New(rand.NewPCG(1, 2))
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := backoff(p, 4, r.Int64N)
		if d < time.Second || d > 8*time.Second {
			t.Fatalf("backoff(4) = %v outside [1s, 8s]", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 1100*time.Millisecond || hi < 7900*time.Millisecond {
		t.Errorf("2000 draws spanned only [%v, %v] of [1s, 8s]", lo, hi)
	}
}

func TestDeliveryOfReenqueuedNotificationClearsItsDeadLetter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(always(notify.StatusError(400, []byte("no"), 0)))
	f.ob.SetDestinations([]Destination{dest("hook", n)})
	item := Item{Destination: "hook", Event: ev("inst-1", event.StatusActive, 0)}
	f.enqueue(item)
	f.run()
	waitFor(t, 5*time.Second, "the dead letter", func() bool {
		dls, _ := f.ob.DeadLetters(context.Background())
		return len(dls) == 1 && f.ob.Pending()["hook"] == 0
	})
	n.setAnswer(always(nil))
	f.enqueue(item) // the alert manager re-dispatching the same transition
	waitFor(t, 5*time.Second, "the delivery", func() bool { return len(n.got()) == 2 && f.ob.Pending()["hook"] == 0 })
	if dls, err := f.ob.DeadLetters(context.Background()); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters after the same notification was delivered: %+v %v", dls, err)
	}
}

// answerLate answers its first Send only once release is closed.
type answerLate struct {
	sending chan struct{} // closed when the first Send starts
	release chan struct{}
	once    sync.Once
	fake    *fakeNotifier
}

func (a *answerLate) Send(ctx context.Context, n notify.Notification) error {
	first := false
	a.once.Do(func() { first = true; close(a.sending) })
	if first {
		select {
		case <-a.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return a.fake.Send(ctx, n)
}

// TestStopLetsAnAttemptUnderWayFinish: a request on the wire when Run stops
// is answered within stopGrace; its delivery is recorded, so a restart does
// not send the notification again.
func TestStopLetsAnAttemptUnderWayFinish(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	late := &answerLate{sending: make(chan struct{}), release: make(chan struct{}), fake: f.fake(nil)}
	f.ob.SetDestinations([]Destination{dest("hook", late)})
	e := ev("inst-1", event.StatusActive, 0)
	f.enqueue(Item{Destination: "hook", Event: e})
	f.run()
	<-late.sending
	if _, ok := f.cancelRun(); !ok {
		t.Fatal("Run returned with an attempt under way")
	}
	f.clock.Advance(stopGrace / 4)
	close(late.release)
	f.waitStopped()
	if p := f.ob.Pending()["hook"]; p != 0 {
		t.Fatalf("pending %d after stopping; the answered attempt must count as delivered", p)
	}
	if r := f.ob.Recent("hook"); len(r) != 1 || r[0].Result != ResultDelivered {
		t.Errorf("attempts %+v; want one delivered", r)
	}
	f.restart()
	if p := f.ob.Pending()["hook"]; p != 0 {
		t.Errorf("%d pending after the restart; the delivered notification would go again", p)
	}
}

// TestDigestStorm: 25 notifications due in one window with after 10: 10
// go one by one at once, the other 15 in one digest at the window's end,
// logged once and counted; the next window starts fresh.
func TestDigestStorm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	start := f.clock.Now()
	chat, all := f.parkedStorm()
	f.advanceUntil("the digest", func() bool { return len(chat.sent()) == 1 && f.ob.Pending()["chat"] == 0 })
	d := chat.sent()[0]
	if d.At != start.Add(time.Minute) {
		t.Errorf("digest sent %v after the window opened, want at its end (1m)", d.At.Sub(start))
	}
	var singles []string
	for _, c := range chat.got() {
		singles = append(singles, c.ID)
	}
	carried := ids(d.Notifications)
	if len(carried) != 15 || len(singles) != 10 {
		t.Fatalf("%d one by one, %d in the digest; want 10 and 15", len(singles), len(carried))
	}
	if got := append(slices.Clone(singles), carried...); !sameSet(got, all) {
		t.Errorf("one by one and digested %v; want each of the 25 once", got)
	}
	if d.ID != notify.DigestID(carried) || d.Attempt != 1 {
		t.Errorf("digest id %s attempt %d; want DigestID of its items, attempt 1", d.ID, d.Attempt)
	}
	r := f.ob.Recent("chat")[0]
	if r.ID != d.ID || r.Notifications != 15 || r.Result != ResultDelivered {
		t.Errorf("recent attempt %+v; want the digest, delivered, carrying 15", r)
	}
	for _, m := range []struct {
		name string
		want float64
	}{
		{"nocbridge_digest_messages_total", 1},
		{"nocbridge_digest_notifications_total", 15},
		{"nocbridge_digest_parked", 0},
		{"nocbridge_outbox_pending", 0},
	} {
		if got := f.metric(m.name, "destination", "chat"); got != m.want {
			t.Errorf("%s = %v, want %v", m.name, got, m.want)
		}
	}
	if recs := f.log.find("digest delivered"); len(recs) != 1 || recs[0].Attrs["notifications"] != "15" || recs[0].Attrs["destination"] != "chat" {
		t.Errorf("digest log records %+v; want one, scoped with the destination, naming 15", recs)
	}

	// The next window starts fresh: 10 more one by one, then a digest of 2.
	f.clock.Advance(time.Hour)
	f.storm("chat", "next", 12)
	second := f.clock.Now()
	f.advanceUntil("the second window's digest", func() bool { return len(chat.sent()) == 2 && f.ob.Pending()["chat"] == 0 })
	if n, d := len(chat.got()), chat.sent()[1]; n != 20 || len(d.Notifications) != 2 || d.At != second.Add(time.Minute) {
		t.Errorf("second window: %d one by one in all, a digest of %d at +%v; want 20, 2, +1m", n, len(d.Notifications), d.At.Sub(second))
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestDigestKeepsOrderPerAlert: an active parked with its resolve behind
// it go in the digest in order; a digested active's resolve goes later,
// one by one in a fresh window, or in the next digest while the room is
// over its budget.
func TestDigestKeepsOrderPerAlert(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat := f.digester(1, time.Minute, nil)
	f.ob.SetDestinations([]Destination{chatDest("chat", chat)})
	f.run()
	f.enqueue(Item{Destination: "chat", Event: ev("first", event.StatusActive, 0)})
	waitFor(t, 5*time.Second, "the window's one notification", func() bool { return len(chat.got()) == 1 })
	a1, r1 := ev("a", event.StatusActive, 0), ev("a", event.StatusResolved, time.Second)
	b1, c1 := ev("b", event.StatusActive, 0), ev("c", event.StatusActive, 0)
	f.enqueue(Item{Destination: "chat", Event: a1}, Item{Destination: "chat", Event: b1}, Item{Destination: "chat", Event: c1})
	waitFor(t, 5*time.Second, "three parked", func() bool { return f.metric("nocbridge_digest_parked", "destination", "chat") == 3 })
	f.enqueue(Item{Destination: "chat", Event: r1}) // behind its parked active
	f.advanceUntil("the first digest", func() bool { return len(chat.sent()) == 1 && f.ob.Pending()["chat"] == 0 })
	got := ids(chat.sent()[0].Notifications)
	ia, ir := slices.Index(got, a1.NotificationID("chat")), slices.Index(got, r1.NotificationID("chat"))
	if len(got) != 4 || ia < 0 || ir != ia+1 {
		t.Fatalf("digest carried %v; want a's active then its resolve, b and c", got)
	}

	// A fresh window: b's resolve goes one by one; c's, past the budget,
	// in the next digest.
	f.clock.Advance(time.Hour)
	b2, c2 := ev("b", event.StatusResolved, time.Hour), ev("c", event.StatusResolved, time.Hour)
	f.enqueue(Item{Destination: "chat", Event: b2})
	waitFor(t, 5*time.Second, "b's resolve", func() bool { return len(chat.got()) == 2 })
	f.enqueue(Item{Destination: "chat", Event: c2})
	f.advanceUntil("the second digest", func() bool { return len(chat.sent()) == 2 && f.ob.Pending()["chat"] == 0 })
	if c := chat.got()[1]; c.ID != b2.NotificationID("chat") {
		t.Errorf("one by one: %+v; want b's resolve", c)
	}
	if got := ids(chat.sent()[1].Notifications); !slices.Equal(got, []string{c2.NotificationID("chat")}) {
		t.Errorf("second digest %v; want c's resolve", got)
	}
}

// TestDigestRetriedAsOne: a 500 on the digest retries it after its
// backoff, the same notifications under the same id; one digest is
// delivered and counted.
func TestDigestRetriedAsOne(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	boom := notify.StatusError(500, []byte("boom"), 0)
	chat := f.digester(2, 10*time.Second, func(_ notify.Digest, calls int) error { // well within max_age (1m)
		if calls == 1 {
			return boom
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{chatDest("chat", chat)})
	f.storm("chat", "inst", 5)
	f.run()
	f.advanceUntil("the digest delivered", func() bool { return len(chat.sent()) == 2 && f.ob.Pending()["chat"] == 0 })
	s := chat.sent()
	if s[0].ID != s[1].ID || !slices.Equal(ids(s[0].Notifications), ids(s[1].Notifications)) || len(s[0].Notifications) != 3 {
		t.Errorf("retry changed the digest: %s %v, then %s %v", s[0].ID, ids(s[0].Notifications), s[1].ID, ids(s[1].Notifications))
	}
	if s[1].Attempt != 2 || s[1].At.Sub(s[0].At) < 20*time.Millisecond {
		t.Errorf("second attempt numbered %d, %v after the first; want 2, after retry.initial", s[1].Attempt, s[1].At.Sub(s[0].At))
	}
	var results []string
	for _, a := range f.ob.Recent("chat") {
		if a.Notifications > 0 {
			results = append(results, a.Result)
		}
	}
	if got := strings.Join(results, ","); got != "delivered,retry" {
		t.Errorf("digest attempts %s; want delivered,retry", got)
	}
	if got := f.metric("nocbridge_digest_messages_total", "destination", "chat"); got != 1 {
		t.Errorf("nocbridge_digest_messages_total = %v, want 1", got)
	}
	if recs := f.log.find("digest delivery failed; will retry"); len(recs) != 1 || recs[0].Level != slog.LevelWarn || recs[0].Attrs["notifications"] != "3" {
		t.Errorf("retry log records %+v; want one warning naming 3 notifications", recs)
	}
}

// TestDigestRejectedDeadLettersEveryItem: a 400 on the digest dead-letters
// each of its notifications with the reason, logged once.
func TestDigestRejectedDeadLettersEveryItem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat := f.digester(2, time.Minute, func(notify.Digest, int) error {
		return notify.StatusError(400, []byte("invalid_blocks"), 0)
	})
	f.ob.SetDestinations([]Destination{chatDest("chat", chat)})
	all := f.storm("chat", "inst", 6)
	f.run()
	dls := f.deadLetters(4)
	if p := f.ob.Pending()["chat"]; p != 0 {
		t.Errorf("%d pending after the digest was dead-lettered", p)
	}
	d := chat.sent()[0]
	for _, dl := range dls {
		if !slices.Contains(ids(d.Notifications), dl.ID) || dl.Status != 400 || dl.Attempts != 1 ||
			dl.Reason != "in digest "+d.ID+" of 4 notifications: HTTP 400: invalid_blocks" {
			t.Errorf("dead letter %s: status %d, attempts %d, reason %q", dl.ID, dl.Status, dl.Attempts, dl.Reason)
		}
	}
	if len(chat.sent()) != 1 || len(chat.got()) != 2 {
		t.Errorf("%d digests, %d one by one; want one digest, never retried, and 2", len(chat.sent()), len(chat.got()))
	}
	if got := f.metric("nocbridge_deadletters", "destination", "chat"); got != 4 {
		t.Errorf("nocbridge_deadletters = %v, want 4", got)
	}
	if got := f.metric("nocbridge_notifications_total", "destination", "chat", "result", "dead"); got != 4 {
		t.Errorf("dead counter = %v, want 4 (one per notification)", got)
	}
	if recs := f.log.find("digest dead-lettered"); len(recs) != 1 || len(f.log.find("notification dead-lettered")) != 0 {
		t.Errorf("%d digest and %d notification dead-letter logs; want one for the digest only", len(recs), len(f.log.find("notification dead-lettered")))
	}
	// Replayed, they go one by one or in a digest again, like any.
	chat.dmu.Lock()
	chat.answer = func(notify.Digest, int) error { return nil }
	chat.dmu.Unlock()
	if n, err := f.ob.ReplayAll(context.Background(), "chat"); err != nil || n != 4 {
		t.Fatalf("ReplayAll = %d, %v", n, err)
	}
	f.advanceUntil("the replays", func() bool { return f.ob.Pending()["chat"] == 0 })
	delivered := ids(chat.sent()[len(chat.sent())-1].Notifications)
	for _, c := range chat.got() {
		delivered = append(delivered, c.ID)
	}
	if !sameSet(delivered, all) {
		t.Errorf("after the replay, delivered %v; want all 6", delivered)
	}
}

// TestDigestMaxAge: a digest failing until retry.max_age dead-letters
// every notification it carried, naming max_age.
func TestDigestMaxAge(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat := f.digester(1, 100*time.Millisecond, func(notify.Digest, int) error { return errUnavailable })
	d := chatDest("chat", chat)
	d.Retry.MaxAge = 500 * time.Millisecond
	f.ob.SetDestinations([]Destination{d})
	f.storm("chat", "inst", 3)
	f.run()
	dls := f.deadLetters(2)
	// A dead letter is stored before its notifications leave the queue
	// (nothing lost in between), so the count drops a moment later.
	f.advanceUntil("nothing pending", func() bool { return f.ob.Pending()["chat"] == 0 })
	tries := len(chat.sent())
	for _, dl := range dls {
		if !strings.Contains(dl.Reason, "retry.max_age 500ms reached") || dl.Attempts != tries || dl.Status != 503 {
			t.Errorf("dead letter %+v; want max_age named, %d attempts, 503", dl, tries)
		}
	}
	if tries < 3 || f.ob.Pending()["chat"] != 0 {
		t.Errorf("%d digest attempts, %d pending", tries, f.ob.Pending()["chat"])
	}
}

// TestDigestParkedSurviveRestart: notifications parked when the process
// stops are stored; after the restart each is delivered once.
func TestDigestParkedSurviveRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat, all := f.parkedStorm()
	f.restart()
	if p := f.ob.Pending()["chat"]; p != 15 {
		t.Fatalf("pending after the restart %d, want the 15 parked", p)
	}
	again := f.digester(10, time.Minute, nil)
	f.ob.SetDestinations([]Destination{chatDest("chat", again)})
	f.run()
	f.advanceUntil("the restored notifications", func() bool { return f.ob.Pending()["chat"] == 0 && len(again.sent()) == 1 })
	var delivered []string
	for _, c := range append(chat.got(), again.got()...) {
		delivered = append(delivered, c.ID)
	}
	for _, d := range append(chat.sent(), again.sent()...) {
		delivered = append(delivered, ids(d.Notifications)...)
	}
	if len(delivered) != 25 || !sameSet(delivered, all) {
		t.Errorf("delivered %d: %v; want each of the 25 once", len(delivered), delivered)
	}
}

// TestOnlyDigestersAreDigested: destinations without a digest (webhooks,
// ticket systems) take the same storm one by one, beside a chat
// destination that digests it.
func TestOnlyDigestersAreDigested(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat := f.digester(10, time.Minute, nil)
	hook, ticket := f.fake(nil), f.fake(nil)
	f.ob.SetDestinations([]Destination{chatDest("chat", chat), dest("hook", hook), dest("ticket", ticket)})
	for i := range 25 {
		e := ev(fmt.Sprintf("inst-%02d", i), event.StatusActive, 0)
		f.enqueue(Item{Destination: "chat", Event: e}, Item{Destination: "hook", Event: e}, Item{Destination: "ticket", Event: e})
	}
	f.run()
	f.advanceUntil("every delivery", func() bool {
		p := f.ob.Pending()
		return p["chat"]+p["hook"]+p["ticket"] == 0
	})
	if len(hook.got()) != 25 || len(ticket.got()) != 25 {
		t.Errorf("webhook %d, ticket %d one by one; want 25 each", len(hook.got()), len(ticket.got()))
	}
	if len(chat.got()) != 10 || len(chat.sent()) != 1 {
		t.Errorf("chat: %d one by one, %d digests; want 10 and 1", len(chat.got()), len(chat.sent()))
	}
	for _, name := range []string{"hook", "ticket"} {
		if got := f.metric("nocbridge_digest_messages_total", "destination", name); got != 0 {
			t.Errorf("%s sent %v digests", name, got)
		}
	}
}

// TestReloadDissolvesDigests: turning a destination's digests off hands
// its parked notifications back, one by one; removing it dead-letters them.
func TestReloadDissolvesDigests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat := f.digester(2, time.Minute, nil)
	f.ob.SetDestinations([]Destination{chatDest("chat", chat), chatDest("gone", f.digester(2, time.Minute, nil))})
	f.storm("chat", "inst", 5)
	f.storm("gone", "inst", 5)
	f.run()
	waitFor(t, 5*time.Second, "3 parked at each", func() bool {
		return f.metric("nocbridge_digest_parked", "destination", "chat") == 3 && f.metric("nocbridge_digest_parked", "destination", "gone") == 3
	})
	f.ob.SetDestinations([]Destination{dest("chat", chat)})
	waitFor(t, 5*time.Second, "the parked ones one by one", func() bool { return len(chat.got()) == 5 && f.ob.Pending()["chat"] == 0 })
	waitFor(t, 5*time.Second, "the removed one's dead letters", func() bool {
		dls, _ := f.ob.DeadLetters(context.Background())
		return len(dls) == 3 && f.ob.Pending()["gone"] == 0
	})
	if len(chat.sent()) != 0 {
		t.Errorf("%d digests sent after digests were turned off", len(chat.sent()))
	}
}

// TestParkedItemsCopiedForward: parked notifications pin the log's head
// like any pending one, so they are copied forward; the digest delivers
// them from their new place, and a restart finds nothing left to send.
func TestParkedItemsCopiedForward(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.ob.relocateLag = 8
	chat, up := f.digester(1, time.Minute, nil), f.fake(nil)
	f.ob.SetDestinations([]Destination{chatDest("chat", chat), dest("up", up)})
	f.run()
	f.storm("chat", "first", 1)
	waitFor(t, 5*time.Second, "the window's one", func() bool { return len(chat.got()) == 1 && f.ob.Pending()["chat"] == 0 })
	parked := f.storm("chat", "inst", 3)
	waitFor(t, 5*time.Second, "three parked", func() bool { return f.metric("nocbridge_digest_parked", "destination", "chat") == 3 })
	locs := func() map[string]uint64 {
		f.ob.mu.Lock()
		defer f.ob.mu.Unlock()
		out := map[string]uint64{}
		for _, id := range parked {
			out[id] = f.ob.byID[id].loc.Seq
		}
		return out
	}
	before := locs()
	f.storm("up", "other", 60)
	waitFor(t, 5*time.Second, "the other deliveries and the copies", func() bool {
		moved := 0
		for id, seq := range locs() {
			if seq != before[id] {
				moved++
			}
		}
		return f.ob.Pending()["up"] == 0 && moved == 3
	})
	f.advanceUntil("the digest", func() bool { return len(chat.sent()) == 1 && f.ob.Pending()["chat"] == 0 })
	if got := ids(chat.sent()[0].Notifications); !sameSet(got, parked) {
		t.Errorf("digest carried %v, want the 3 parked", got)
	}
	f.restart()
	if p := f.ob.Pending(); p["chat"] != 0 || p["up"] != 0 {
		t.Errorf("pending after the restart %v: a copied-forward notification came back", p)
	}
}

// TestResolveOfDeadActiveIsNotDigested: a resolve whose active was
// dead-lettered is dead-lettered beside it, never delivered in a digest.
func TestResolveOfDeadActiveIsNotDigested(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	chat := f.digester(1, time.Minute, nil)
	chat.setAnswer(func(n notify.Notification, _ int) error {
		if n.Event.InstanceID == "a" {
			return notify.StatusError(400, []byte("no"), 0)
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{chatDest("chat", chat)})
	f.run()
	active := ev("a", event.StatusActive, 0)
	f.enqueue(Item{Destination: "chat", Event: active})
	waitFor(t, 5*time.Second, "the active dead-lettered", func() bool {
		dls, _ := f.ob.DeadLetters(context.Background())
		return len(dls) == 1
	})
	f.storm("chat", "b", 1) // past the budget: parked
	resolve := ev("a", event.StatusResolved, time.Minute)
	f.enqueue(Item{Destination: "chat", Event: resolve})
	f.advanceUntil("the digest and the resolve's dead letter", func() bool {
		dls, _ := f.ob.DeadLetters(context.Background())
		return len(dls) == 2 && len(chat.sent()) == 1 && f.ob.Pending()["chat"] == 0
	})
	if got := ids(chat.sent()[0].Notifications); slices.Contains(got, resolve.NotificationID("chat")) {
		t.Errorf("the resolve of a dead-lettered active went in a digest: %v", got)
	}
}
