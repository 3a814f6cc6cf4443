package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
	"github.com/nocbridge/nocbridge/internal/trap"
	"github.com/nocbridge/nocbridge/internal/trap/loadgen"
)

func init() { benchmarks["trap"] = runTrap }

// trapLinkDownRule is the shipped-style interface rule every trap is evaluated
// against, as the daemon would.
const trapLinkDownRule = `rules:
  - event_id: NETWORK-INTERFACES-2-301
    name: Interface down
    source: trap
    when: trap == "IF-MIB::linkDown"
    key: vars["IF-MIB::ifIndex"]
    resolve_when: trap == "IF-MIB::linkUp"
    severity: 2
    category: ALERT
    domain: Connectivity
    sub_domain: Interfaces
    description: "{{ .Device.Name }} interface {{ .Key }} is down"
`

// envTrapNetns marks the re-run of `nocbench trap` inside its own network
// namespace and holds the namespace's name.
const envTrapNetns = "NOCBENCH_TRAP_NETNS"

// runTrap measures nocbridge's trap receiver at a fixed rate (zero loss
// required) and snmptrapd at increasing rates, in the same run, with the
// same socket receive buffer and no per-trap output on either side, and
// prints the ratio of their lossless rates. The load generator runs as a
// child process (this binary, -generate) so the receiver's CPU time is its
// own. As root the whole run happens in a network namespace of its own,
// whose UDP counters then count exactly what each receiver read.
func runTrap(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("trap", flag.ContinueOnError)
	rate := fs.Int("rate", 100000, "nocbridge: traps/s that must be lossless (the issue's target); a loss there fails the run")
	higher := fs.String("higher-rates", "150000,200000", "nocbridge: higher rates to try after -rate, to find its lossless limit (empty: none)")
	duration := fs.Duration("duration", 10*time.Second, "nocbridge: how long to send")
	sources := fs.Int("sources", 16, "source addresses")
	trapdRates := fs.String("snmptrapd-rates", "5000,10000,15000,20000,30000,40000,60000,80000,100000,150000", "snmptrapd: rates to try, increasing")
	trapdDuration := fs.Duration("snmptrapd-duration", 5*time.Second, "snmptrapd: how long to send at each rate")
	rcvbuf := fs.Int("rcvbuf", 32<<20, "socket receive buffer in bytes that both receivers request (nocbridge's default); capped at net.core.rmem_max for both, since snmptrapd cannot go past it")
	minRatio := fs.Float64("min-ratio", 5, "fail unless nocbridge's lossless rate is at least this many times snmptrapd's (0: do not check)")
	generate := fs.Bool("generate", false, "internal: run the load generator and print its result as JSON")
	target := fs.String("target", "", "internal: generator target")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *generate {
		to, err := netip.ParseAddrPort(*target)
		if err != nil {
			return fmt.Errorf("-target: %w", err)
		}
		res, err := loadgen.Run(ctx, loadgen.Config{Target: to, Rate: *rate, Duration: *duration, Sources: *sources})
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	if *rcvbuf < 1 {
		return fmt.Errorf("-rcvbuf %d: want a positive size", *rcvbuf)
	}
	isolated := os.Getenv(envTrapNetns) != ""
	if !isolated && os.Geteuid() == 0 {
		return rerunInNetns(ctx, "trap", envTrapNetns)
	}

	buf, err := trapRecvBuf(*rcvbuf)
	if err != nil {
		return err
	}
	fmt.Printf("trap ingest, like for like: both receivers request a %d-byte socket receive buffer (-rcvbuf %d, capped at net.core.rmem_max,\n"+
		"which bounds net-snmp's serverRecvBuf), and neither writes anything per trap: nocbridge counts in memory, snmptrapd runs with\n"+
		"doNotLogTraps and is counted by the kernel (datagrams it read, from the namespace's /proc/net/snmp)\n\n", buf, *rcvbuf)

	ours, err := trapBenchReceiver(ctx, *rate, *duration, *sources, buf, isolated)
	if err != nil {
		return err
	}
	limit, limitIsFloor := 0, false
	if ours.lossless {
		limit, limitIsFloor = *rate, true
		more, err := parseRates(*higher)
		if err != nil {
			return fmt.Errorf("-higher-rates: %w", err)
		}
		for _, r := range more {
			fmt.Println()
			res, err := trapBenchReceiver(ctx, r, *duration, *sources, buf, isolated)
			if err != nil {
				return err
			}
			if !res.lossless {
				limitIsFloor = false
				break
			}
			limit = r
		}
	}
	fmt.Println()
	peer, err := trapBenchSnmptrapd(ctx, *trapdRates, *trapdDuration, *sources, buf, ours.rb, isolated)
	if err != nil {
		return err
	}
	fmt.Println()
	return trapVerdict(*rate, limit, limitIsFloor, peer, *minRatio, ours.lossless)
}

// trapVerdict prints the RESULT line and fails the run when nocbridge lost
// traps at -rate or the ratio to snmptrapd is below minRatio (or unknown).
func trapVerdict(rate, limit int, limitIsFloor bool, peer trapPeerResult, minRatio float64, lossless bool) error {
	if !lossless {
		fmt.Printf("RESULT: FAIL: nocbridge lost traps at %d/s, the rate it must take without loss\n", rate)
		return fmt.Errorf("trap: nocbridge lost traps at the target rate %d/s", rate)
	}
	ours := fmt.Sprintf("nocbridge lossless up to %d/s (target %d/s met", limit, rate)
	if limitIsFloor {
		ours += "; lossless at every rate tried, so its limit is higher"
	}
	ours += ")"
	var ratioErr error
	switch {
	case peer.skipped != "":
		fmt.Printf("RESULT: %s; snmptrapd not compared: %s\n", ours, peer.skipped)
		if minRatio > 0 {
			ratioErr = fmt.Errorf("trap: ratio to snmptrapd not measured: %s", peer.skipped)
		}
	case peer.best == 0:
		lower := float64(limit) / float64(peer.lowest)
		fmt.Printf("RESULT: %s; snmptrapd lost traps at every tried rate (lowest %d/s): ratio above %.1fx (target >= %.1fx)\n", ours, peer.lowest, lower, minRatio)
		if lower < minRatio {
			ratioErr = fmt.Errorf("trap: ratio to snmptrapd not established: try lower -snmptrapd-rates")
		}
	case peer.best == peer.highest:
		fmt.Printf("RESULT: %s; snmptrapd lossless at every tried rate, up to %d/s: ratio unknown (target >= %.1fx)\n", ours, peer.best, minRatio)
		if minRatio > 0 {
			ratioErr = fmt.Errorf("trap: ratio to snmptrapd not established: add higher -snmptrapd-rates")
		}
	default:
		ratio := float64(limit) / float64(peer.best)
		bound := ""
		if limitIsFloor {
			bound = "at least "
		}
		fmt.Printf("RESULT: %s, snmptrapd up to %d/s: %s%.1fx (target >= %.1fx)\n", ours, peer.best, bound, ratio, minRatio)
		if ratio < minRatio {
			ratioErr = fmt.Errorf("trap: nocbridge/snmptrapd lossless rate ratio %.1fx is below %.1fx", ratio, minRatio)
		}
	}
	return ratioErr
}

// trapRecvBuf is the receive buffer both receivers ask for: net-snmp sets
// it with plain SO_RCVBUF, which the kernel caps at net.core.rmem_max, so
// nocbridge (which, as root, could force more) asks for no more either.
func trapRecvBuf(want int) (int, error) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		return 0, fmt.Errorf("reading net.core.rmem_max: %w", err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("net.core.rmem_max %q: %w", b, err)
	}
	return min(want, rmemMax), nil
}

