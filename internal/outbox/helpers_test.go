package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history/historytest"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/store"
)

// fixture is an outbox on a real store in a temporary directory, on a
// fake clock that survives restarts.
type fixture struct {
	t     *testing.T
	dir   string
	clock *fakeClock
	st    *store.Store
	ob    *Outbox
	reg   *prometheus.Registry
	log   *logRecorder
	hist  *historytest.Recorder // what the outbox handed to history since the last open

	stop   context.CancelFunc // ends Run
	runErr error              // what Run returned, once runEnd is closed
	runEnd chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return openFixture(t, t.TempDir())
}

// openFixture opens an outbox on the state directory dir.
func openFixture(t *testing.T, dir string) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: dir, clock: newFakeClock()}
	f.open()
	t.Cleanup(f.close)
	return f
}

// open opens the store and a new outbox on it (again, after close).
func (f *fixture) open() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{Dir: f.dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.t.Fatalf("opening store: %v", err)
	}
	f.st = st
	f.reg = prometheus.NewRegistry()
	f.log = &logRecorder{}
	f.hist = &historytest.Recorder{}
	f.ob, err = New(ctx, st, Options{Logger: slog.New(f.log), Registerer: f.reg, Clock: f.clock, History: f.hist})
	if err != nil {
		st.Close()
		f.t.Fatalf("outbox.New: %v", err)
	}
}

// run starts Run; close (or stopRun) stops it.
func (f *fixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	f.stop, f.runEnd = cancel, make(chan struct{})
	ob, end := f.ob, f.runEnd
	go func() {
		f.runErr = ob.Run(ctx)
		close(end)
	}()
}

// stopRun stops Run, lets its stop grace pass on the clock and waits for
// Run to return.
func (f *fixture) stopRun() {
	f.t.Helper()
	if f.stop == nil {
		return
	}
	if grace, ok := f.cancelRun(); ok {
		f.clock.advanceTo(grace)
	}
	f.waitStopped()
}

// cancelRun ends Run's context and waits until Run has set its stop grace
// (then it returns when the grace ends) or has returned.
func (f *fixture) cancelRun() (time.Time, bool) {
	f.t.Helper()
	made := f.clock.madeCount()
	f.stop()
	timeout := time.After(10 * time.Second)
	for {
		grace, set, changed := f.clock.timerMadeAfter(made, stopGrace)
		if set {
			return grace, true
		}
		select {
		case <-f.runEnd:
			return time.Time{}, false
		case <-changed:
		case <-timeout:
			f.t.Fatal("Run neither set its stop grace nor returned within 10s of its context ending")
		}
	}
}

// waitStopped waits for Run, whose context ended, to return.
func (f *fixture) waitStopped() {
	f.t.Helper()
	select {
	case <-f.runEnd:
		if f.runErr != nil {
			f.t.Errorf("Run returned %v after cancel; want nil", f.runErr)
		}
	case <-time.After(10 * time.Second):
		f.t.Fatal("Run did not return within 10s (and its stop grace on the clock) of its context ending")
	}
	f.stop = nil
}

