package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	fs.BoolVar(&b.peer, "peer", true, "also fetch, with net-snmp's snmpget, the objects nocbridge's steady polls fetched from each agent, as many agents at once as -concurrency")
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
		if peer, err = pollRunPeer(ctx, dir, addrs, run.steadyOIDs, b); err != nil {
			fmt.Fprintf(os.Stderr, "peer run skipped: %v\n", err)
			b.peer = false
		}
	}
	pollPrint(b, run, peer)
	if b.peer && peer.failures > 0 {
		return fmt.Errorf("poll: snmpget failed on %d agents (first: %v): the comparison is void", peer.failures, peer.firstFailure)
	}
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

	// Steady polls (rounds 2 on) reuse the objects discovered in round 1:
	// one GET each. steadyOIDs is what that GET asked each agent for, which
	// the snmpget peer then asks too; steadyOther counts steady polls that
	// made other requests (a rediscovery).
	steadyOIDs   map[string][]string // by agent address
	steadyPolls  int
	steadyOther  int
	steadyCPU    time.Duration // this process's CPU from the end of round 1 to the end of the last
	steadyWall   time.Duration
	engineMaxInF int // most polls seen in flight at once
}

// pollRequest is one SNMP request a poll made.
type pollRequest struct {
	walk bool
	oids []string
}

