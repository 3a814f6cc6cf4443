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
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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

// runTrap measures nocbridge's trap receiver at a fixed rate (zero loss
// required) and snmptrapd at increasing rates, in the same run, and prints
// the ratio of their lossless rates. The load generator runs as a child
// process (this binary, -generate) so the receiver's CPU time is its own.
func runTrap(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("trap", flag.ContinueOnError)
	rate := fs.Int("rate", 100000, "nocbridge: traps/s that must be lossless (the issue's target)")
	higher := fs.String("higher-rates", "150000,200000", "nocbridge: higher rates to try after -rate, to find its lossless limit (empty: none)")
	duration := fs.Duration("duration", 10*time.Second, "nocbridge: how long to send")
	sources := fs.Int("sources", 16, "source addresses")
	trapdRates := fs.String("snmptrapd-rates", "2000,5000,10000,15000,20000,25000,30000,40000", "snmptrapd: rates to try, increasing")
	trapdDuration := fs.Duration("snmptrapd-duration", 5*time.Second, "snmptrapd: how long to send at each rate")
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

	ours, err := trapBenchReceiver(ctx, *rate, *duration, *sources)
	if err != nil {
		return err
	}
	limit := 0
	if ours.lossless {
		limit = *rate
		more, err := parseRates(*higher)
		if err != nil {
			return fmt.Errorf("-higher-rates: %w", err)
		}
		for _, r := range more {
			fmt.Println()
			res, err := trapBenchReceiver(ctx, r, *duration, *sources)
			if err != nil {
				return err
			}
			if !res.lossless {
				break
			}
			limit = r
		}
	}
	fmt.Println()
	best, err := trapBenchSnmptrapd(ctx, *trapdRates, *trapdDuration, *sources)
	if err != nil {
		return err
	}
	fmt.Println()
	switch {
	case !ours.lossless:
		fmt.Printf("RESULT: nocbridge lost traps at %d/s: target missed\n", *rate)
	case best == 0:
		fmt.Printf("RESULT: snmptrapd lost traps at every tried rate; nocbridge lossless up to %d/s\n", limit)
	default:
		fmt.Printf("RESULT: nocbridge lossless up to %d/s (target %d/s met), snmptrapd up to %d/s: %.1fx (target >= 5x)\n",
			limit, *rate, best, float64(limit)/float64(best))
	}
	return nil
}

type trapReceiverResult struct{ lossless bool }

func trapBenchReceiver(ctx context.Context, rate int, duration time.Duration, sources int) (trapReceiverResult, error) {
	rs, errs := rules.Parse([]byte(trapLinkDownRule), "bench-linkdown.yaml")
	if len(errs) > 0 {
		return trapReceiverResult{}, fmt.Errorf("bench rule: %w", errs.Err())
	}
	set := rules.NewSet(rs)
	r, err := trap.New(trap.Options{
		Listen: "127.0.0.1:0", Communities: []config.Secret{"public"},
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

	fmt.Printf("nocbridge trap receiver: %d v2c traps/s for %s from %d sources, linkDown rule evaluated per trap (GOMAXPROCS %d)\n",
		rate, duration, sources, runtime.GOMAXPROCS(0))
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
	s := r.Stats()
	received := s.Received[trap.Version2c]
	fmt.Printf("  sent %d (%.0f/s achieved), received %d, dropped %v, rule conditions firing %d, eval errors %d\n",
		res.Sent, res.Rate(), received, s.Dropped, firing.Load(), evalErrs.Load())
	fmt.Printf("  receiver CPU %.2fs over %.1fs wall = %.0f%% of one core, %.1f µs CPU per trap\n",
		cpu.Seconds(), wall.Seconds(), 100*cpu.Seconds()/wall.Seconds(), float64(cpu.Microseconds())/float64(max(received, 1)))
	lossless := received == res.Sent && firing.Load() == res.Sent
	fmt.Printf("  zero loss: %v\n", lossless)
	return trapReceiverResult{lossless: lossless}, nil
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

// trapBenchSnmptrapd finds the highest tried rate snmptrapd logs every trap at.
func trapBenchSnmptrapd(ctx context.Context, rateList string, duration time.Duration, sources int) (int, error) {
	bin, err := exec.LookPath("snmptrapd")
	if err != nil {
		fmt.Println("snmptrapd: not installed (net-snmp snmptrapd package); skipped")
		return 0, nil
	}
	rates, err := parseRates(rateList)
	if err != nil {
		return 0, fmt.Errorf("-snmptrapd-rates: %w", err)
	}
	fmt.Printf("snmptrapd (%s): v2c traps for %s per rate, counting logged traps\n", bin, duration)
	best := 0
	for _, rate := range rates {
		sent, logged, cpu, err := trapSnmptrapdRound(ctx, bin, rate, duration, sources)
		if err != nil {
			return 0, err
		}
		fmt.Printf("  %6d/s: sent %d, logged %d, CPU %.2fs (%.1f µs per trap)\n", rate, sent, logged, cpu.Seconds(),
			float64(cpu.Microseconds())/float64(max(logged, 1)))
		if logged != sent {
			break
		}
		best = rate
	}
	fmt.Printf("  highest lossless rate: %d/s\n", best)
	return best, nil
}

func trapSnmptrapdRound(ctx context.Context, bin string, rate int, duration time.Duration, sources int) (sent, logged uint64, cpu time.Duration, err error) {
	dir, err := os.MkdirTemp("", "nocbench-snmptrapd-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	port, err := trapFreeUDPPort()
	if err != nil {
		return 0, 0, 0, err
	}
	conf := filepath.Join(dir, "snmptrapd.conf")
	// One line per trap makes counting exact.
	if err := os.WriteFile(conf, []byte("authCommunity log public\ndisableAuthorization yes\nformat2 TRAP %b\\n\n"), 0o600); err != nil {
		return 0, 0, 0, err
	}
	logFile := filepath.Join(dir, "traps.log")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.CommandContext(ctx, bin, "-f", "-n", "-Lf", logFile, "-C", "-c", conf, "udp:"+addr)
	cmd.Env = append(os.Environ(), "MIBS=", "SNMPCONFPATH="+dir, "SNMP_PERSISTENT_DIR="+dir)
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, fmt.Errorf("starting snmptrapd: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	// Ready when a probe trap shows up in the log.
	probe, _ := loadgen.LinkDown("public", 1, 1)
	deadline := time.Now().Add(10 * time.Second)
	for trapCountLines(logFile) < 1 {
		if time.Now().After(deadline) {
			return 0, 0, 0, errors.New("snmptrapd did not log a probe trap within 10s")
		}
		if c, err := net.Dial("udp", addr); err == nil {
			_, _ = c.Write(probe)
			c.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	base := trapCountLines(logFile)
	cpu0 := trapProcCPU(cmd.Process.Pid)
	res, err := trapGenerate(ctx, addr, rate, duration, sources)
	if err != nil {
		return 0, 0, 0, err
	}
	trapSettle(func() uint64 { return trapCountLines(logFile) - base }, res.Sent)
	return res.Sent, trapCountLines(logFile) - base, trapProcCPU(cmd.Process.Pid) - cpu0, nil
}

func trapFreeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func trapCountLines(path string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var n uint64
	r := bufio.NewReaderSize(f, 1<<20)
	buf := make([]byte, 1<<20)
	for {
		k, err := r.Read(buf)
		n += uint64(bytes.Count(buf[:k], []byte("TRAP ")))
		if err == io.EOF || err != nil {
			return n
		}
	}
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
