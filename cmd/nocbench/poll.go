package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/snmp"
	"github.com/nocbridge/nocbridge/internal/snmp/netsnmp"
)

func init() { benchmarks["poll"] = runPoll }

// pollCPU is what every benchmark agent reports as its Cisco CPU; each
// result is checked against it.
const pollCPU = 37

type pollBench struct {
	agents      int
	perSnmpd    int
	port        int
	interval    time.Duration
	timeout     time.Duration
	rounds      int
	concurrency int
	budget      time.Duration
	peer        bool
}

// pollAgentAddr is the i-th agent's address, from 127.1.0.1 on; Linux
// answers all of 127.0.0.0/8 on lo.
func pollAgentAddr(i int) string {
	return fmt.Sprintf("127.%d.%d.%d", 1+i/(256*254), i/254%256, 1+i%254)
}

func runPoll(ctx context.Context, args []string) error {
	var b pollBench
	fs := flag.NewFlagSet("poll", flag.ContinueOnError)
	fs.IntVar(&b.agents, "agents", 1000, "SNMP agents (loopback addresses) to poll")
	fs.IntVar(&b.perSnmpd, "per-snmpd", 250, "agent addresses served by one snmpd process")
	fs.IntVar(&b.port, "port", 161, "UDP port of every agent")
	fs.DurationVar(&b.interval, "interval", time.Second, "poll interval; a round is spread over it")
	fs.DurationVar(&b.timeout, "timeout", 2*time.Second, "SNMP timeout per request")
	fs.IntVar(&b.rounds, "rounds", 3, "rounds to run")
	fs.IntVar(&b.concurrency, "concurrency", snmp.DefaultConcurrency, "polls in flight at once")
	fs.DurationVar(&b.budget, "budget", 5*time.Second, "a full round must complete within this")
	fs.BoolVar(&b.peer, "peer", true, "also fetch the same objects with net-snmp's snmpget, for comparison")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if b.agents < 1 || b.perSnmpd < 1 || b.rounds < 1 {
		return errors.New("poll: -agents, -per-snmpd and -rounds must be positive")
	}

	dir, err := os.MkdirTemp("", "nocbench-poll-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addrs := make([]string, b.agents)
	for i := range addrs {
		addrs[i] = pollAgentAddr(i)
	}
	startAt := time.Now()
	stopAgents, err := pollStartAgents(ctx, dir, addrs, b)
	defer stopAgents()
	if err != nil {
		return err
	}
	fmt.Printf("started %d agents in %d snmpd processes in %v\n", b.agents, (b.agents+b.perSnmpd-1)/b.perSnmpd, time.Since(startAt).Round(time.Millisecond))

	run, err := pollRunEngine(ctx, addrs, b)
	if err != nil {
		return err
	}
	var peer pollPeerRun
	if b.peer {
		if peer, err = pollRunPeer(ctx, addrs, b); err != nil {
			fmt.Fprintf(os.Stderr, "peer run skipped: %v\n", err)
			b.peer = false
		}
	}
	pollPrint(b, run, peer)
	if run.failures > 0 {
		return fmt.Errorf("poll: %d polls failed or reported a wrong CPU (first: %v)", run.failures, run.firstFailure)
	}
	if run.firstRound > b.budget {
		return fmt.Errorf("poll: the first full round over %d agents took %v, over the %v budget", b.agents, run.firstRound.Round(time.Millisecond), b.budget)
	}
	if run.slowestRound > b.budget {
		return fmt.Errorf("poll: a full round over %d agents took %v, over the %v budget", b.agents, run.slowestRound.Round(time.Millisecond), b.budget)
	}
	return nil
}

// pollStartAgents runs the snmpd processes, each bound to its share of the
// addresses; the returned function stops them all.
func pollStartAgents(ctx context.Context, dir string, addrs []string, b pollBench) (func(), error) {
	var agents []*netsnmp.Agent
	stop := func() {
		for _, a := range agents {
			a.Stop()
		}
	}
	conf := fmt.Sprintf("rocommunity public 127.0.0.0/8\noverride .1.3.6.1.4.1.9.9.109.1.1.1.1.8.1 integer %d\n", pollCPU)
	for chunk := range slices.Chunk(addrs, b.perSnmpd) {
		listen := make([]string, len(chunk))
		for i, a := range chunk {
			listen[i] = fmt.Sprintf("%s:%d", a, b.port)
		}
		a, err := netsnmp.Start(ctx, netsnmp.Config{Dir: dir, Listen: listen, Conf: conf, ReadyCommunity: "public"})
		if err != nil {
			return stop, fmt.Errorf("poll: %w", err)
		}
		agents = append(agents, a)
	}
	return stop, nil
}

type pollRun struct {
	firstRound   time.Duration   // from Run's start until every agent answered once
	rounds       []time.Duration // completion of each later round, from the previous one
	slowestRound time.Duration
	polls        int
	failures     int
	firstFailure error
	requests     []time.Duration // every SNMP request's latency
}

// pollRunEngine polls every agent for b.rounds rounds with the real engine
// and times each full round.
func pollRunEngine(ctx context.Context, addrs []string, b pollBench) (pollRun, error) {
	var run pollRun
	var mu sync.Mutex
	timing := func(t snmp.Target) (snmp.Client, error) {
		c, err := snmp.NewClient(t)
		if err != nil {
			return nil, err
		}
		return &pollTimedClient{Client: c, record: func(d time.Duration) {
			mu.Lock()
			run.requests = append(run.requests, d)
			mu.Unlock()
		}}, nil
	}
	targets := make([]snmp.Target, len(addrs))
	for i, a := range addrs {
		targets[i] = snmp.Target{Device: fmt.Sprintf("agent%05d", i), Address: a, Interval: b.interval, Timeout: b.timeout, Retries: 1,
			Profile: config.SNMPProfile{Version: "2c", Community: "public", Port: b.port}}
	}
	e := snmp.New(snmp.Options{Concurrency: b.concurrency, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Client: timing})
	e.SetTargets(targets)

	polled := map[string]int{} // successful polls per device
	perRound := make([]int, b.rounds+1)
	roundDone := make([]time.Time, b.rounds+1)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(b.rounds)*(b.interval+b.budget)+b.budget)
	defer cancel()
	start := time.Now()
	roundDone[0] = start
	report := func(o observation.Observation) {
		run.polls++
		if o.Err != nil || o.Vars["cpu"] != float64(pollCPU) {
			run.failures++
			if run.firstFailure == nil {
				run.firstFailure = fmt.Errorf("%s: reason %q err %v cpu %v", o.Device.Name, o.Reason, o.Err, o.Vars["cpu"])
			}
			return
		}
		polled[o.Device.Name]++
		if k := polled[o.Device.Name]; k <= b.rounds {
			perRound[k]++
			if perRound[k] == len(addrs) {
				roundDone[k] = time.Now()
				if k == b.rounds {
					cancel()
				}
			}
		}
	}
	if err := e.Run(ctx, report); err != nil {
		return run, err
	}
	if roundDone[b.rounds].IsZero() {
		if errors.Is(ctx.Err(), context.Canceled) {
			return run, errors.New("poll: interrupted")
		}
		return run, fmt.Errorf("poll: only %d of %d agents completed %d rounds in time (first failure: %v)", perRound[b.rounds], len(addrs), b.rounds, run.firstFailure)
	}
	run.firstRound = roundDone[1].Sub(start)
	run.slowestRound = run.firstRound
	for k := 2; k <= b.rounds; k++ {
		d := roundDone[k].Sub(roundDone[k-1])
		run.rounds = append(run.rounds, d)
		run.slowestRound = max(run.slowestRound, d)
	}
	slices.Sort(run.requests)
	return run, nil
}

