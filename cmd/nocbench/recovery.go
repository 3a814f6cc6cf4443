package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func init() { benchmarks["recovery"] = runRecovery }

// recoveryProbeInterval is retry.probe_interval as shipped: the benchmark's
// config leaves it out, so the daemon runs on the default.
const recoveryProbeInterval = 5 * time.Second

// runRecovery measures SPEC 6's receiver that comes back, through the whole
// daemon: the webhook receiver goes down, alerts pile up, and it comes back.
func runRecovery(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("recovery", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: nocbench recovery [flags]\n\n"+
			"Starts the daemon in-process on a temporary state directory (fsync on every write, retry as shipped)\n"+
			"with one webhook destination on a loopback receiver, takes the receiver down (-mode 503: it answers\n"+
			"503; refuse: its port is closed), raises -n alerts with linkDown traps, keeps it down for -down and\n"+
			"brings it back just after the daemon's next probe failed (the worst case). Reports the requests made\n"+
			"while it was down (the goal: one per probe interval, 5s, after the first few) and the time from its\n"+
			"return to the first and the last alert's arrival (goal: -max-recovery).\n"+
			"Fails if a goal is missed, an alert is missing or arrives twice (same webhook-id), or a request is\n"+
			"not an expected alert.\n\n")
		fs.PrintDefaults()
	}
	down := fs.Duration("down", 2*time.Minute, "how long the receiver stays down")
	n := fs.Int("n", 1000, "alerts raised while it is down (one notification each)")
	mode := fs.String("mode", "503", "how the receiver is down: 503 (it answers 503 Service Unavailable) or refuse (its port is closed)")
	rate := fs.Int("rate", 1000, "traps per second raising the alerts")
	maxRecovery := fs.Duration("max-recovery", recoveryProbeInterval+time.Second,
		"fail when the last alert arrives later than this after the receiver's return (it returns just after a probe: the next one is an interval away, then the backlog goes)")
	rulesFile := fs.String("rules", "rules/network-interfaces.yaml", "rule file holding "+latencyEventID+" (relative to the working directory)")
	logFile := fs.String("log", "", "write the daemon's log (info and up, JSON) to this file; warnings always go to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raising := time.Duration(int64(*n) * int64(time.Second) / int64(max(*rate, 1)))
	switch {
	case *n < 1 || *rate < 1:
		return fmt.Errorf("-n %d, -rate %d: both must be at least 1", *n, *rate)
	case *mode != "503" && *mode != "refuse":
		return fmt.Errorf("-mode %q: want 503 or refuse", *mode)
	case *down < raising+2*recoveryProbeInterval:
		return fmt.Errorf("-down %v: want at least the %v it takes to raise -n %d alerts at -rate %d, plus two probe intervals", *down, raising, *n, *rate)
	}
	alerts := newLatencyReceiver(*n)
	rcv, err := newSwitchedReceiver(alerts)
	if err != nil {
		return err
	}
	defer rcv.close()
	ld, err := startLinkDownDaemon(ctx, "recovery", *rulesFile, "http://"+rcv.addr, *logFile, *n)
	if err != nil {
		return err
	}
	defer ld.stop()
	d := ld.app

	fmt.Printf("recovery: %d alerts (linkDown traps at %d/s) → daemon (fsync on every write, retry as shipped: probe_interval %v) → webhook receiver down (%s) for %v\n",
		*n, *rate, recoveryProbeInterval, *mode, *down)
	wentDown := time.Now()
	rcv.setDown(*mode)
	sentAt, err := latencySend(ctx, ld.target, ld.pkts, *rate)
	if err != nil {
		return err
	}
	waiting := func() bool { return metricSum(d, "nocbridge_outbox_pending") == float64(*n) }
	if err := outageWait(ctx, time.Until(wentDown.Add(*down)), waiting); err != nil {
		received, dropped := latencyTrapCounts(d)
		return fmt.Errorf("%.0f of %d notifications waiting by the end of -down (traps received %.0f, dropped %.0f): %w",
			metricSum(d, "nocbridge_outbox_pending"), *n, received, dropped, err)
	}
	fmt.Printf("  all %d waiting %.1fs after the receiver went down\n", *n, time.Since(wentDown).Seconds())
	select {
	case <-time.After(time.Until(wentDown.Add(*down))):
	case <-ctx.Done():
		return ctx.Err()
	}
	// The worst case: back just after a probe failed, so the next one is a
	// whole interval away.
	probed := metricSum(d, "nocbridge_destination_probes_total")
	if err := recoveryWaitProbe(ctx, func() bool { return metricSum(d, "nocbridge_destination_probes_total") > probed }); err != nil {
		return fmt.Errorf("waiting for the probe after -down: %w", err)
	}

	// What the daemon tried while it was down; every attempt failed, so the
	// sums over results are the failures.
	res := recoveryResult{
		n: *n, down: time.Since(wentDown), interval: recoveryProbeInterval, maxRecovery: *maxRecovery,
		attempts: int(metricSum(d, "nocbridge_notifications_total")),
		probes:   int(metricSum(d, "nocbridge_destination_probes_total")),
		seen:     -1,
	}
	if *mode == "503" {
		at := rcv.refusedTimes()
		res.seen = len(at)
		if p := res.probes; p >= 2 && p <= len(at) {
			res.spacing = at[len(at)-1].Sub(at[len(at)-p]) / time.Duration(p-1)
		}
	}
	back := time.Now()
	if err := rcv.setUp(); err != nil {
		return err
	}
	alerts.wait(ctx, int64(*n), 30*time.Second)
	lat := alerts.results(sentAt)
	res.delivered, res.dups, res.unexpected = len(lat.latencies), int(lat.dups), int(lat.unexpected)
	res.first, res.last = alerts.arrivalSpan(back)

	seen, spacing := "not seen: its port was closed", "their times not seen"
	if res.seen >= 0 {
		seen = fmt.Sprintf("%d seen by the receiver", res.seen)
	}
	if res.spacing > 0 {
		spacing = fmt.Sprintf("%v apart", res.spacing.Round(time.Millisecond))
	}
	fmt.Printf("  while down (%v): the daemon made %d requests (%s): %d at once, before it judged the receiver down, then %d probes, %s (goal: %d±1, one per %v)\n",
		res.down.Round(time.Second), res.attempts, seen, res.attempts-res.probes, res.probes, spacing, res.wantProbes(), res.interval)
	fmt.Printf("  back just after a probe; then: first alert +%v (the next probe), last +%v (goal ≤ %v); %d of %d delivered, %d duplicates, %d unexpected requests\n",
		res.first.Round(time.Millisecond), res.last.Round(time.Millisecond), res.maxRecovery, res.delivered, res.n, res.dups, res.unexpected)
	if err := res.verdict(); err != nil {
		return err
	}
	fmt.Printf("PASS: %d probes in %v while down, everything delivered once %v after the return\n", res.probes, res.down.Round(time.Second), res.last.Round(time.Millisecond))
	return nil
}

