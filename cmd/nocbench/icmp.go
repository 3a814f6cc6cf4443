package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/rules"
)

func init() { benchmarks["icmp"] = runICMP }

// The ICMP benchmark's pass marks, for 10,000 devices at a 10s interval.
const (
	icmpMaxCPUPercent = 10
	icmpMaxRSSMB      = 100
)

// envICMPChild switches `nocbench icmp` into the child that runs the engine,
// so that the child's rusage is the engine's alone.
const envICMPChild = "NOCBENCH_ICMP_CHILD"

type icmpBench struct {
	devices  int
	interval time.Duration
	timeout  time.Duration
	rounds   int
	rules    string // glob of the rule files whose ICMP rules judge every round
}

func (b icmpBench) args() []string {
	return []string{"icmp", "-devices", strconv.Itoa(b.devices), "-interval", b.interval.String(),
		"-timeout", b.timeout.String(), "-rounds", strconv.Itoa(b.rounds), "-rules", b.rules}
}

// maxLoopbackDevices is how many 127.a.b.c addresses loopbackAddr spans.
const maxLoopbackDevices = 254 * 256 * 254

// loopbackAddr is the i-th probed address, from 127.1.0.1 on, skipping
// host bytes 0 and 255. Linux answers all of 127.0.0.0/8 on lo.
func loopbackAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + i/(256*254)), byte(i / 254 % 256), byte(1 + i%254)})
}

func runICMP(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("icmp", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nocbench icmp [flags]\n\n"+
			"Probes -devices loopback addresses (127.x.y.z) for -rounds rounds at -interval with the nocbridge\n"+
			"engine in a child process, then with fping; prints CPU, peak RSS and losses of both, and fails\n"+
			"on any loss by nocbridge, any false alert (a round of a device that answers, which the ICMP\n"+
			"rules of -rules, as shipped, would call down), CPU above %d%% of one core or RSS above %d MB.\n\n", icmpMaxCPUPercent, icmpMaxRSSMB)
		fs.PrintDefaults()
	}
	var b icmpBench
	fs.IntVar(&b.devices, "devices", 10000, "devices to probe, each on its own loopback address")
	fs.DurationVar(&b.interval, "interval", 10*time.Second, "probe interval of every device")
	fs.DurationVar(&b.timeout, "timeout", time.Second, "how long each echo waits for its reply")
	fs.IntVar(&b.rounds, "rounds", 3, "rounds per device")
	fs.StringVar(&b.rules, "rules", "rules/*.yaml", "rule files (glob, relative to the working directory) whose icmp rules judge every round")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case b.devices < 1 || b.devices > maxLoopbackDevices:
		return fmt.Errorf("-devices %d: want 1..%d", b.devices, maxLoopbackDevices)
	case b.rounds < 1:
		return fmt.Errorf("-rounds %d: want at least 1", b.rounds)
	case b.interval < time.Millisecond || b.timeout <= 0 || b.timeout > b.interval:
		return fmt.Errorf("-interval %v, -timeout %v: want 0 < timeout <= interval, interval >= 1ms", b.interval, b.timeout)
	}
	if os.Getenv(envICMPChild) == "1" {
		return icmpChild(ctx, b)
	}

	fmt.Printf("ICMP: %d loopback devices, interval %v, timeout %v, %d rounds; nocbridge first, then fping, one after the other\n",
		b.devices, b.interval, b.timeout, b.rounds)
	nb, err := runEngineChild(ctx, b)
	if err != nil {
		return err
	}
	fp, err := runFping(ctx, b)
	if err != nil {
		return err
	}
	printICMPTable(os.Stdout, b, nb, fp)

	var failed []string
	if nb.lost > 0 || nb.lossyDevices > 0 {
		failed = append(failed, fmt.Sprintf("nocbridge lost %d replies on %d devices (first: %s)", nb.lost, nb.lossyDevices, nb.firstLoss))
	}
	if nb.falseAlerts > 0 {
		failed = append(failed, fmt.Sprintf("nocbridge raised %d false alerts: rounds of answering devices that %s calls down (first: %s)",
			nb.falseAlerts, nb.icmpRules, nb.firstFalseAlert))
	}
	if nb.roundsDone < b.rounds {
		failed = append(failed, fmt.Sprintf("nocbridge completed %d of %d rounds for every device", nb.roundsDone, b.rounds))
	}
	if cpu := nb.cpuPercent(); cpu > icmpMaxCPUPercent {
		failed = append(failed, fmt.Sprintf("nocbridge CPU %.2f%% of one core > %d%%", cpu, icmpMaxCPUPercent))
	}
	if rss := nb.rssMB(); rss > icmpMaxRSSMB {
		failed = append(failed, fmt.Sprintf("nocbridge peak RSS %.1f MB > %d MB", rss, icmpMaxRSSMB))
	}
	if fp.lost > 0 {
		fmt.Printf("note: fping lost %d replies too; the machine may be overloaded\n", fp.lost)
	}
	if len(failed) > 0 {
		return fmt.Errorf("icmp benchmark failed: %s", strings.Join(failed, "; "))
	}
	fmt.Println("PASS: every device answered every round, no false alert, within the CPU and memory budget")
	return nil
}