type trapReceiverResult struct {
	lossless bool
	rb       int // the socket's receive buffer as the kernel reports it
}

func trapBenchReceiver(ctx context.Context, rate int, duration time.Duration, sources, buf int, isolated bool) (trapReceiverResult, error) {
	rs, errs := rules.Parse([]byte(trapLinkDownRule), "bench-linkdown.yaml")
	if len(errs) > 0 {
		return trapReceiverResult{}, fmt.Errorf("bench rule: %w", errs.Err())
	}
	set := rules.NewSet(rs)
	r, err := trap.New(trap.Options{
		Listen: "127.0.0.1:0", Communities: []config.Secret{"public"}, ReadBuffer: buf,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return trapReceiverResult{}, err
	}
	var firing, evalErrs atomic.Uint64
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- r.Run(runCtx, func(o observation.Observation) {
			conds, errs := set.Evaluate(o)
			evalErrs.Add(uint64(len(errs)))
			for _, c := range conds {
				if c.Firing {
					firing.Add(1)
				}
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()
	rb, err := trapSocketRcvbuf(r.Addr().(*net.UDPAddr).Port)
	if err != nil {
		return trapReceiverResult{}, err
	}

	fmt.Printf("nocbridge trap receiver: %d v2c traps/s for %s from %d sources, linkDown rule evaluated per trap (GOMAXPROCS %d); socket rb %d\n",
		rate, duration, sources, runtime.GOMAXPROCS(0), rb)
	udp0, _ := trapUDPCounters()
	cpu0 := trapSelfCPU()
	wall0 := time.Now()
	res, err := trapGenerate(ctx, r.Addr().String(), rate, duration, sources)
	if err != nil {
		return trapReceiverResult{}, err
	}
	// Let the receiver drain what is queued.
	trapSettle(func() uint64 { return r.Stats().Total() }, res.Sent)
	cpu := trapSelfCPU() - cpu0
	wall := time.Since(wall0)
	udp1, _ := trapUDPCounters()
	s := r.Stats()
	received := s.Received[trap.Version2c]
	fmt.Printf("  sent %d (%.0f/s achieved), accepted %d, dropped by the receiver %v, rule conditions firing %d, eval errors %d\n",
		res.Sent, res.Rate(), received, s.Dropped, firing.Load(), evalErrs.Load())
	if isolated {
		fmt.Printf("  kernel: %d datagrams read from the socket, %d dropped on a full socket buffer\n",
			udp1.inDatagrams-udp0.inDatagrams, udp1.rcvbufErrors-udp0.rcvbufErrors)
	}
	fmt.Printf("  receiver CPU %.2fs over %.1fs wall = %.0f%% of one core, %.1f µs CPU per trap\n",
		cpu.Seconds(), wall.Seconds(), 100*cpu.Seconds()/wall.Seconds(), float64(cpu.Microseconds())/float64(max(received, 1)))
	lossless := received == res.Sent && firing.Load() == res.Sent
	fmt.Printf("  zero loss: %v\n", lossless)
	return trapReceiverResult{lossless: lossless, rb: rb}, nil
}

// trapGenerate runs the load generator in a child process.
func trapGenerate(ctx context.Context, target string, rate int, duration time.Duration, sources int) (loadgen.Result, error) {
	self, err := os.Executable()
	if err != nil {
		return loadgen.Result{}, err
	}
	cmd := exec.CommandContext(ctx, self, "trap", "-generate", "-target", target,
		"-rate", strconv.Itoa(rate), "-duration", duration.String(), "-sources", strconv.Itoa(sources))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return loadgen.Result{}, fmt.Errorf("load generator: %w", err)
	}
	var res loadgen.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return loadgen.Result{}, fmt.Errorf("load generator output %q: %w", out, err)
	}
	return res, nil
}

// trapSettle waits until count reaches want or stops moving for a second.
func trapSettle(count func() uint64, want uint64) {
	last, since := count(), time.Now()
	for time.Since(since) < time.Second {
		time.Sleep(20 * time.Millisecond)
		n := count()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		}
	}
}

func trapSelfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// parseRates reads a comma-separated list of positive rates.
func parseRates(list string) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		rates = append(rates, n)
	}
	return rates, nil
}

