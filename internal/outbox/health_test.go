package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// shipped is the retry block as shipped (SPEC 3, SPEC 6): the destination
// tests below run on it, on the fake clock.
var shipped = RetryPolicy{Initial: time.Second, Max: 5 * time.Minute, MaxAge: 24 * time.Hour, ProbeInterval: 5 * time.Second}

func shippedDest(name string, n notify.Notifier) Destination {
	return Destination{Name: name, Notifier: n, Retry: shipped, Timeout: 5 * time.Second}
}

// runFor moves the clock d on, stopping at every due time in between once
// the outbox is idle, and returns once it is idle at the end.
func (f *fixture) runFor(d time.Duration) {
	f.t.Helper()
	end := f.clock.Now().Add(d)
	waitFor(f.t, 20*time.Second, fmt.Sprintf("the outbox to run %v on the clock", d), func() bool {
		return f.ifIdle(func(next time.Time, waiting bool) bool {
			switch {
			case waiting && !next.After(end):
				f.clock.advanceTo(next)
			case f.clock.Now().Before(end):
				f.clock.advanceTo(end)
			default:
				return true
			}
			return false
		})
	})
}

// alerts enqueues, in one record, an active and its resolve for n alert
// instances, and returns them in enqueue order.
func (f *fixture) alerts(destination, prefix string, n int) []Item {
	var items []Item
	for i := range n {
		inst := fmt.Sprintf("%s-%03d", prefix, i)
		items = append(items, Item{Destination: destination, Event: ev(inst, event.StatusActive, 0)},
			Item{Destination: destination, Event: ev(inst, event.StatusResolved, time.Minute)})
	}
	f.enqueue(items...)
	return items
}

// since returns the notifier's calls after its first n.
func since(n *fakeNotifier, first int) []call {
	return n.got()[first:]
}

// comesBack makes the receiver take everything, and checks that the items
// (all to one destination) reach it within one probe interval (5s), each
// once, each alert's active before its resolve. It returns what came.
func (f *fixture) comesBack(n *fakeNotifier, items []Item) []call {
	f.t.Helper()
	n.setAnswer(always(nil))
	back, sent := f.clock.Now(), len(n.got())
	f.advanceUntil("everything delivered", func() bool { return f.ob.Pending()[items[0].Destination] == 0 })
	got := since(n, sent)
	checkDeliveredOnce(f.t, items, got)
	if last := got[len(got)-1].At; last.Sub(back) > 5*time.Second {
		f.t.Errorf("the last notification arrived %v after the receiver came back; want within the 5s probe interval", last.Sub(back))
	}
	return got
}

// checkDeliveredOnce fails unless every item was delivered exactly once,
// each alert's active before its resolve.
func checkDeliveredOnce(t *testing.T, items []Item, got []call) {
	t.Helper()
	seen := map[string]int{}
	activeAt := map[string]int{}
	for i, c := range got {
		seen[c.ID]++
		switch c.Status {
		case event.StatusActive:
			activeAt[c.InstanceID] = i
		case event.StatusResolved:
			if a, ok := activeAt[c.InstanceID]; !ok || a > i {
				t.Errorf("the resolve of %s was delivered before its active", c.InstanceID)
			}
		}
	}
	for _, it := range items {
		if n := seen[it.Event.NotificationID(it.Destination)]; n != 1 {
			t.Errorf("%s (%s %s) delivered %d times, want once", it.Event.NotificationID(it.Destination), it.Event.InstanceID, it.Event.Status, n)
		}
	}
	if len(got) != len(items) {
		t.Errorf("%d deliveries, want %d", len(got), len(items))
	}
}