// recoveryResult is what runRecovery measured, with its goals.
type recoveryResult struct {
	n                int
	down, interval   time.Duration
	maxRecovery      time.Duration
	attempts, probes int           // made while down, by the daemon's count
	seen             int           // requests the receiver answered with 503; -1 when its port was closed
	spacing          time.Duration // mean time between the probes the receiver saw; 0 when unknown
	delivered, dups  int
	unexpected       int
	first, last      time.Duration // after the return
}

// recoveryWaitProbe polls cond until it holds, for at most two probe
// intervals; often, so that the return follows the probe closely.
func recoveryWaitProbe(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(2 * recoveryProbeInterval)
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no probe within %v", 2*recoveryProbeInterval)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// wantProbes is how many probes fit in the time down. They run from when
// the daemon judged the receiver down, a moment after it went down: one
// more or one fewer is on time.
func (r recoveryResult) wantProbes() int { return int(r.down / r.interval) }

// verdict fails the run on a missed goal or a wrong delivery.
func (r recoveryResult) verdict() error {
	var failed []error
	if want := r.wantProbes(); r.probes < want-1 || r.probes > want+1 {
		failed = append(failed, fmt.Errorf("%d probes in %v while the receiver was down; want %d±1, one per %v", r.probes, r.down.Round(time.Second), want, r.interval))
	}
	// One request may be on the wire as both are read.
	if r.seen >= 0 && (r.seen < r.attempts-1 || r.seen > r.attempts+1) {
		failed = append(failed, fmt.Errorf("the receiver saw %d requests while down, the daemon counts %d", r.seen, r.attempts))
	}
	if r.delivered != r.n {
		failed = append(failed, fmt.Errorf("only %d of %d alerts reached the receiver", r.delivered, r.n))
	} else if r.last > r.maxRecovery {
		failed = append(failed, fmt.Errorf("the last alert arrived %v after the receiver's return, later than the %v goal", r.last.Round(time.Millisecond), r.maxRecovery))
	}
	if r.dups > 0 {
		failed = append(failed, fmt.Errorf("%d deliveries repeated a webhook-id already received", r.dups))
	}
	if r.unexpected > 0 {
		failed = append(failed, fmt.Errorf("%d requests were not the first active %s for a sent ifIndex", r.unexpected, latencyEventID))
	}
	if len(failed) > 0 {
		return fmt.Errorf("recovery benchmark failed: %w", errors.Join(failed...))
	}
	return nil
}

// arrivalSpan says when the first and the last alert arrived, after t.
func (r *latencyReceiver) arrivalSpan(t time.Time) (first, last time.Duration) {
	for i := range r.arrived {
		ns := r.arrived[i].Load()
		if ns == 0 {
			continue
		}
		at := time.Unix(0, ns).Sub(t)
		if first == 0 || at < first {
			first = at
		}
		last = max(last, at)
	}
	return first, last
}

// switchedReceiver is a loopback webhook receiver that can go down and
// come back on the same address: answering 503 and counting, or with its
// port closed. Up, it hands requests to next.
type switchedReceiver struct {
	addr string
	next http.Handler
	down atomic.Bool

	mu      sync.Mutex
	srv     *http.Server // nil while its port is closed
	refused []time.Time  // when requests were answered 503
}

func newSwitchedReceiver(next http.Handler) (*switchedReceiver, error) {
	r := &switchedReceiver{next: next}
	if err := r.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *switchedReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.down.Load() {
		r.mu.Lock()
		r.refused = append(r.refused, time.Now())
		r.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	r.next.ServeHTTP(w, req)
}

func (r *switchedReceiver) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(r.srv)
	return nil
}

// setDown takes it down: mode 503 answers every request so, refuse closes
// its port and every connection.
func (r *switchedReceiver) setDown(mode string) {
	if mode == "503" {
		r.down.Store(true)
		return
	}
	r.close()
}

// setUp brings it back on its address.
func (r *switchedReceiver) setUp() error {
	r.down.Store(false)
	r.mu.Lock()
	closed := r.srv == nil
	r.mu.Unlock()
	if closed {
		return r.listen(r.addr)
	}
	return nil
}

func (r *switchedReceiver) refusedTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.refused)
}

func (r *switchedReceiver) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}
