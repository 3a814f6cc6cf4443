package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/app"
)

func init() { benchmarks["outage"] = runOutage }

// runOutage measures noise control in a core outage: -devices devices
// behind one core, all answering ICMP from inside one namespace (the core's
// kernel answers a whole /16 through a local route), the monitor routing
// that /16 through the core; the core's link going down is the outage.
func runOutage(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("outage", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: nocbench outage [flags]   (as root)\n\n"+
			"Starts the daemon in-process with one core and -devices devices behind it (parents: [core]) in a\n"+
			"network namespace of its own (deleted at the end), takes the core's link down, and reports the time\n"+
			"to the one notification, the notifications sent, CPU and RSS during the outage and the time until\n"+
			"every device is unreachable; then brings the link back and waits for the resolve. It fails if the\n"+
			"receiver gets anything but the core's active and resolve, or the active later than the rule's\n"+
			"`for` + 2 s.\n\n")
		fs.PrintDefaults()
	}
	devices := fs.Int("devices", 10000, "devices behind the core (at most 65,000: one /16)")
	rulesFile := fs.String("rules", "rules/network-devices.yaml", "rule file with the ICMP rule (relative to the working directory)")
	ruleFor := fs.Duration("for", 20*time.Second, "the ICMP rule's `for`, for the goal (the shipped rule's)")
	settle := fs.Duration("settle", 30*time.Second, "after the core's active, how long to watch for other notifications")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the outage (link down to the end of -settle) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *devices < 1 || *devices > 65000 {
		return fmt.Errorf("-devices %d: want 1..65000", *devices)
	}
	if os.Geteuid() != 0 {
		return errors.New("outage: needs root (network namespaces and routes)")
	}
	ruleSrc, err := filepath.Abs(*rulesFile)
	if err != nil {
		return err
	}
	if _, err := os.Stat(ruleSrc); err != nil {
		return fmt.Errorf("-rules %s (run from the repository root or pass -rules): %w", ruleSrc, err)
	}
	lab, err := newOutageLab()
	if err != nil {
		return err
	}
	defer lab.remove()

	rcv := &outageReceiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	dir, err := os.MkdirTemp("", "nocbench-outage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfgPath := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(cfgPath, []byte(outageConfig(dir, ruleSrc, srv.URL, *devices)), 0o600); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, stopDaemon, err := startDaemon(ctx, cfgPath, logger)
	if err != nil {
		return err
	}
	defer stopDaemon()
	total := *devices + 1
	fmt.Printf("outage: core + %d devices behind it (parents: [core]) in namespace %s, ICMP every 10s (timeout 1s), rule %s (for %v)\n",
		*devices, lab.ns, filepath.Base(ruleSrc), *ruleFor)
	start := time.Now()
	if err := outageWait(ctx, 90*time.Second, func() bool { return metricSum(d, "nocbridge_device_up") == float64(total) }); err != nil {
		return fmt.Errorf("waiting for all %d devices to answer: %w (up: %v)", total, err, metricSum(d, "nocbridge_device_up"))
	}
	fmt.Printf("  all %d devices up after %.1fs\n", total, time.Since(start).Seconds())

	stopProfile := func() {}
	if *cpuProfile != "" {
		if stopProfile, err = latencyStartProfile(*cpuProfile); err != nil {
			return err
		}
	}
	cpu0 := trapSelfCPU()
	down := time.Now()
	if err := lab.link("down"); err != nil {
		return err
	}
	var unreachableAfter time.Duration
	goal := *ruleFor + 2*time.Second
	deadline := down.Add(goal + *settle)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if unreachableAfter == 0 && metricSum(d, "nocbridge_devices_unreachable") == float64(*devices) {
			unreachableAfter = time.Since(down)
		}
		// Reading the metrics costs the process CPU too: four times a
		// second is enough to time the unreachable count.
		time.Sleep(250 * time.Millisecond)
	}
	wall := time.Since(down)
	cpu := trapSelfCPU() - cpu0
	stopProfile()
	rss, _ := procStatusKB("/proc/self/status", "VmRSS:")
	peak, _ := procStatusKB("/proc/self/status", "VmHWM:")
	during := rcv.all()

	if err := lab.link("up"); err != nil {
		return err
	}
	back := time.Now()
	if err := outageWait(ctx, 90*time.Second, func() bool { return len(rcv.all()) >= len(during)+1 }); err != nil {
		fmt.Println("  no resolve within 90s of the link coming back")
	}
	time.Sleep(15 * time.Second) // room for anything the devices behind would wrongly send
	all := rcv.all()

	fmt.Printf("  link down → first notification: %s (goal: for + 2s = %v)\n", firstAfter(during, down), goal)
	fmt.Printf("  all %d devices unreachable after: %v\n", *devices, roundOrNever(unreachableAfter))
	fmt.Printf("  during the outage (%.0fs): CPU %.2fs = %.1f%% of one core; RSS %.1f MB (peak %.1f MB, the whole benchmark process)\n",
		wall.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/wall.Seconds(), float64(rss)/1024, float64(peak)/1024)
	fmt.Printf("  link back → resolve: %s\n", firstAfter(all[len(during):], back))
	fmt.Printf("  notifications in total: %d\n", len(all))
	for _, n := range all {
		fmt.Printf("    %s %-8s %s %s\n", n.at.Format("15:04:05.000"), n.status, n.device, n.affected)
	}
	var failed []string
	if len(all) != 2 || all[0].device != "core" || all[0].status != "active" || all[1].device != "core" || all[1].status != "resolved" {
		failed = append(failed, "want exactly the core's active and resolve")
	}
	if len(during) == 0 || during[0].at.Sub(down) > goal {
		failed = append(failed, fmt.Sprintf("the core's active must come within %v", goal))
	}
	if unreachableAfter == 0 {
		failed = append(failed, "not every device became unreachable")
	}
	if len(failed) > 0 {
		return fmt.Errorf("outage benchmark failed: %s", strings.Join(failed, "; "))
	}
	fmt.Println("PASS: one notification for the outage and one for its end")
	return nil
}

