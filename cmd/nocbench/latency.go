package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nocbridge/nocbridge/internal/app"
	"github.com/nocbridge/nocbridge/internal/trap/loadgen"
)

func init() { benchmarks["latency"] = runLatency }

// latencyEventID is the shipped rule every benchmark trap raises.
const latencyEventID = "NETWORK-INTERFACES-2-301"

// runLatency measures trap received → webhook POST arriving through the
// whole daemon (trap receiver, rules, alert state, outbox, webhook notifier)
// with the store fsyncing every write, as in production.
func runLatency(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("latency", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: nocbench latency [flags]\n\n"+
			"Starts the daemon in-process on a temporary state directory (fsync on every write) and sends\n"+
			"v2c linkDown traps at -rate, each for a new ifIndex and so a new alert, to its trap listener;\n"+
			"a loopback webhook receiver answering 204 notes when each alert's POST arrives. Prints the\n"+
			"latency percentiles and fails if an alert is missing, arrives twice (same webhook-id, or a\n"+
			"second alert for one ifIndex), a request is not an expected alert, or p99 exceeds -max-p99.\n\n")
		fs.PrintDefaults()
	}
	rate := fs.Int("rate", 1000, "traps (new alerts) per second")
	duration := fs.Duration("duration", 10*time.Second, "how long to send")
	maxP99 := fs.Duration("max-p99", 10*time.Millisecond, "fail when the 99th percentile latency is above this")
	rulesFile := fs.String("rules", "rules/network-interfaces.yaml", "rule file holding "+latencyEventID+" (relative to the working directory)")
	drain := fs.Duration("drain", 30*time.Second, "after the last trap, how long to wait for missing alerts")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (sending and waiting for the last alerts) to this file")
	loseResponses := fs.Int("lose-responses", 0, "drop the connection instead of answering the first N POSTs (received, but the daemon cannot know), "+
		"so it sends them again: shows that a duplicate fails the run")
	logFile := fs.String("log", "", "write the daemon's log (info and up, JSON) to this file; warnings always go to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	count := int64(*rate) * int64(*duration) / int64(time.Second)
	switch {
	case *rate < 1 || *duration <= 0:
		return fmt.Errorf("-rate %d, -duration %v: both must be positive", *rate, *duration)
	case count < 1:
		return fmt.Errorf("-rate %d for -duration %v sends no trap", *rate, *duration)
	case count > 1<<24:
		return fmt.Errorf("-rate %d for -duration %v is %d traps; at most %d", *rate, *duration, count, 1<<24)
	}
	rcv := newLatencyReceiver(int(count))
	rcv.loseFirst.Store(int64(*loseResponses))
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ld, err := startLinkDownDaemon(ctx, "latency", *rulesFile, srv.URL, *logFile, int(count))
	if err != nil {
		return err
	}
	defer ld.stop()
	d := ld.app

	fmt.Printf("latency: %d linkDown traps (one new alert each) at %d/s for %v → daemon (fsync on every write) → webhook on a loopback receiver (204); GOMAXPROCS %d\n",
		count, *rate, *duration, runtime.GOMAXPROCS(0))
	stopProfile := func() {}
	if *cpuProfile != "" {
		if stopProfile, err = latencyStartProfile(*cpuProfile); err != nil {
			return err
		}
	}
	cpu0, wall0 := trapSelfCPU(), time.Now()
	sentAt, err := latencySend(ctx, ld.target, ld.pkts, *rate)
	if err != nil {
		stopProfile()
		return err
	}
	sendTook := time.Since(wall0)
	sent := int64(len(sentAt))
	if !rcv.wait(ctx, sent, *drain) {
		fmt.Printf("  waited %v after the last trap; alerts still missing\n", *drain)
	}
	cpu, wall := trapSelfCPU()-cpu0, time.Since(wall0)
	stopProfile()

	res := rcv.results(sentAt)
	received, dropped := latencyTrapCounts(d)
	fmt.Printf("  sent %d in %v (%.0f/s); daemon: traps received %.0f, dropped %.0f\n",
		sent, sendTook.Round(time.Millisecond), float64(sent)/sendTook.Seconds(), received, dropped)
	fmt.Printf("  delivered %d of %d alerts; duplicate POSTs (same webhook-id) %d, unexpected requests %d\n",
		len(res.latencies), sent, res.dups, res.unexpected)
	lat := res.latencies
	fmt.Printf("  latency trap sent → POST received: p50 %v  p90 %v  p99 %v  max %v\n",
		pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))
	fmt.Printf("  process CPU (daemon, sender and receiver) %.2fs over %.1fs = %.0f%% of one core\n",
		cpu.Seconds(), wall.Seconds(), 100*cpu.Seconds()/wall.Seconds())

	var failed []error
	if missing := sent - int64(len(lat)); missing > 0 {
		failed = append(failed, fmt.Errorf("%d of %d alerts never reached the receiver (first missing: ifIndex %d)", missing, sent, res.firstMissing))
	}
	if res.dups > 0 {
		failed = append(failed, fmt.Errorf("%d POSTs repeated a webhook-id already received", res.dups))
	}
	if res.unexpected > 0 {
		failed = append(failed, fmt.Errorf("%d requests were not the first active %s for a sent ifIndex", res.unexpected, latencyEventID))
	}
	if p99 := pct(lat, 99); len(lat) > 0 && p99 > *maxP99 {
		failed = append(failed, fmt.Errorf("p99 %v is above the %v target", p99, *maxP99))
	}
	if len(failed) > 0 {
		return fmt.Errorf("latency benchmark failed: %w", errors.Join(failed...))
	}
	fmt.Printf("PASS: every alert delivered once, p99 %v ≤ %v\n", pct(lat, 99), *maxP99)
	return nil
}