// pollRunEngine polls every agent for b.rounds rounds with the real engine
// and times each full round.
func pollRunEngine(ctx context.Context, addrs []string, b pollBench) (pollRun, error) {
	run := pollRun{steadyOIDs: map[string][]string{}}
	var mu sync.Mutex
	current := map[string][]pollRequest{} // requests of each device's poll in flight
	inFlight := map[string]bool{}
	timing := func(t snmp.Target) (snmp.Client, error) {
		c, err := snmp.NewClient(t)
		if err != nil {
			return nil, err
		}
		return &pollTimedClient{Client: c, record: func(req pollRequest, d time.Duration) {
			mu.Lock()
			run.requests = append(run.requests, d)
			current[t.Device] = append(current[t.Device], req)
			inFlight[t.Device] = true
			run.engineMaxInF = max(run.engineMaxInF, len(inFlight))
			mu.Unlock()
		}}, nil
	}
	addrOf := make(map[string]string, len(addrs))
	targets := make([]snmp.Target, len(addrs))
	for i, a := range addrs {
		addrOf[fmt.Sprintf("agent%05d", i)] = a
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
	var cpuAfterFirst time.Duration
	report := func(o observation.Observation) {
		run.polls++
		dev := o.Device.Name
		mu.Lock()
		reqs := current[dev]
		delete(current, dev)
		delete(inFlight, dev)
		mu.Unlock()
		if o.Err == nil && polled[dev] >= 1 && polled[dev] < b.rounds {
			run.steadyPolls++
			if len(reqs) == 1 && !reqs[0].walk {
				run.steadyOIDs[addrOf[dev]] = reqs[0].oids
			} else {
				run.steadyOther++
			}
		}
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
				switch k {
				case 1:
					cpuAfterFirst = trapSelfCPU()
				case b.rounds:
					run.steadyCPU = trapSelfCPU() - cpuAfterFirst
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
	run.steadyWall = roundDone[b.rounds].Sub(roundDone[1])
	run.slowestRound = run.firstRound
	for k := 2; k <= b.rounds; k++ {
		d := roundDone[k].Sub(roundDone[k-1])
		run.rounds = append(run.rounds, d)
		run.slowestRound = max(run.slowestRound, d)
	}
	slices.Sort(run.requests)
	return run, nil
}

// pollTimedClient times and records every request of the real client.
type pollTimedClient struct {
	snmp.Client
	record func(pollRequest, time.Duration)
}

func (c *pollTimedClient) Get(ctx context.Context, oids []string) ([]gosnmp.SnmpPDU, error) {
	start := time.Now()
	defer func() { c.record(pollRequest{oids: slices.Clone(oids)}, time.Since(start)) }()
	return c.Client.Get(ctx, oids)
}

func (c *pollTimedClient) BulkWalk(ctx context.Context, root string) ([]gosnmp.SnmpPDU, error) {
	start := time.Now()
	defer func() { c.record(pollRequest{walk: true, oids: []string{root}}, time.Since(start)) }()
	return c.Client.BulkWalk(ctx, root)
}

type pollPeerRun struct {
	wall         time.Duration
	cpu          time.Duration // the snmpget processes' user+system time
	gets         int
	failures     int
	firstFailure error
}

// pollCPUOID is the Cisco CPU row every agent overrides to pollCPU.
const pollCPUOID = ".1.3.6.1.4.1.9.9.109.1.1.1.1.8.1"

// pollRunPeer fetches from every agent, with one net-snmp snmpget each,
// the objects nocbridge's steady GET asked that agent for, with the same
// timeout and retries, b.concurrency processes at once: what a
// shell-script poller that knew the objects would do.
func pollRunPeer(ctx context.Context, dir string, addrs []string, oids map[string][]string, b pollBench) (pollPeerRun, error) {
	bin, err := exec.LookPath("snmpget")
	if err != nil {
		return pollPeerRun{}, err
	}
	for _, a := range addrs {
		if len(oids[a]) == 0 {
			return pollPeerRun{}, fmt.Errorf("no steady nocbridge GET recorded for %s, so nothing to compare with", a)
		}
	}
	// As the agents: no MIB files to load for numeric OIDs.
	env := append(os.Environ(), "MIBS=", "MIBDIRS="+filepath.Join(dir, "no-mibs"))
	var run pollPeerRun
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		run.failures++
		if run.firstFailure == nil {
			run.firstFailure = err
		}
		mu.Unlock()
	}
	work := make(chan string)
	var wg sync.WaitGroup
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &before)
	start := time.Now()
	for range b.concurrency {
		wg.Go(func() {
			for a := range work {
				args := append([]string{"-v2c", "-c", "public", "-t", strconv.FormatFloat(b.timeout.Seconds(), 'f', -1, 64), "-r", "1", "-On", "-Oq",
					fmt.Sprintf("%s:%d", a, b.port)}, oids[a]...)
				cmd := exec.CommandContext(ctx, bin, args...)
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				if err == nil {
					err = pollCheckPeer(string(out), oids[a])
				}
				if err != nil {
					fail(fmt.Errorf("%s: %w: %s", a, err, tail(string(out))))
				}
			}
		})
	}
	for _, a := range addrs {
		select {
		case work <- a:
			run.gets++
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	run.wall = time.Since(start)
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &after)
	run.cpu = time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	return run, ctx.Err()
}

// pollCheckPeer wants one value per requested OID (-On -Oq lines), none
// missing, and the CPU row at pollCPU when it was asked for.
func pollCheckPeer(out string, oids []string) error {
	got := map[string]string{}
	for line := range strings.Lines(out) {
		if oid, val, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			got[oid] = val
		}
	}
	for _, oid := range oids {
		v, ok := got[oid]
		switch {
		case !ok || strings.HasPrefix(v, "No Such"):
			return fmt.Errorf("no value for %s", oid)
		case oid == pollCPUOID && v != strconv.Itoa(pollCPU):
			return fmt.Errorf("CPU %s, want %d", v, pollCPU)
		}
	}
	return nil
}

func pollPercentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func pollPrint(b pollBench, run pollRun, peer pollPeerRun) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "SNMP poll: %d agents (%d snmpd processes on 127.x.y.z port %d), v2c, timeout %v, 1 retry, interval %v, %d rounds\n",
		b.agents, (b.agents+b.perSnmpd-1)/b.perSnmpd, b.port, b.timeout, b.interval, b.rounds)
	fmt.Fprintf(w, "OIDs of a steady poll (one GET per agent, nocbridge and snmpget alike)\t%s\n", pollOIDSummary(run.steadyOIDs))
	fmt.Fprintf(w, "concurrency: nocbridge\tat most %d polls in flight (-concurrency; %d seen at once), each round spread over the %v interval\n",
		b.concurrency, run.engineMaxInF, b.interval)
	if b.peer {
		fmt.Fprintf(w, "concurrency: snmpget\t%d processes at once (-concurrency), one per agent, unpaced\n", b.concurrency)
	}
	fmt.Fprintf(w, "nocbridge first full round (discovery: walks, then GETs)\t%v\n", run.firstRound.Round(time.Millisecond))
	for i, d := range run.rounds {
		fmt.Fprintf(w, "nocbridge round %d (steady) completed after the previous\t%v\n", i+2, d.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "polls\t%d (%d failed); steady polls %d, of which %d made more than the one GET\n", run.polls, run.failures, run.steadyPolls, run.steadyOther)
	fmt.Fprintf(w, "SNMP requests\t%d, latency p50 %v p99 %v max %v\n", len(run.requests),
		pollPercentile(run.requests, 50).Round(time.Microsecond), pollPercentile(run.requests, 99).Round(time.Microsecond),
		pollPercentile(run.requests, 100).Round(time.Microsecond))
	if run.steadyPolls > 0 {
		fmt.Fprintf(w, "nocbridge CPU per steady poll\t%.0f µs (this process, rounds 2-%d)\n",
			float64(run.steadyCPU.Microseconds())/float64(run.steadyPolls), b.rounds)
	}
	if b.peer {
		fmt.Fprintf(w, "snmpget: the same GETs, once per agent\t%v (%d failed); CPU per GET %.0f µs (the snmpget processes)\n",
			peer.wall.Round(time.Millisecond), peer.failures, float64(peer.cpu.Microseconds())/float64(max(peer.gets, 1)))
		if len(run.rounds) > 0 {
			slowest := slices.Max(run.rounds)
			fmt.Fprintf(w, "ratio snmpget / nocbridge slowest steady round\t%.2f (nocbridge is paced over the interval, so this is a lower bound)\n",
				peer.wall.Seconds()/slowest.Seconds())
		}
	}
	verdict := "PASS"
	if run.failures > 0 || run.slowestRound > b.budget {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "budget: every full round within %v\t%s (slowest %v)\n", b.budget, verdict, run.slowestRound.Round(time.Millisecond))
	_ = w.Flush()
}

// pollOIDSummary lists the distinct OID sets and how many agents each.
func pollOIDSummary(byAgent map[string][]string) string {
	count := map[string]int{}
	for _, oids := range byAgent {
		count[strings.Join(oids, " ")]++
	}
	sets := slices.Sorted(maps.Keys(count))
	parts := make([]string, len(sets))
	for i, set := range sets {
		parts[i] = fmt.Sprintf("%s (%d agents)", set, count[set])
	}
	if len(parts) == 0 {
		return "none recorded"
	}
	return strings.Join(parts, "; ")
}