// ifIdle calls fn, with the outbox locked, if nothing happens in it until
// the clock moves on: no attempt under way or ready, nothing being written,
// no lane due now. waiting says whether a lane waits for a later time,
// next. ifIdle returns what fn returned, or false.
func (f *fixture) ifIdle(fn func(next time.Time, waiting bool) bool) bool {
	o := f.ob
	o.jmu.Lock()
	writing := o.flushIdle != nil || len(o.jqueue) > 0
	o.jmu.Unlock()
	if writing {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, st := range o.dests {
		if st.inflight > 0 || len(st.ready) > 0 {
			return false
		}
		for _, l := range st.lanes {
			if l.state == laneBusy || l.state == laneReady {
				return false
			}
		}
	}
	next, waiting := o.timers.Next()
	if waiting && !next.After(f.clock.Now()) {
		return false
	}
	return fn(next, waiting)
}

// advanceUntil waits until cond holds, moving the clock on to the next
// lane's due time whenever the outbox is idle: retries come at once, and
// never earlier on the clock than their backoff says. The clock moves with
// the outbox locked, so Run's timer and its queue agree.
func (f *fixture) advanceUntil(what string, cond func() bool) {
	f.t.Helper()
	waitFor(f.t, 10*time.Second, what, func() bool {
		if cond() {
			return true
		}
		f.ifIdle(func(next time.Time, waiting bool) bool {
			if waiting {
				f.clock.advanceTo(next)
			}
			return false
		})
		return false
	})
}

// waitQuiet waits until nothing is under way and no lane waits: nothing
// more will happen until the test does something.
func (f *fixture) waitQuiet() {
	f.t.Helper()
	waitFor(f.t, 10*time.Second, "the outbox to go quiet", func() bool {
		return f.ifIdle(func(_ time.Time, waiting bool) bool { return !waiting })
	})
}

// looped waits until Run has been once through its loop since looped was
// called: Run takes the second poke only after it dispatched for the first.
func (f *fixture) looped() {
	f.t.Helper()
	for range 2 {
		f.ob.wake <- struct{}{}
		waitFor(f.t, 5*time.Second, "Run to take a poke", func() bool { return len(f.ob.wake) == 0 })
	}
}

func (f *fixture) close() {
	f.stopRun()
	if f.st != nil {
		if err := f.st.Close(); err != nil {
			f.t.Errorf("closing store: %v", err)
		}
		f.st = nil
	}
}

// restart simulates a process restart: stop, close the store, open again.
func (f *fixture) restart() {
	f.close()
	f.open()
}

func (f *fixture) enqueue(items ...Item) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.ob.Enqueue(ctx, items...); err != nil {
		f.t.Fatalf("Enqueue: %v", err)
	}
}