// linkDownDaemon is the daemon latency and recovery run, with the traps
// to send it.
type linkDownDaemon struct {
	app    *app.App
	target string   // its trap listener
	pkts   [][]byte // linkDown traps, one new alert each (ifIndex i+1)
	stop   func()   // stops it, closes its log, removes its state
}

// startLinkDownDaemon starts the daemon in-process on latencyConfig in a
// temporary directory, its trap listener on a free port and every alert to
// receiverURL, and encodes n traps for it: before any clock starts, so a
// sender only writes.
func startLinkDownDaemon(ctx context.Context, name, rulesFile, receiverURL, logFile string, n int) (*linkDownDaemon, error) {
	ruleSrc, err := filepath.Abs(rulesFile)
	if err != nil {
		return nil, fmt.Errorf("-rules: %w", err)
	}
	if _, err := os.Stat(ruleSrc); err != nil {
		return nil, fmt.Errorf("-rules %s (run from the repository root or pass -rules): %w", ruleSrc, err)
	}
	var undo []func()
	ld := &linkDownDaemon{stop: func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}}
	fail := func(err error) (*linkDownDaemon, error) {
		ld.stop()
		return nil, err
	}
	dir, err := os.MkdirTemp("", "nocbench-"+name+"-")
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { _ = os.RemoveAll(dir) })
	trapPort, err := trapFreeUDPPort()
	if err != nil {
		return fail(fmt.Errorf("finding a free trap port: %w", err))
	}
	ld.target = fmt.Sprintf("127.0.0.1:%d", trapPort)
	cfgPath := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(cfgPath, []byte(latencyConfig(dir, ruleSrc, trapPort, receiverURL)), 0o600); err != nil {
		return fail(err)
	}
	logger, closeLog, err := latencyLogger(logFile)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, closeLog)
	ld.pkts = make([][]byte, n)
	for i := range ld.pkts {
		if ld.pkts[i], err = loadgen.LinkDown("public", uint32(i+1), i+1); err != nil {
			return fail(fmt.Errorf("encoding trap %d: %w", i+1, err))
		}
	}
	d, stopDaemon, err := startDaemon(ctx, cfgPath, logger)
	if err != nil {
		return fail(err)
	}
	ld.app = d
	undo = append(undo, stopDaemon)
	return ld, nil
}