// TestDownDestinationIsProbedThenFlows is SPEC 6's receiver that comes
// back: 500 notifications in 250 lanes wait while it is down; it gets one
// request per probe interval, each of the oldest notification; once back,
// everything reaches it within one interval, in order per alert.
func TestDownDestinationIsProbedThenFlows(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(always(errUnavailable))
	f.ob.SetDestinations([]Destination{shippedDest("hook", n)})
	items := f.alerts("hook", "inst", 250)
	oldest := items[0].Event.NotificationID("hook")
	start := f.clock.Now()
	f.run()
	f.runFor(2 * time.Minute)

	var burst, probes []call
	for _, c := range n.got() {
		if c.At.Equal(start) {
			burst = append(burst, c)
		} else {
			probes = append(probes, c)
		}
	}
	// Before it is judged down, what was due went at once: at most the
	// in-flight bound. Then one probe each 5s, for 2 minutes.
	// A slot freed before the third failure may start one more.
	if len(burst) < failingAfter || len(burst) > maxInFlight+failingAfter-1 {
		t.Errorf("%d attempts before the destination was judged down; want %d to %d", len(burst), failingAfter, maxInFlight+failingAfter-1)
	}
	if len(probes) != 24 {
		t.Errorf("%d requests in the 2 minutes after the first round; want 24, one per 5s", len(probes))
	}
	for i, c := range probes {
		if want := start.Add(time.Duration(i+1) * 5 * time.Second); c.ID != oldest || !c.At.Equal(want) {
			t.Errorf("probe %d: %s at +%v; want the oldest, %s, at +%v", i+1, c.ID, c.At.Sub(start), oldest, want.Sub(start))
		}
	}
	if r := f.ob.Recent("hook")[0]; !r.Probe || r.ID != oldest || r.Result != ResultRetry {
		t.Errorf("last attempt %+v; want a failed probe of the oldest", r)
	}
	h := f.ob.Health("hook")
	if h.State != StateFailing || !h.FailingSince.Equal(start) || h.NextProbeAt == nil || !h.NextProbeAt.Equal(start.Add(125*time.Second)) ||
		h.Probes != 24 || h.LastError != errUnavailable.Error() {
		t.Errorf("health %+v; want failing since the start, next probe at +2m5s, 24 probes, the 503", h)
	}
	b, _ := json.Marshal(h)
	for _, key := range []string{`"state":"failing"`, `"failing_since":`, `"next_probe_at":`, `"probes":24`, `"last_error":"HTTP 503`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("health JSON %s lacks %s", b, key)
		}
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"nocbridge_destination_up", []string{"destination", "hook"}, 0},
		{"nocbridge_destination_probes_total", []string{"destination", "hook", "result", "failed"}, 24},
		{"nocbridge_outbox_pending", []string{"destination", "hook"}, 500},
	} {
		if got := f.metric(m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	began := f.log.find("destination failing: only its oldest notification is tried until one is delivered")
	if len(began) != 1 || began[0].Level != slog.LevelWarn || began[0].Attrs["probe_interval"] != "5s" ||
		began[0].Kinds["probe_interval"] != slog.KindString || began[0].Attrs["pending"] != "500" {
		t.Errorf("failing log records %+v; want one warning, probe_interval \"5s\" as text, 500 pending", began)
	}
	for _, r := range f.log.find("notification delivery failed; will retry") {
		if r.Kinds["retry_in"] != slog.KindString {
			t.Errorf("retry_in logged as %v; want text such as \"5s\"", r.Kinds["retry_in"])
		}
		if r.Level > slog.LevelDebug && r.Attrs["probe"] == "true" {
			t.Errorf("a probe's failure logged at %v; want debug: the destination's log says it once", r.Level)
		}
	}

	got := f.comesBack(n, items)
	if got[0].ID != oldest {
		t.Errorf("first delivery after the return %s; want the probe, the oldest %s", got[0].ID, oldest)
	}
	rec := f.log.find("destination recovered: its waiting notifications go now")
	if len(rec) != 1 || rec[0].Attrs["failing_for"] != "2m5s" || rec[0].Kinds["failing_for"] != slog.KindString ||
		rec[0].Attrs["waiting"] != "500" || rec[0].Attrs["probes"] != "25" {
		t.Errorf("recovery log records %+v; want one, failing_for \"2m5s\" as text, 500 waiting, 25 probes", rec)
	}
	if h := f.ob.Health("hook"); h.State != StateHealthy || h.FailingSince != nil {
		t.Errorf("health after the return %+v", h)
	}
	if up := f.metric("nocbridge_destination_up", "destination", "hook"); up != 1 {
		t.Errorf("nocbridge_destination_up = %v after the return", up)
	}
}

// TestProbeWaitsForALongerRetryAfter: a Retry-After longer than the probe
// interval spaces the probes.
func TestProbeWaitsForALongerRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	slowDown := &notify.Error{Retryable: true, Status: 429, RetryAfter: 30 * time.Second, Reason: "HTTP 429: slow down"}
	n := f.fake(always(slowDown))
	f.ob.SetDestinations([]Destination{shippedDest("hook", n)})
	f.storm("hook", "inst", 20)
	start := f.clock.Now()
	f.run()
	f.runFor(2 * time.Minute)
	var at []time.Duration
	for _, c := range n.got() {
		if c.At.After(start) {
			at = append(at, c.At.Sub(start))
		}
	}
	if want := []time.Duration{30 * time.Second, time.Minute, 90 * time.Second, 2 * time.Minute}; !slices.Equal(at, want) {
		t.Errorf("probes at %v; want every 30s, as Retry-After asks", at)
	}
}

