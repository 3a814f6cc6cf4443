package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/webhook"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/store"
)

func init() { benchmarks["outbox"] = runOutbox }

// runOutbox measures durable delivery end to end: Enqueue (fsynced) → the
// real webhook notifier → a loopback receiver answering 204 → completion
// recorded in the store (fsynced).
func runOutbox(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	load := outboxLoadFlags(fs)
	minRate := fs.Float64("min-rate", 2000, "fail below this many delivered notifications per second")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (enqueue to the last delivery) to this file")
	loseResponses := fs.Int("lose-responses", 0, "drop the connection instead of answering the first N deliveries (received, but the sender cannot know), "+
		"so the outbox sends them again: shows that a duplicate fails the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	load.cpuProfile, load.loseResponses = *cpuProfile, *loseResponses
	if err := load.check(); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "nocbench-outbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := benchStoreLogger()
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: logger}) // SyncInterval 0: fsync every write
	if err != nil {
		return err
	}
	defer st.Close()

	fmt.Printf("outbox: %d notifications, %d webhook destinations on a loopback receiver (204), %d producers, fsync on every write\n",
		load.n, load.dests, load.producers)
	res, err := measureOutbox(ctx, st, logger, *load)
	if err != nil {
		return err
	}
	res.print("  ")
	if err := outboxVerdict(load.n, len(res.lat), res.dups, res.unknown, res.rate(), *minRate); err != nil {
		return err
	}
	fmt.Printf("PASS: every notification delivered once, %.0f/s ≥ %.0f/s\n", res.rate(), *minRate)
	return nil
}

// outboxLoad is what one outbox measurement sends and how.
type outboxLoad struct {
	n, dests, producers int
	history             bool   // record alert history as the daemon does
	loseResponses       int    // drop the connection instead of answering the first N
	cpuProfile          string // "": no profile
}

// outboxLoadFlags declares the flags every outbox measurement shares.
func outboxLoadFlags(fs *flag.FlagSet) *outboxLoad {
	l := &outboxLoad{}
	fs.IntVar(&l.n, "n", 20000, "notifications to deliver")
	fs.IntVar(&l.dests, "dests", 4, "webhook destinations (all on one loopback receiver)")
	fs.IntVar(&l.producers, "producers", 8, "goroutines calling Enqueue")
	fs.BoolVar(&l.history, "history", true, "record alert history (an active entry per notification, every attempt) as the daemon does; false measures without it")
	return l
}

func (l outboxLoad) check() error {
	if l.n < 1 || l.dests < 1 || l.producers < 1 {
		return errors.New("-n, -dests and -producers must be at least 1")
	}
	return nil
}

// benchStoreLogger shows the store's and outbox's warnings only.
func benchStoreLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// outboxResult is one outbox measurement.
type outboxResult struct {
	n                  int
	enqueueTook, total time.Duration
	lat                []time.Duration // enqueue→delivered of each delivered notification, sorted
	dups, unknown      int
	hist               history.Stats
}

// rate is notifications delivered and recorded per second, end to end.
func (r outboxResult) rate() float64 { return float64(r.n) / r.total.Seconds() }

func (r outboxResult) print(indent string) {
	fmt.Printf("%senqueue:     %d in %v = %.0f/s (each durable when Enqueue returned)\n", indent, r.n, r.enqueueTook.Round(time.Millisecond), float64(r.n)/r.enqueueTook.Seconds())
	fmt.Printf("%send to end:  %d delivered and recorded in %v = %.0f/s\n", indent, len(r.lat), r.total.Round(time.Millisecond), r.rate())
	fmt.Printf("%slatency enqueue→delivered: p50 %v  p99 %v  max %v\n", indent, pct(r.lat, 50), pct(r.lat, 99), pct(r.lat, 100))
	fmt.Printf("%sreceiver:    %d duplicate deliveries, %d unexpected webhook-ids\n", indent, r.dups, r.unknown)
	fmt.Printf("%shistory:     %d entries written, %d waiting, dropped %v\n", indent, r.hist.Written, r.hist.Waiting, r.hist.Dropped)
}