// latencyConfig is the daemon's config: traps from 127.0.0.1 (one device,
// ICMP off) against the shipped interface rule, every alert to one webhook.
func latencyConfig(dir, ruleFile string, trapPort int, receiverURL string) string {
	return daemonConfig(dir, ruleFile, "127.0.0.1:0", trapPort, receiverURL)
}

// daemonConfig is latencyConfig with the HTTP API on httpListen.
func daemonConfig(dir, ruleFile, httpListen string, trapPort int, receiverURL string) string {
	return fmt.Sprintf(`state_dir: %s
http:
  listen: %s
rules: [%s]
traps:
  listen: 127.0.0.1:%d
  communities: [public]
  rate_limit_per_source: 0
devices:
  - name: bench-sw1
    address: 127.0.0.1
    site: Lab
    role: access
    icmp: {disabled: true}
destinations:
  - name: bench-hook
    type: webhook
    url: %s/hook
subscriptions:
  - name: all
    destinations: [bench-hook]
`, strconv.Quote(filepath.Join(dir, "state")), httpListen, strconv.Quote(ruleFile), trapPort, receiverURL)
}

// latencyLogger keeps the daemon's per-alert info logs (formatted, as in
// production, but discarded unless -log names a file) off the terminal.
func latencyLogger(path string) (*slog.Logger, func(), error) {
	var out io.Writer = io.Discard
	closeLog := func() {}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, nil, fmt.Errorf("-log: %w", err)
		}
		out, closeLog = f, func() { _ = f.Close() }
	}
	h := slog.NewMultiHandler(
		slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}),
		slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}),
	)
	return slog.New(h), closeLog, nil
}