// TestMaxAgeDeadLettersWhileWaiting: notifications waiting for a failing
// destination go to the dead letters at their max_age, without a request;
// younger ones wait on and are delivered when it is back.
func TestMaxAgeDeadLettersWhileWaiting(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(always(errUnavailable))
	d := shippedDest("hook", n)
	d.Retry.MaxAge = time.Minute
	f.ob.SetDestinations([]Destination{d})
	old := f.storm("hook", "old", 10)
	f.run()
	f.runFor(30 * time.Second)
	young := f.storm("hook", "young", 10)
	before := len(n.got())
	f.runFor(40 * time.Second)

	dls, err := f.ob.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var dead []string
	for _, dl := range dls {
		dead = append(dead, dl.ID)
		if !strings.HasPrefix(dl.Reason, errUnavailable.Error()) || !strings.Contains(dl.Reason, "retry.max_age 1m0s reached") {
			t.Errorf("dead letter %s reason %q; want the destination's failure and max_age", dl.ID, dl.Reason)
		}
		if dl.Attempts > 0 && dl.Status != 503 {
			t.Errorf("dead letter %s: %d attempts, status %d; want the last one's 503", dl.ID, dl.Attempts, dl.Status)
		}
	}
	if !sameSet(dead, old) {
		t.Errorf("dead letters %v; want the 10 older than max_age", dead)
	}
	// 8 probes in the 40s; dead-lettering sends nothing.
	if extra := len(n.got()) - before; extra != 8 {
		t.Errorf("%d requests in 40s while failing; want 8 probes", extra)
	}
	if p := f.ob.Pending()["hook"]; p != 10 {
		t.Errorf("%d pending; want the 10 younger ones", p)
	}

	n.setAnswer(always(nil))
	sent := len(n.got())
	f.advanceUntil("the young ones delivered", func() bool { return f.ob.Pending()["hook"] == 0 })
	var got []string
	for _, c := range since(n, sent) {
		got = append(got, c.ID)
	}
	if !sameSet(got, young) {
		t.Errorf("delivered %v after the return; want the 10 younger ones", got)
	}
}