// icmpRun is one measured process.
type icmpRun struct {
	name         string
	wall, cpu    time.Duration
	peakRSSKB    int64
	sent, lost   int
	roundsDone   int // rounds completed by every device
	lossyDevices int
	firstLoss    string
	mode         string
	rssNote      string
	// falseAlerts counts rounds the ICMP rules call down (when holds),
	// although every loopback device answers: each would be an alert once
	// it lasted the rule's for.
	falseAlerts     int
	firstFalseAlert string
	icmpRules       string // which rules judged
}

func (r icmpRun) cpuPercent() float64 { return 100 * r.cpu.Seconds() / r.wall.Seconds() }
func (r icmpRun) rssMB() float64      { return float64(r.peakRSSKB) / 1024 }

// measure runs cmd to completion: its own CPU time from wait4's rusage, its
// peak RSS from VmHWM, sampled until it exits. (ru_maxrss cannot serve: Go
// starts children with vfork semantics, and exec folds the parent's RSS into
// the child's ru_maxrss.)
func measure(cmd *exec.Cmd) (wall, cpu time.Duration, peakKB int64, err error) {
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if kb, ok := procStatusKB(status, "VmHWM:"); ok { // the high-water mark only grows: the last sample is the peak
				peakKB = kb
			}
			continue
		case err = <-done:
		}
		break
	}
	wall = time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return wall, 0, peakKB, errors.Join(err, errors.New("no rusage for the child on this platform"))
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if peakKB == 0 {
		peakKB = ru.Maxrss // exited before the first sample; Linux reports KiB
	}
	return wall, cpu, peakKB, err
}

// procStatusKB reads a field in KiB, such as "VmHWM:" (peak resident set
// size), from a /proc/PID/status file.
func procStatusKB(statusPath, field string) (int64, bool) {
	b, err := os.ReadFile(statusPath)
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb, err == nil
		}
	}
	return 0, false // a zombie has no memory left to report
}

// icmpChildReport is what the engine child prints on stdout.
type icmpChildReport struct {
	Privileged      bool   `json:"privileged"`
	ResultsPerRound []int  `json:"results_per_round"`
	Sent            int    `json:"sent"`
	Recv            int    `json:"recv"`
	DevicesWithLoss int    `json:"devices_with_loss"`
	FirstLoss       string `json:"first_loss,omitempty"`
	ICMPRules       string `json:"icmp_rules"`
	FalseAlerts     int    `json:"false_alerts"`
	FirstFalseAlert string `json:"first_false_alert,omitempty"`
	RssAnonKB       int64  `json:"rss_anon_kb"` // at exit: heap and stacks
	RssFileKB       int64  `json:"rss_file_kb"` // at exit: the mapped binary
}