// startDaemon runs the daemon in-process on cfgPath until stop, and
// returns once it is ready.
func startDaemon(ctx context.Context, cfgPath string, logger *slog.Logger) (*app.App, func(), error) {
	d, err := app.New(app.Options{ConfigPath: cfgPath, Version: "nocbench", Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()
	stop := func() {
		cancel()
		<-runDone
	}
	if err := latencyWaitReady(ctx, d, runDone); err != nil {
		cancel()
		select { // unless it already stopped (and said so), let it stop
		case <-runDone:
		case <-time.After(30 * time.Second):
		}
		return nil, nil, err
	}
	return d, stop, nil
}

func latencyWaitReady(ctx context.Context, d *app.App, runDone <-chan error) error {
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !d.Ready() {
		select {
		case err := <-runDone:
			return fmt.Errorf("daemon stopped before it was ready: %w", err)
		case <-deadline.C:
			return errors.New("daemon not ready within 30s")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func latencyStartProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// latencySend writes each pre-encoded trap at its due time (start + i/rate)
// on one connected socket and returns the moment each left, indexed by
// ifIndex-1. It sleeps between sends, so it costs next to nothing.
func latencySend(ctx context.Context, target string, pkts [][]byte, rate int) ([]time.Time, error) {
	c, err := net.Dial("udp", target)
	if err != nil {
		return nil, fmt.Errorf("trap sender: %w", err)
	}
	defer c.Close()
	sentAt := make([]time.Time, 0, len(pkts))
	start := time.Now()
	for i, p := range pkts {
		due := start.Add(time.Duration(int64(i) * int64(time.Second) / int64(rate)))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		now := time.Now()
		if _, err := c.Write(p); err != nil {
			return nil, fmt.Errorf("sending trap for ifIndex %d: %w", i+1, err)
		}
		sentAt = append(sentAt, now)
	}
	return sentAt, nil
}

// latencyTrapCounts reads the daemon's trap counters, so that a loss can be
// told apart: before the receiver (UDP) or after it (pipeline).
func latencyTrapCounts(d *app.App) (received, dropped float64) {
	mfs, err := d.Registry().Gather()
	if err != nil {
		return -1, -1
	}
	for _, mf := range mfs {
		var total *float64
		switch mf.GetName() {
		case "nocbridge_traps_received_total":
			total = &received
		case "nocbridge_traps_dropped_total":
			total = &dropped
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			*total += m.GetCounter().GetValue()
		}
	}
	return received, dropped
}

// latencyReceiver answers 204 and notes when the first POST for each
// ifIndex arrived, finding the ifIndex in the DNA Center payload's
// details.Instance (the rule's key). A webhook-id seen before is a
// duplicate delivery; a second notification (another webhook-id) for an
// ifIndex already alerted, or anything but an active NETWORK-INTERFACES-2-301,
// is unexpected.
type latencyReceiver struct {
	arrived    []atomic.Int64 // unix nanoseconds, by ifIndex-1; 0 = not yet
	delivered  atomic.Int64
	dups       atomic.Int64
	unexpected atomic.Int64
	progress   chan struct{}
	logOnce    sync.Once
	loseFirst  atomic.Int64 // requests left whose response is dropped

	mu  sync.Mutex
	ids map[string]bool // webhook-ids received
}

func newLatencyReceiver(n int) *latencyReceiver {
	return &latencyReceiver{arrived: make([]atomic.Int64, n), progress: make(chan struct{}, 1), ids: make(map[string]bool, n)}
}

func (r *latencyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now().UnixNano()
	var p struct {
		EventID string            `json:"eventId"`
		Details map[string]string `json:"details"`
	}
	err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&p)
	if r.loseFirst.Add(-1) < 0 || !loseResponse(w) {
		w.WriteHeader(http.StatusNoContent)
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	seen := r.ids[id]
	r.ids[id] = true
	r.mu.Unlock()
	if seen && id != "" {
		r.dups.Add(1)
		return
	}
	idx, aerr := strconv.Atoi(p.Details["Instance"])
	if id == "" || req.Method != http.MethodPost || err != nil || aerr != nil || p.EventID != latencyEventID ||
		p.Details["Assurance Issue Status"] != "active" || idx < 1 || idx > len(r.arrived) {
		r.unexpect(fmt.Sprintf("%s with webhook-id %q (event %q, details %v, decode error %v)", req.Method, id, p.EventID, p.Details, err))
		return
	}
	if !r.arrived[idx-1].CompareAndSwap(0, now) {
		r.unexpect(fmt.Sprintf("a second alert for ifIndex %d (webhook-id %q)", idx, id))
		return
	}
	r.delivered.Add(1)
	select {
	case r.progress <- struct{}{}:
	default:
	}
}

func (r *latencyReceiver) unexpect(what string) {
	r.unexpected.Add(1)
	r.logOnce.Do(func() { fmt.Fprintf(os.Stderr, "latency receiver: unexpected request: %s\n", what) })
}

// wait returns true once want alerts arrived, false if none arrives for
// the given idle time.
func (r *latencyReceiver) wait(ctx context.Context, want int64, idle time.Duration) bool {
	t := time.NewTimer(idle)
	defer t.Stop()
	for r.delivered.Load() < want {
		select {
		case <-r.progress:
			t.Reset(idle)
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

type latencyResults struct {
	latencies    []time.Duration // sorted
	dups         int64
	unexpected   int64
	firstMissing int // ifIndex; 0 when none is missing
}

func (r *latencyReceiver) results(sentAt []time.Time) latencyResults {
	res := latencyResults{dups: r.dups.Load(), unexpected: r.unexpected.Load()}
	res.latencies = make([]time.Duration, 0, len(sentAt))
	for i, at := range sentAt {
		ns := r.arrived[i].Load()
		if ns == 0 {
			if res.firstMissing == 0 {
				res.firstMissing = i + 1
			}
			continue
		}
		res.latencies = append(res.latencies, time.Unix(0, ns).Sub(at))
	}
	slices.Sort(res.latencies)
	return res
}