// measureOutbox runs the real outbox (and alert history) on st, delivering
// load.n notifications to a loopback receiver answering 204, and times
// each from Enqueue to its arrival; it returns once all are recorded as
// delivered in the store.
func measureOutbox(ctx context.Context, st *store.Store, logger *slog.Logger, load outboxLoad) (outboxResult, error) {
	rcv := newBenchReceiver(load.n)
	rcv.loseFirst.Store(int64(load.loseResponses))
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	// Alert history records every attempt, as in the daemon.
	hist, err := history.New(ctx, st, history.Options{Retention: 24 * time.Hour, Logger: logger})
	if err != nil {
		return outboxResult{}, err
	}
	histCtx, stopHist := context.WithCancel(ctx)
	histDone := make(chan error, 1)
	go func() { histDone <- hist.Run(histCtx) }()
	defer func() {
		stopHist()
		<-histDone
	}()
	var rec history.Recorder = history.Discard
	if load.history {
		rec = hist
	}
	ob, err := outbox.New(ctx, st, outbox.Options{Logger: logger, History: rec})
	if err != nil {
		return outboxResult{}, err
	}
	var ds []outbox.Destination
	for i := range load.dests {
		name := fmt.Sprintf("bench-%d", i)
		nf, err := benchWebhook(name, fmt.Sprintf("%s/%s", srv.URL, name))
		if err != nil {
			return outboxResult{}, err
		}
		ds = append(ds, outbox.Destination{Name: name, Notifier: nf, Retry: outbox.RetryPolicy{Initial: 100 * time.Millisecond}})
	}
	ob.SetDestinations(ds)

	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- ob.Run(runCtx) }()
	defer func() {
		stop()
		<-runDone
	}()

	// Enqueued times are indexed by notification number; the receiver maps
	// each webhook-id back to it.
	n := load.n
	enqueued := make([]time.Time, n)
	items := make([]outbox.Item, n)
	for i := range items {
		ev := event.Sample("NETWORK-DEVICES-1-101", time.Now())
		ev.InstanceID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		ev.Description = fmt.Sprintf("bench-sw%d (192.0.2.1) is unreachable", i)
		items[i] = outbox.Item{Destination: ds[i%len(ds)].Name, Event: ev}
		rcv.expect(ev.NotificationID(items[i].Destination), i)
	}

	if load.cpuProfile != "" {
		stopProfile, err := latencyStartProfile(load.cpuProfile)
		if err != nil {
			return outboxResult{}, err
		}
		defer stopProfile()
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, load.producers)
	for range load.producers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				enqueued[i] = time.Now()
				// As the alert manager does for each transition it hands on.
				rec.Record(items[i].Event, history.Entry{Kind: history.KindActive, Status: items[i].Event.Status})
				if err := ob.Enqueue(ctx, items[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	res := outboxResult{n: n, enqueueTook: time.Since(start)}
	close(errs)
	if err := <-errs; err != nil {
		return outboxResult{}, err
	}

	for pendingTotal(ob) > 0 {
		select {
		case <-ctx.Done():
			return outboxResult{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	res.total = time.Since(start)

	delivered, dups, unknown := rcv.results()
	res.dups, res.unknown = dups, unknown
	res.lat = make([]time.Duration, 0, n)
	for i, at := range delivered {
		if !at.IsZero() {
			res.lat = append(res.lat, at.Sub(enqueued[i]))
		}
	}
	slices.Sort(res.lat)
	res.hist = hist.Stats()
	return res, nil
}

// outboxVerdict fails the run on a missing notification, a duplicate (the
// same webhook-id twice), a POST nobody sent, or a rate below the target.
func outboxVerdict(n, delivered, dups, unknown int, rate, minRate float64) error {
	var failed []error
	if delivered != n {
		failed = append(failed, fmt.Errorf("only %d of %d notifications reached the receiver", delivered, n))
	}
	if dups > 0 {
		failed = append(failed, fmt.Errorf("%d deliveries repeated a webhook-id already received", dups))
	}
	if unknown > 0 {
		failed = append(failed, fmt.Errorf("%d deliveries carried an unexpected webhook-id", unknown))
	}
	if rate < minRate {
		failed = append(failed, fmt.Errorf("%.0f notifications/s end to end is below the %.0f/s target", rate, minRate))
	}
	if len(failed) > 0 {
		return fmt.Errorf("outbox benchmark failed: %w", errors.Join(failed...))
	}
	return nil
}

func pendingTotal(ob *outbox.Outbox) int {
	sum := 0
	for _, v := range ob.Pending() {
		sum += v
	}
	return sum
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))].Round(10 * time.Microsecond)
}

// benchReceiver answers 204 and notes when each notification first arrived.
type benchReceiver struct {
	mu        sync.Mutex
	index     map[string]int // webhook-id → notification number
	delivered []time.Time
	dups      int
	unknown   int
	loseFirst atomic.Int64 // requests left whose response is dropped
}

func newBenchReceiver(n int) *benchReceiver {
	return &benchReceiver{index: make(map[string]int, n), delivered: make([]time.Time, n)}
}

func (r *benchReceiver) expect(id string, i int) {
	r.mu.Lock()
	r.index[id] = i
	r.mu.Unlock()
}

func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	switch i, ok := r.index[id]; {
	case !ok || req.Method != http.MethodPost:
		r.unknown++
	case r.delivered[i].IsZero():
		r.delivered[i] = now
	default:
		r.dups++
	}
	r.mu.Unlock()
	if r.loseFirst.Add(-1) >= 0 && loseResponse(w) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// loseResponse closes the connection without an answer, as a receiver that
// crashed after acting on a request would: the sender must send it again.
func loseResponse(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

func (r *benchReceiver) results() ([]time.Time, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delivered), r.dups, r.unknown
}

// benchWebhook builds the real webhook notifier from a config mapping, as
// the config loader does.
func benchWebhook(name, url string) (notify.Notifier, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(fmt.Sprintf("name: %s\ntype: webhook\nurl: %s\n", name, url)), &doc); err != nil {
		return nil, err
	}
	d := config.Destination{Name: name, Type: "webhook", Node: doc.Content[0], Line: 1}
	return webhook.New(d, notify.Env{ExternalURL: "http://127.0.0.1:9720", UserAgent: "nocbridge/nocbench"})
}