// metric returns the value of a counter or gauge (or a histogram's count)
// with the given labels.
func (f *fixture) metric(name string, labels ...string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// waitFor polls cond, often at first, then every 2ms at the most.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := 50 * time.Microsecond; !cond(); pause = min(2*pause, 2*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}

// call is one Send the fake notifier received.
type call struct {
	ID         string
	InstanceID string
	Status     event.Status
	Attempt    int
	At         time.Time
}

// fakeNotifier answers each Send with a scripted result.
type fakeNotifier struct {
	clock  Clock
	mu     sync.Mutex
	calls  []call
	answer func(n notify.Notification, calls int) error // calls: for this id, including this one
}

// fake makes a fake notifier that notes the fixture's clock at each Send;
// a nil answer accepts everything.
func (f *fixture) fake(answer func(n notify.Notification, calls int) error) *fakeNotifier {
	if answer == nil {
		answer = func(notify.Notification, int) error { return nil }
	}
	return &fakeNotifier{clock: f.clock, answer: answer}
}

func (f *fakeNotifier) Send(ctx context.Context, n notify.Notification) error {
	f.mu.Lock()
	f.calls = append(f.calls, call{ID: n.ID, InstanceID: n.Event.InstanceID, Status: n.Event.Status, Attempt: n.Attempt, At: f.clock.Now()})
	count := 0
	for _, c := range f.calls {
		if c.ID == n.ID {
			count++
		}
	}
	answer := f.answer
	f.mu.Unlock()
	return answer(n, count)
}

func (f *fakeNotifier) setAnswer(answer func(n notify.Notification, calls int) error) {
	f.mu.Lock()
	f.answer = answer
	f.mu.Unlock()
}

func (f *fakeNotifier) got() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeNotifier) callsFor(id string) []call {
	var out []call
	for _, c := range f.got() {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

var errUnavailable = &notify.Error{Retryable: true, Status: 503, Reason: "HTTP 503: service unavailable"}

func failFirst(n int, err error) func(notify.Notification, int) error {
	return func(_ notify.Notification, calls int) error {
		if calls <= n {
			return err
		}
		return nil
	}
}

func always(err error) func(notify.Notification, int) error {
	return func(notify.Notification, int) error { return err }
}

// dest builds a destination with fast retries for tests.
func dest(name string, n notify.Notifier) Destination {
	return Destination{Name: name, Notifier: n, Retry: RetryPolicy{Initial: 20 * time.Millisecond, Max: 80 * time.Millisecond, MaxAge: time.Minute}, Timeout: 5 * time.Second}
}

var baseTime = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

// ev builds an event of an alert instance.
func ev(instance string, status event.Status, offset time.Duration) event.Event {
	return event.Event{
		InstanceID: instance, EventID: "NETWORK-DEVICES-1-101", Name: "Device unreachable",
		Description: fmt.Sprintf("%s is unreachable", instance), Category: "ALERT", Severity: 1, Source: "icmp",
		Timestamp: baseTime.Add(offset), Status: status,
		Device: inventory.Device{Name: "core-sw1", Address: "192.0.2.1", Site: "HQ", Role: "core"},
	}
}

// logRecorder is a slog handler that keeps records for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
	attrs   []slog.Attr
	parent  *logRecorder // records go to the root
}

type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
	Kinds map[string]slog.Kind // a JSON handler writes a duration as nanoseconds, a string as it is
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}, Kinds: map[string]slog.Kind{}}
	add := func(a slog.Attr) bool {
		rec.Attrs[a.Key], rec.Kinds[a.Key] = a.Value.String(), a.Value.Kind()
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	root := h.root()
	root.mu.Lock()
	root.records = append(root.records, rec)
	root.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{attrs: append(append([]slog.Attr(nil), h.attrs...), as...), parent: h.root()}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

func (h *logRecorder) root() *logRecorder {
	if h.parent != nil {
		return h.parent
	}
	return h
}

func (h *logRecorder) find(msg string) []logRecord {
	root := h.root()
	root.mu.Lock()
	defer root.mu.Unlock()
	var out []logRecord
	for _, r := range root.records {
		if r.Msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// sentDigest is one SendDigest the fake digester received.
type sentDigest struct {
	notify.Digest
	At time.Time
}

// fakeDigester is a fake notifier of a chat type: one by one through the
// fake notifier, digests recorded and answered by answer.
type fakeDigester struct {
	*fakeNotifier
	policy  notify.DigestPolicy
	dmu     sync.Mutex
	digests []sentDigest
	tries   map[string]int                         // by digest id
	answer  func(d notify.Digest, calls int) error // calls: of this digest id, this one included
}

func (f *fixture) digester(after int, window time.Duration, answer func(notify.Digest, int) error) *fakeDigester {
	if answer == nil {
		answer = func(notify.Digest, int) error { return nil }
	}
	return &fakeDigester{fakeNotifier: f.fake(nil), policy: notify.DigestPolicy{After: after, Window: window}, tries: map[string]int{}, answer: answer}
}

func (f *fakeDigester) DigestPolicy() notify.DigestPolicy { return f.policy }

func (f *fakeDigester) SendDigest(_ context.Context, d notify.Digest) error {
	f.dmu.Lock()
	f.digests = append(f.digests, sentDigest{Digest: d, At: f.clock.Now()})
	f.tries[d.ID]++
	answer, calls := f.answer, f.tries[d.ID]
	f.dmu.Unlock()
	return answer(d, calls)
}

func (f *fakeDigester) sent() []sentDigest {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	return slices.Clone(f.digests)
}

// chatDest is dest with digests.
func chatDest(name string, d *fakeDigester) Destination {
	out := dest(name, d)
	out.Digest = d
	return out
}

// storm enqueues n active notifications of new alert instances.
func (f *fixture) storm(destination, prefix string, n int) []string {
	var ids []string
	for i := range n {
		e := ev(fmt.Sprintf("%s-%02d", prefix, i), event.StatusActive, 0)
		f.enqueue(Item{Destination: destination, Event: e})
		ids = append(ids, e.NotificationID(destination))
	}
	return ids
}

func ids(ns []notify.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

// parkedStorm runs a chat destination (after 10 per minute) through a
// storm of 25: it returns once 10 went one by one and 15 are parked, with
// the storm's ids.
func (f *fixture) parkedStorm() (*fakeDigester, []string) {
	chat := f.digester(10, time.Minute, nil)
	f.ob.SetDestinations([]Destination{chatDest("chat", chat)})
	all := f.storm("chat", "inst", 25)
	f.run()
	// Parked notifications stay queued: pending counts them.
	waitFor(f.t, 5*time.Second, "10 sent and 15 parked", func() bool {
		return len(chat.got()) == 10 && f.metric("nocbridge_digest_parked", "destination", "chat") == 15 && f.ob.Pending()["chat"] == 15
	})
	return chat, all
}

// deadLetters moves the clock on until there are n dead letters and
// nothing more happens, and returns them.
func (f *fixture) deadLetters(n int) []DeadLetter {
	var dls []DeadLetter
	f.advanceUntil(fmt.Sprintf("%d dead letters", n), func() bool {
		dls, _ = f.ob.DeadLetters(context.Background())
		return len(dls) == n
	})
	f.waitQuiet()
	return dls
}