func runEngineChild(ctx context.Context, b icmpBench) (icmpRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return icmpRun{}, fmt.Errorf("finding nocbench to re-run: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, b.args()...)
	cmd.Env = append(os.Environ(), envICMPChild+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	fmt.Printf("  nocbridge engine (child process)… ")
	wall, cpu, rss, err := measure(cmd)
	fmt.Printf("%v\n", wall.Round(10*time.Millisecond))
	if err != nil {
		return icmpRun{}, fmt.Errorf("engine child: %w", err)
	}
	var rep icmpChildReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return icmpRun{}, fmt.Errorf("engine child report %q: %w", out.String(), err)
	}
	run := icmpRun{name: "nocbridge", wall: wall, cpu: cpu, peakRSSKB: rss, sent: rep.Sent, lost: rep.Sent - rep.Recv,
		lossyDevices: rep.DevicesWithLoss, firstLoss: rep.FirstLoss, mode: "ping sockets",
		falseAlerts: rep.FalseAlerts, firstFalseAlert: rep.FirstFalseAlert, icmpRules: rep.ICMPRules}
	if rep.Privileged {
		run.mode = "raw sockets"
	}
	run.rssNote = fmt.Sprintf("nocbridge RSS at exit: %.1f MB anonymous (heap, stacks) + %.1f MB of the nocbench binary, which links every benchmark",
		float64(rep.RssAnonKB)/1024, float64(rep.RssFileKB)/1024)
	for _, n := range rep.ResultsPerRound {
		if n == b.devices {
			run.roundsDone++
		}
	}
	return run, nil
}

// icmpChild runs the engine until every device has completed its rounds,
// judging each round with the ICMP rules as the daemon would, then reports
// on stdout.
func icmpChild(ctx context.Context, b icmpBench) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	set, err := rules.Load([]string{b.rules})
	if err != nil {
		return fmt.Errorf("-rules %s (run from the repository root or pass -rules): %w", b.rules, err)
	}
	var ids []string
	for _, r := range set.ForSource(observation.ICMP) {
		ids = append(ids, r.EventID+" ("+r.File+")")
	}
	if len(ids) == 0 {
		return fmt.Errorf("-rules %s has no icmp rule to judge rounds with", b.rules)
	}
	e, err := icmp.New(icmp.Options{Privileged: icmp.ModeAuto, Logger: log})
	if err != nil {
		return err
	}
	targets := make([]icmp.Target, b.devices)
	index := make(map[string]int, b.devices)
	for i := range targets {
		name := fmt.Sprintf("lo-%06d", i)
		targets[i] = icmp.Target{Device: name, Address: loopbackAddr(i).String(), Interval: b.interval, Timeout: b.timeout, Count: 1}
		index[name] = i
	}
	e.SetTargets(targets)

	// Every device's first round starts within one interval.
	runCtx, cancel := context.WithTimeout(ctx, time.Duration(b.rounds+1)*b.interval+b.timeout+5*time.Second)
	defer cancel()
	done := make([]int, b.devices) // rounds completed, by device
	rep := icmpChildReport{Privileged: e.Privileged(), ResultsPerRound: make([]int, b.rounds), ICMPRules: strings.Join(ids, ", ")}
	lossy := make([]bool, b.devices)
	var evalErr error
	// report runs on the engine's scheduler goroutine only: no locking.
	report := func(o observation.Observation) {
		sent, _ := o.Vars["sent"].(int)
		recv, _ := o.Vars["recv"].(int)
		i := index[o.Device.Name]
		if done[i] == b.rounds {
			return // an extra round while the others finish
		}
		rep.ResultsPerRound[done[i]]++
		done[i]++
		rep.Sent += sent
		rep.Recv += recv
		conds, errs := set.Evaluate(o)
		for _, c := range conds {
			if c.Firing {
				rep.FalseAlerts++
				if rep.FirstFalseAlert == "" {
					rep.FirstFalseAlert = fmt.Sprintf("%s on %s %s: %d/%d answered, loss %.0f%%, err %v", c.Rule.EventID, o.Device.Name, o.Device.Address, recv, sent, o.Vars["loss"], o.Err)
				}
			}
		}
		if len(errs) > 0 && evalErr == nil {
			evalErr = errors.Join(errs...)
		}
		if (recv < sent || o.Err != nil) && !lossy[i] {
			lossy[i] = true
			rep.DevicesWithLoss++
			if rep.FirstLoss == "" {
				rep.FirstLoss = fmt.Sprintf("%s %s: %d/%d answered, err %v", o.Device.Name, o.Device.Address, recv, sent, o.Err)
			}
		}
		if rep.ResultsPerRound[b.rounds-1] == b.devices {
			cancel()
		}
	}
	if err := e.Run(runCtx, report); err != nil {
		return err
	}
	if evalErr != nil {
		return fmt.Errorf("evaluating the icmp rules: %w", evalErr)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep.RssAnonKB, _ = procStatusKB("/proc/self/status", "RssAnon:")
	rep.RssFileKB, _ = procStatusKB("/proc/self/status", "RssFile:")
	return json.NewEncoder(os.Stdout).Encode(rep)
}

var fpingSummary = regexp.MustCompile(`^(\S+)\s+: xmt/rcv/%loss = (\d+)/(\d+)/`)

func runFping(ctx context.Context, b icmpBench) (icmpRun, error) {
	if _, err := exec.LookPath("fping"); err != nil {
		return icmpRun{}, fmt.Errorf("fping is needed for the comparison (apt-get install fping): %w", err)
	}
	dir, err := os.MkdirTemp("", "nocbench-icmp-")
	if err != nil {
		return icmpRun{}, err
	}
	defer os.RemoveAll(dir)
	list := filepath.Join(dir, "targets")
	var sb strings.Builder
	for i := range b.devices {
		sb.WriteString(loopbackAddr(i).String())
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(list, []byte(sb.String()), 0o600); err != nil {
		return icmpRun{}, err
	}
	// -p: per-target period; -i: gap between any two echoes, spreading the
	// devices over the interval as nocbridge does (fping's floor is 1ms).
	gap := max(b.interval.Milliseconds()/int64(b.devices), 1)
	cmd := exec.CommandContext(ctx, "fping", "-q", "-c", strconv.Itoa(b.rounds), "-p", strconv.FormatInt(b.interval.Milliseconds(), 10),
		"-i", strconv.FormatInt(gap, 10), "-t", strconv.FormatInt(b.timeout.Milliseconds(), 10), "-f", list)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	fmt.Printf("  %s… ", strings.Join(cmd.Args, " "))
	wall, cpu, rss, err := measure(cmd)
	fmt.Printf("%v\n", wall.Round(10*time.Millisecond))
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) { // 1: some targets unreachable
		return icmpRun{}, fmt.Errorf("fping: %w: %s", err, tail(stderr.String()))
	}
	run := icmpRun{name: "fping", wall: wall, cpu: cpu, peakRSSKB: rss, roundsDone: b.rounds, mode: "raw sockets"}
	if os.Geteuid() != 0 {
		run.mode = "as installed"
	}
	seen := 0
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		m := fpingSummary.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		seen++
		xmt, _ := strconv.Atoi(m[2])
		rcv, _ := strconv.Atoi(m[3])
		run.sent += xmt
		run.lost += xmt - rcv
		if xmt < b.rounds {
			run.roundsDone = min(run.roundsDone, xmt)
		}
		if rcv < xmt {
			run.lossyDevices++
			if run.firstLoss == "" {
				run.firstLoss = sc.Text()
			}
		}
	}
	if seen != b.devices {
		return icmpRun{}, fmt.Errorf("fping summarised %d of %d targets: %s", seen, b.devices, tail(stderr.String()))
	}
	return run, nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 500 {
		s = "…" + s[len(s)-500:]
	}
	return s
}