// pollTimedClient times every request of the real client.
type pollTimedClient struct {
	snmp.Client
	record func(time.Duration)
}

func (c *pollTimedClient) Get(ctx context.Context, oids []string) ([]gosnmp.SnmpPDU, error) {
	start := time.Now()
	defer func() { c.record(time.Since(start)) }()
	return c.Client.Get(ctx, oids)
}

func (c *pollTimedClient) BulkWalk(ctx context.Context, root string) ([]gosnmp.SnmpPDU, error) {
	start := time.Now()
	defer func() { c.record(time.Since(start)) }()
	return c.Client.BulkWalk(ctx, root)
}

type pollPeerRun struct {
	wall     time.Duration
	failures int
}

// pollRunPeer fetches sysUpTime and the Cisco CPU row from every agent with
// net-snmp's snmpget, as many at once as the engine's concurrency: what a
// shell-script poller would do, without any discovery.
func pollRunPeer(ctx context.Context, addrs []string, b pollBench) (pollPeerRun, error) {
	bin, err := exec.LookPath("snmpget")
	if err != nil {
		return pollPeerRun{}, err
	}
	var run pollPeerRun
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	start := time.Now()
	for range b.concurrency {
		wg.Go(func() {
			for a := range work {
				out, err := exec.CommandContext(ctx, bin, "-v2c", "-c", "public", "-t", "2", "-r", "1", "-On", "-Oq",
					fmt.Sprintf("%s:%d", a, b.port), ".1.3.6.1.2.1.1.3.0", ".1.3.6.1.4.1.9.9.109.1.1.1.1.8.1").CombinedOutput()
				if err != nil || !strings.Contains(string(out), fmt.Sprintf(" %d", pollCPU)) {
					mu.Lock()
					run.failures++
					mu.Unlock()
				}
			}
		})
	}
	for _, a := range addrs {
		select {
		case work <- a:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	run.wall = time.Since(start)
	return run, ctx.Err()
}

func pollPercentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func pollPrint(b pollBench, run pollRun, peer pollPeerRun) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "SNMP poll: %d agents, interval %v, concurrency %d, %d rounds\n", b.agents, b.interval, b.concurrency, b.rounds)
	fmt.Fprintf(w, "first full round (with source discovery)\t%v\n", run.firstRound.Round(time.Millisecond))
	for i, d := range run.rounds {
		fmt.Fprintf(w, "round %d completed after the previous\t%v\n", i+2, d.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "polls\t%d (%d failed)\n", run.polls, run.failures)
	fmt.Fprintf(w, "SNMP requests\t%d, latency p50 %v p99 %v max %v\n", len(run.requests),
		pollPercentile(run.requests, 50).Round(time.Microsecond), pollPercentile(run.requests, 99).Round(time.Microsecond),
		pollPercentile(run.requests, 100).Round(time.Microsecond))
	if b.peer {
		fmt.Fprintf(w, "snmpget peer: same agents, %d at once, no discovery\t%v (%d failed)\n", b.concurrency, peer.wall.Round(time.Millisecond), peer.failures)
		if run.firstRound > 0 {
			fmt.Fprintf(w, "ratio peer / nocbridge first round\t%.2f\n", peer.wall.Seconds()/run.firstRound.Seconds())
		}
	}
	verdict := "PASS"
	if run.failures > 0 || run.slowestRound > b.budget {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "budget: every full round within %v\t%s (slowest %v)\n", b.budget, verdict, run.slowestRound.Round(time.Millisecond))
	_ = w.Flush()
}