// outageLab is the core namespace: a veth to the monitor, and a whole /16
// answered by its own kernel.
type outageLab struct{ ns, hostLink, devLink string }

const (
	outageMonitor = "10.255.255.1/30"
	outageCore    = "10.255.255.2"
	outageNet     = "10.77.0.0/16"
)

func newOutageLab() (*outageLab, error) {
	id := os.Getpid() % 100000
	l := &outageLab{ns: fmt.Sprintf("nocbench-outage-%d", id), hostLink: fmt.Sprintf("nboh%d", id), devLink: fmt.Sprintf("nbod%d", id)}
	l.remove() // what a killed run with this pid left
	steps := [][]string{
		{"netns", "add", l.ns},
		{"link", "add", l.hostLink, "type", "veth", "peer", "name", l.devLink, "netns", l.ns},
		{"addr", "add", outageMonitor, "dev", l.hostLink},
		{"link", "set", l.hostLink, "up"},
		{"-n", l.ns, "addr", "add", outageCore + "/30", "dev", l.devLink},
		{"-n", l.ns, "link", "set", l.devLink, "up"},
		{"-n", l.ns, "link", "set", "lo", "up"},
		{"-n", l.ns, "route", "add", "local", outageNet, "dev", "lo"},
		{"route", "add", outageNet, "via", outageCore},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			l.remove()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return l, nil
}

// link takes the core's end of its link down or up: the outage.
func (l *outageLab) link(state string) error {
	if out, err := exec.Command("ip", "-n", l.ns, "link", "set", l.devLink, state).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set %s %s: %v: %s", l.devLink, state, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l *outageLab) remove() {
	_ = exec.Command("ip", "route", "del", outageNet).Run()
	_ = exec.Command("ip", "link", "del", l.hostLink).Run()
	_ = exec.Command("ip", "netns", "del", l.ns).Run()
}

func outageConfig(dir, rules, receiver string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `state_dir: %s/state
http:
  listen: 127.0.0.1:0
rules: [%s]
icmp: {interval: 10s, timeout: 1s}
devices:
  - {name: core, address: %s, role: core}
`, dir, rules, outageCore)
	for i := range n {
		fmt.Fprintf(&b, "  - {name: dev%05d, address: 10.77.%d.%d, role: access, parents: [core]}\n", i+1, i/254, 1+i%254)
	}
	fmt.Fprintf(&b, `destinations:
  - name: hook
    type: webhook
    url: %s/hook
    retry: {initial: 100ms, max: 1s}
subscriptions:
  - name: all
    destinations: [hook]
`, receiver)
	return b.String()
}

// outageNotification is one POST the receiver got.
type outageNotification struct {
	at                       time.Time
	status, device, affected string
}

type outageReceiver struct {
	mu  sync.Mutex
	got []outageNotification
}

func (r *outageReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	var p struct {
		Details map[string]string `json:"details"`
	}
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	r.got = append(r.got, outageNotification{at: time.Now(), status: p.Details["Assurance Issue Status"],
		device: p.Details["Device Name"], affected: p.Details["Affected Devices"]})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *outageReceiver) all() []outageNotification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outageNotification(nil), r.got...)
}

// metricSum adds up every series of a metric of the daemon.
func metricSum(d *app.App, name string) float64 {
	mfs, err := d.Registry().Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

func outageWait(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func firstAfter(ns []outageNotification, t time.Time) string {
	if len(ns) == 0 {
		return "none"
	}
	return fmt.Sprintf("%.2fs (%s %s)", ns[0].at.Sub(t).Seconds(), ns[0].status, ns[0].device)
}

func roundOrNever(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return d.Round(100 * time.Millisecond).String()
}