func printICMPTable(w io.Writer, b icmpBench, nb, fp icmpRun) {
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\t%s\tnocbridge/fping\t\n", nb.name, fp.name)
	fmt.Fprintf(tw, "sockets\t%s\t%s\t\t\n", nb.mode, fp.mode)
	fmt.Fprintf(tw, "wall time\t%v\t%v\t\t\n", nb.wall.Round(10*time.Millisecond), fp.wall.Round(10*time.Millisecond))
	fmt.Fprintf(tw, "CPU time (user+sys)\t%v\t%v\t%s\t\n", nb.cpu.Round(time.Millisecond), fp.cpu.Round(time.Millisecond), ratio(nb.cpu.Seconds(), fp.cpu.Seconds()))
	fmt.Fprintf(tw, "CPU %% of one core\t%.2f%%\t%.2f%%\t%s\t\n", nb.cpuPercent(), fp.cpuPercent(), ratio(nb.cpuPercent(), fp.cpuPercent()))
	fmt.Fprintf(tw, "peak RSS\t%.1f MB\t%.1f MB\t%s\t\n", nb.rssMB(), fp.rssMB(), ratio(nb.rssMB(), fp.rssMB()))
	fmt.Fprintf(tw, "echoes sent\t%d\t%d\t\t\n", nb.sent, fp.sent)
	fmt.Fprintf(tw, "lost replies\t%d\t%d\t\t\n", nb.lost, fp.lost)
	fmt.Fprintf(tw, "devices with loss\t%d\t%d\t\t\n", nb.lossyDevices, fp.lossyDevices)
	fmt.Fprintf(tw, "rounds completed by all\t%d/%d\t%d/%d\t\t\n", nb.roundsDone, b.rounds, fp.roundsDone, b.rounds)
	// fping sends one echo per round: a lost reply is a round at 100%% loss.
	fmt.Fprintf(tw, "false alerts (rounds called down)\t%d\t%d\t\t\n", nb.falseAlerts, fp.lost)
	tw.Flush()
	fmt.Fprintln(w, nb.rssNote)
	fmt.Fprintf(w, "false alerts: rounds of devices that answer (all of 127.0.0.0/8 does) for which the when of %s holds;\n"+
		"fping's are its lost replies (one echo per round, so a lost one is a round at 100%% loss)\n", nb.icmpRules)
}