// TestRefusedNotificationLeavesDestinationUp: a 4xx dead-letters its one
// notification; the destination is not judged down, the others go at once.
func TestRefusedNotificationLeavesDestinationUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(func(nt notify.Notification, _ int) error {
		if strings.HasPrefix(nt.Event.InstanceID, "bad") {
			return notify.StatusError(422, []byte("unprocessable"), 0)
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{shippedDest("hook", n)})
	f.storm("hook", "bad", 5)
	f.storm("hook", "good", 20)
	start := f.clock.Now()
	f.run()
	waitFor(t, 5*time.Second, "all handled", func() bool { return f.ob.Pending()["hook"] == 0 })
	for _, c := range n.got() {
		if !c.At.Equal(start) {
			t.Errorf("%s sent at +%v; want at once", c.ID, c.At.Sub(start))
		}
	}
	if got := len(n.got()); got != 25 {
		t.Errorf("%d requests; want 25, each once", got)
	}
	if dls, _ := f.ob.DeadLetters(context.Background()); len(dls) != 5 {
		t.Errorf("%d dead letters; want the 5 refused", len(dls))
	}
	if h := f.ob.Health("hook"); h.State != StateHealthy {
		t.Errorf("health %+v; want healthy", h)
	}
	if got := f.metric("nocbridge_destination_up", "destination", "hook"); got != 1 || len(f.log.find("destination failing: only its oldest notification is tried until one is delivered")) != 0 {
		t.Errorf("nocbridge_destination_up = %v, or a failing log: refusals must not judge the destination down", got)
	}
}

// refusesBad runs the outbox on destination "hook", the shipped retry
// block, jitter at the top of its window, and a receiver that answers 503
// to alert instance "bad" and takes the rest.
func (f *fixture) refusesBad() *fakeNotifier {
	f.ob.randN = func(n int64) int64 { return n - 1 }
	n := f.fake(func(nt notify.Notification, _ int) error {
		if nt.Event.InstanceID == "bad" {
			return errUnavailable
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{shippedDest("hook", n)})
	f.run()
	return n
}

// TestOneFailingNotificationBacksOffAlone: one notification failing on its
// own while others are delivered backs off by retry.initial … retry.max and
// holds up nothing.
func TestOneFailingNotificationBacksOffAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.refusesBad()
	start := f.clock.Now()
	f.enqueue(Item{Destination: "hook", Event: ev("bad", event.StatusActive, 0)})
	for i := range 240 {
		e := ev(fmt.Sprintf("good-%03d", i), event.StatusActive, 0)
		at := f.clock.Now()
		f.enqueue(Item{Destination: "hook", Event: e})
		waitFor(t, 5*time.Second, "the good one", func() bool { return len(n.callsFor(e.NotificationID("hook"))) == 1 })
		if c := n.callsFor(e.NotificationID("hook"))[0]; !c.At.Equal(at) {
			t.Fatalf("good notification %d went %v after it came; want at once", i, c.At.Sub(at))
		}
		if h := f.ob.Health("hook"); h.State != StateHealthy {
			t.Fatalf("destination %s after good notification %d; one failing notification must not judge it down", h.State, i)
		}
		f.runFor(500 * time.Millisecond)
	}
	var at []time.Duration
	for _, c := range n.callsFor(ev("bad", event.StatusActive, 0).NotificationID("hook")) {
		at = append(at, c.At.Sub(start))
	}
	want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 31 * time.Second, 63 * time.Second}
	if !slices.Equal(at, want) {
		t.Errorf("the failing notification was tried at %v; want its own backoff, %v", at, want)
	}
}

// TestLoneFailingNotificationStepsAside: a destination whose only
// notification keeps failing is probed like a down one; a second
// notification is tried at the next probe, and when it is delivered the
// first goes on its own backoff, holding nothing up.
func TestLoneFailingNotificationStepsAside(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.refusesBad()
	bad := ev("bad", event.StatusActive, 0)
	f.enqueue(Item{Destination: "hook", Event: bad})
	f.runFor(22 * time.Second)
	if h := f.ob.Health("hook"); h.State != StateFailing {
		t.Fatalf("health %+v with its only notification failing 3 times; want failing (nothing tells it from a receiver that is down)", h)
	}
	good := ev("good", event.StatusActive, 0)
	at := f.clock.Now()
	f.enqueue(Item{Destination: "hook", Event: good})
	f.advanceUntil("the good one", func() bool { return len(n.callsFor(good.NotificationID("hook"))) == 1 })
	if wait := n.callsFor(good.NotificationID("hook"))[0].At.Sub(at); wait > 5*time.Second {
		t.Errorf("the good notification waited %v; want at most one probe interval", wait)
	}
	f.runFor(0)
	if h := f.ob.Health("hook"); h.State != StateHealthy {
		t.Errorf("health %+v after a delivery; want healthy", h)
	}
	if recs := f.log.find("probe steps aside: another notification is tried, this one goes on its own backoff"); len(recs) != 1 || recs[0].Attrs["id"] != bad.NotificationID("hook") {
		t.Errorf("step-aside log records %+v; want one naming the failing notification", recs)
	}
	// From here it backs off on its own: a minute on, few more tries, the
	// destination healthy.
	tries := len(n.callsFor(bad.NotificationID("hook")))
	f.runFor(time.Minute)
	if more := len(n.callsFor(bad.NotificationID("hook"))) - tries; more > 3 {
		t.Errorf("%d more tries of the failing notification in a minute; want its own backoff (at most 3)", more)
	}
	if h := f.ob.Health("hook"); h.State != StateHealthy {
		t.Errorf("health %+v; a suspect notification's failures must not judge the destination down again", h)
	}
}

// TestFailingOldestStepsAsideAfterRetryMax: when the oldest notification
// fails on its own but a blip judged the destination down, the probe moves
// on once it was the probe for retry.max, and the others flow again.
func TestFailingOldestStepsAsideAfterRetryMax(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(func(nt notify.Notification, calls int) error {
		if nt.Event.InstanceID == "bad-00" || calls == 1 { // the others fail once: a blip
			return errUnavailable
		}
		return nil
	})
	f.ob.SetDestinations([]Destination{shippedDest("hook", n)})
	bad := f.storm("hook", "bad", 1)[0]
	others := f.storm("hook", "other", 5)
	start := f.clock.Now()
	f.run()
	f.advanceUntil("the others delivered", func() bool { return f.ob.Pending()["hook"] == 1 })
	var badProbes int // then it steps aside, and is tried once more at the recovery
	for _, c := range n.callsFor(bad) {
		if c.At.After(start) && !c.At.After(start.Add(5*time.Minute)) {
			badProbes++
		}
	}
	if badProbes != 60 {
		t.Errorf("the failing oldest was probed %d times; want 60: every 5s for retry.max (5m)", badProbes)
	}
	for _, id := range others {
		calls := n.callsFor(id)
		if got := calls[len(calls)-1].At.Sub(start); got < 5*time.Minute || got > 5*time.Minute+5*time.Second {
			t.Errorf("%s delivered at +%v; want once the oldest stepped aside, at about +5m", id, got)
		}
	}
	if h := f.ob.Health("hook"); h.State != StateHealthy {
		t.Errorf("health %+v; want healthy again", h)
	}
}

// TestOtherDestinationUnaffected: one destination down does not slow
// another.
func TestOtherDestinationUnaffected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	down, up := f.fake(always(errUnavailable)), f.fake(nil)
	f.ob.SetDestinations([]Destination{shippedDest("down", down), shippedDest("up", up)})
	start := f.clock.Now()
	for i := range 100 {
		e := ev(fmt.Sprintf("inst-%03d", i), event.StatusActive, 0)
		f.enqueue(Item{Destination: "down", Event: e}, Item{Destination: "up", Event: e})
	}
	f.run()
	f.runFor(time.Minute)
	for _, c := range up.got() {
		if !c.At.Equal(start) {
			t.Errorf("up: %s delivered at +%v; want at once", c.ID, c.At.Sub(start))
		}
	}
	if len(up.got()) != 100 || f.ob.Pending()["up"] != 0 {
		t.Errorf("up: %d requests, %d pending; want 100 delivered", len(up.got()), f.ob.Pending()["up"])
	}
	if h := f.ob.Health("up"); h.State != StateHealthy {
		t.Errorf("up: health %+v", h)
	}
	if h := f.ob.Health("down"); h.State != StateFailing || h.Probes != 12 {
		t.Errorf("down: health %+v; want failing, 12 probes in a minute", h)
	}
}