// trapPeerResult is snmptrapd's run: the highest tried rate it took
// without loss (0: none), or why it was not run.
type trapPeerResult struct {
	best, lowest, highest int
	skipped               string
}

// trapBenchSnmptrapd finds the highest tried rate at which snmptrapd reads
// every trap. It needs the namespace of its own: its count comes from the
// namespace's UDP counters, which other processes' traffic would skew.
func trapBenchSnmptrapd(ctx context.Context, rateList string, duration time.Duration, sources, buf, wantRB int, isolated bool) (trapPeerResult, error) {
	rates, err := parseRates(rateList)
	if err != nil {
		return trapPeerResult{}, fmt.Errorf("-snmptrapd-rates: %w", err)
	}
	if len(rates) == 0 {
		return trapPeerResult{skipped: "-snmptrapd-rates is empty"}, nil
	}
	bin, err := exec.LookPath("snmptrapd")
	if err != nil {
		fmt.Println("snmptrapd: not installed (net-snmp snmptrapd package); skipped")
		return trapPeerResult{skipped: "snmptrapd not installed"}, nil
	}
	if !isolated {
		fmt.Println("snmptrapd: skipped: counting its traps needs a network namespace of its own, which needs root")
		return trapPeerResult{skipped: "not root, so no network namespace to count in"}, nil
	}
	fmt.Printf("snmptrapd (%s): v2c traps for %s per rate; authCommunity log public, doNotLogTraps yes, [snmp] serverRecvBuf %d\n",
		bin, duration, buf)
	res := trapPeerResult{lowest: rates[0], highest: rates[len(rates)-1]}
	for _, rate := range rates {
		round, err := trapSnmptrapdRound(ctx, bin, rate, duration, sources, buf)
		if err != nil {
			return res, err
		}
		if round.rb != wantRB {
			return res, fmt.Errorf("snmptrapd's socket has rb %d, nocbridge's had %d: the receive buffers differ, so the comparison is void", round.rb, wantRB)
		}
		fmt.Printf("  %6d/s: sent %d, read by snmptrapd %d, dropped on a full socket buffer %d, socket rb %d, CPU %.2fs (%.1f µs per trap)\n",
			rate, round.sent, round.read, round.bufferDrops, round.rb, round.cpu.Seconds(),
			float64(round.cpu.Microseconds())/float64(max(round.read, 1)))
		if round.read != round.sent {
			break
		}
		res.best = rate
	}
	fmt.Printf("  highest lossless rate: %d/s\n", res.best)
	return res, nil
}

