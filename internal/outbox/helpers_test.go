package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/store"
)

// fixture is an outbox on a real store in a temporary directory.
type fixture struct {
	t   *testing.T
	dir string
	st  *store.Store
	ob  *Outbox
	reg *prometheus.Registry
	log *logRecorder

	stop    context.CancelFunc
	stopped chan error
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
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
	f.ob, err = New(ctx, st, Options{Logger: slog.New(f.log), Registerer: f.reg})
	if err != nil {
		st.Close()
		f.t.Fatalf("outbox.New: %v", err)
	}
}

// run starts Run; close (or stopRun) stops it.
func (f *fixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	f.stop, f.stopped = cancel, make(chan error, 1)
	ob := f.ob
	go func() { f.stopped <- ob.Run(ctx) }()
}

func (f *fixture) stopRun() {
	f.t.Helper()
	if f.stop == nil {
		return
	}
	f.stop()
	select {
	case err := <-f.stopped:
		if err != nil {
			f.t.Errorf("Run returned %v after cancel; want nil", err)
		}
	case <-time.After(10 * time.Second):
		f.t.Fatal("Run did not return within 10s of its context ending")
	}
	f.stop = nil
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

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
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
	mu     sync.Mutex
	calls  []call
	answer func(n notify.Notification, calls int) error // calls: for this id, including this one
}

func newFake(answer func(n notify.Notification, calls int) error) *fakeNotifier {
	if answer == nil {
		answer = func(notify.Notification, int) error { return nil }
	}
	return &fakeNotifier{answer: answer}
}

func (f *fakeNotifier) Send(ctx context.Context, n notify.Notification) error {
	f.mu.Lock()
	f.calls = append(f.calls, call{ID: n.ID, InstanceID: n.Event.InstanceID, Status: n.Event.Status, Attempt: n.Attempt, At: time.Now()})
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
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Msg: r.Message, Attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
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