// TestRestartWhileFailing: the failing state is not stored; after a
// restart the destination is judged down again after one round, the
// probes go on, and everything is delivered once, in order per alert, when
// it is back.
func TestRestartWhileFailing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	n := f.fake(always(errUnavailable))
	f.ob.SetDestinations([]Destination{shippedDest("hook", n)})
	items := f.alerts("hook", "inst", 50)
	f.run()
	f.runFor(30 * time.Second)
	if h := f.ob.Health("hook"); h.State != StateFailing {
		t.Fatalf("health %+v before the restart; want failing", h)
	}

	f.restart()
	f.ob.SetDestinations([]Destination{shippedDest("hook", n)})
	restarted := f.clock.Now()
	before := len(n.got())
	f.run()
	f.runFor(30 * time.Second)
	var burst, probes int
	for _, c := range n.got()[before:] {
		if c.At.Equal(restarted) {
			burst++
		} else {
			probes++
		}
	}
	if burst > maxInFlight+failingAfter-1 || probes != 6 {
		t.Errorf("after the restart: %d attempts at once, then %d in 30s; want at most %d, then 6 probes", burst, probes, maxInFlight+failingAfter-1)
	}
	if h := f.ob.Health("hook"); h.State != StateFailing || f.ob.Pending()["hook"] != 100 {
		t.Errorf("after the restart: health %+v, %d pending; want failing, all 100 pending", h, f.ob.Pending()["hook"])
	}

	f.comesBack(n, items)
}

// TestDigestAfterOutage: a chat destination down with notifications one by
// one and in a digest; once back, both reach it within a probe interval.
func TestDigestAfterOutage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var up atomic.Bool
	answer := func() error {
		if !up.Load() {
			return errUnavailable
		}
		return nil
	}
	chat := f.digester(2, time.Minute, func(notify.Digest, int) error { return answer() })
	chat.setAnswer(func(notify.Notification, int) error { return answer() })
	d := chatDest("chat", chat)
	d.Retry = shipped
	f.ob.SetDestinations([]Destination{d})
	f.storm("chat", "inst", 10)
	f.run()
	f.runFor(3 * time.Minute)
	if h := f.ob.Health("chat"); h.State != StateFailing || len(chat.sent()) == 0 {
		t.Fatalf("health %+v, %d digest attempts; want failing, the digest tried", h, len(chat.sent()))
	}
	up.Store(true)
	back := f.clock.Now()
	f.advanceUntil("everything delivered", func() bool { return f.ob.Pending()["chat"] == 0 })
	if got := f.metric("nocbridge_digest_notifications_total", "destination", "chat"); got != 8 {
		t.Errorf("%v notifications delivered in digests; want 8", got)
	}
	last := chat.sent()[len(chat.sent())-1].At
	for _, c := range chat.got() {
		last = later(last, c.At)
	}
	if last.Sub(back) > 5*time.Second {
		t.Errorf("the last delivery came %v after the return; want within 5s", last.Sub(back))
	}
}