type trapSnmptrapdResult struct {
	sent, read, bufferDrops uint64
	cpu                     time.Duration
	rb                      int
}

func trapSnmptrapdRound(ctx context.Context, bin string, rate int, duration time.Duration, sources, buf int) (trapSnmptrapdResult, error) {
	dir, err := os.MkdirTemp("", "nocbench-snmptrapd-")
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	defer os.RemoveAll(dir)
	port, err := trapFreeUDPPort()
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	conf := filepath.Join(dir, "snmptrapd.conf")
	// Community check as nocbridge does it, no output per trap, and the
	// receive buffer nocbridge got (a library directive, hence [snmp]).
	text := fmt.Sprintf("authCommunity log public\ndoNotLogTraps yes\n[snmp] serverRecvBuf %d\n", buf)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return trapSnmptrapdResult{}, err
	}
	logPath := filepath.Join(dir, "snmptrapd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	defer logFile.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.CommandContext(ctx, bin, "-f", "-n", "-Le", "-C", "-c", conf, "udp:"+addr)
	cmd.Env = append(os.Environ(), "MIBS=", "SNMPCONFPATH="+dir, "SNMP_PERSISTENT_DIR="+dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return trapSnmptrapdResult{}, fmt.Errorf("starting snmptrapd: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	logTail := func() string { b, _ := os.ReadFile(logPath); return tail(string(b)) }

	// Ready when it has read a probe trap.
	probe, _ := loadgen.LinkDown("public", 1, 1)
	start, err := trapUDPCounters()
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := trapUDPCounters()
		if err != nil {
			return trapSnmptrapdResult{}, err
		}
		if now.inDatagrams > start.inDatagrams {
			break
		}
		if time.Now().After(deadline) {
			return trapSnmptrapdResult{}, fmt.Errorf("snmptrapd did not read a probe trap within 10s: %s", logTail())
		}
		if c, err := net.Dial("udp", addr); err == nil {
			_, _ = c.Write(probe)
			c.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a last probe still queued is read before the baseline
	rb, err := trapSocketRcvbuf(port)
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	base, err := trapUDPCounters()
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	cpu0 := trapProcCPU(cmd.Process.Pid)
	res, err := trapGenerate(ctx, addr, rate, duration, sources)
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	read := func() uint64 {
		c, _ := trapUDPCounters()
		return c.inDatagrams - base.inDatagrams
	}
	trapSettle(read, res.Sent)
	end, err := trapUDPCounters()
	if err != nil {
		return trapSnmptrapdResult{}, err
	}
	if trapProcExited(cmd.Process.Pid) {
		return trapSnmptrapdResult{}, fmt.Errorf("snmptrapd exited during the run: %s", logTail())
	}
	return trapSnmptrapdResult{sent: res.Sent, read: end.inDatagrams - base.inDatagrams, bufferDrops: end.rcvbufErrors - base.rcvbufErrors,
		cpu: trapProcCPU(cmd.Process.Pid) - cpu0, rb: rb}, nil
}

func trapFreeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// trapUDP holds the network namespace's UDP counters (/proc/net/snmp):
// InDatagrams counts datagrams applications read, RcvbufErrors those
// dropped because the socket's buffer was full.
type trapUDP struct{ inDatagrams, rcvbufErrors uint64 }

func trapUDPCounters() (trapUDP, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return trapUDP{}, err
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		var c trapUDP
		for i := 1; i < len(f) && i < len(names); i++ {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			switch names[i] {
			case "InDatagrams":
				c.inDatagrams = v
			case "RcvbufErrors":
				c.rcvbufErrors = v
			}
		}
		return c, nil
	}
	return trapUDP{}, errors.New("/proc/net/snmp has no Udp counters")
}

var ssRcvbuf = regexp.MustCompile(`\brb(\d+)`)

// trapSocketRcvbuf is the receive buffer of the UDP socket bound to port
// on 127.0.0.1, as the kernel reports it (ss skmem rb): what a receiver
// asked for is only a request.
func trapSocketRcvbuf(port int) (int, error) {
	out, err := exec.Command("ss", "-H", "-u", "-a", "-m", "-n", "src", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ss (iproute2), to read the socket receive buffer: %v: %s", err, strings.TrimSpace(string(out)))
	}
	m := ssRcvbuf.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ss shows no receive buffer for 127.0.0.1:%d: %q", port, out)
	}
	return strconv.Atoi(string(m[1]))
}

// trapProcExited reports whether a child we have not waited for is gone
// (a zombie).
func trapProcExited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) == 0 || f[0] == "Z"
}

// trapProcCPU is a process's user+system time from /proc (clock ticks of 10ms).
func trapProcCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
