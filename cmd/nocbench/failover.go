package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nocbridge/nocbridge/internal/cluster/lease"
	"github.com/nocbridge/nocbridge/internal/store"
)

func init() { benchmarks["failover"] = runFailover }

// envBenchChild marks a nocbench process started by another as one of its
// parts (a cluster node); go test's TestMain runs such a child's part.
const envBenchChild = "NOCBENCH_CHILD"

// failoverBucket is the lease bucket the lease-mode nodes contend in.
const failoverBucket = "nocbench_lease"

// failoverNodes is the size of the cluster the failover benchmark forms.
const failoverNodes = 3

// runFailover measures how long leadership takes to move after kill -9 of
// the leader's process, on a three-node cluster on loopback, -runs times:
// each run kills whichever node leads, times until another leads, then
// starts the killed node again on its state directory.
func runFailover(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	mode := fs.String("mode", "lease", "lease: three nocbench processes, each a clustered store running internal/cluster/lease; "+
		"daemon: three nocbridge daemons, the leader read from GET /api/v1/cluster")
	runs := fs.Int("runs", 5, "kill -9 the leader this many times")
	maxTake := fs.Duration("max", 5*time.Second, "fail when a new leader takes longer than this after a kill (SPEC 9: 5 s)")
	leaseNode := fs.Int("lease-node", 0, "internal: run as node N (1-3) of the lease mode, printing its view on stdout")
	portList := fs.String("ports", "", "internal: the three nodes' route ports, comma-separated")
	dir := fs.String("dir", "", "internal: the node's state directory")
	bin := fs.String("nocbridge", "", "daemon mode: the nocbridge binary to run (default: go build of this repository's, in a temporary directory)")
	rules := fs.String("rules", "rules/network-interfaces.yaml", "daemon mode: the daemons' rule file (relative to the working directory)")
	traps := fs.Int("traps", 300, "daemon mode: linkDown traps per run (one new alert each), spread over the live nodes, the leader killed half-way; 0: no storm")
	trapRate := fs.Int("trap-rate", 100, "daemon mode: traps per second in the storm")
	keep := fs.Bool("keep", false, "keep the nodes' state directories and logs, and print where they are")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *leaseNode > 0 {
		return leaseNodeChild(ctx, *leaseNode, *portList, *dir)
	}
	if *runs < 1 || *traps < 0 || *trapRate < 1 {
		return errors.New("-runs and -trap-rate must be at least 1, -traps at least 0")
	}
	work, err := os.MkdirTemp("", "nocbench-failover-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Printf("nodes' state and logs kept in %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	var c failoverCluster
	switch *mode {
	case "lease":
		c = &leaseCluster{}
	case "daemon":
		if c, err = newDaemonCluster(ctx, work, *bin, *rules, *runs, *traps, *trapRate); err != nil {
			return err
		}
	default:
		return fmt.Errorf("-mode %q: want lease or daemon", *mode)
	}
	fmt.Printf("failover (%s mode): %d nodes on loopback, kill -9 of the leader's process, %d runs\n", *mode, failoverNodes, *runs)
	results, err := measureFailover(ctx, c, work, *runs)
	c.stop()
	if err != nil {
		return err
	}
	return failoverVerdict(results, *maxTake)
}

// failoverCluster is a cluster of node processes whose leader can be told.
type failoverCluster interface {
	// start (re)starts node i (0-based) on its state directory under work
	// and returns once it is up.
	start(ctx context.Context, work string, i int) error
	// kill sends SIGKILL to node i's process and waits for it to die.
	kill(i int) error
	// leader is the leadership as the nodes other than skip (-1: none)
	// see it now: the node leading, its term and since when.
	leader(skip int) (node int, term uint64, since time.Time, ok bool)
	// note says what else the run depended on, read just before a kill
	// (which node held the lease bucket's stream leader).
	note(killed int) string
	// failed says why the measurement cannot go on (a node that died
	// unbidden), or nil.
	failed() error
	stop()
}

// failoverRun is one kill and the takeover that followed.
type failoverRun struct {
	killed, next     int
	oldTerm, newTerm uint64
	took             time.Duration // kill -9 → another node leads
	note             string
	restartTook      time.Duration // the killed node back up
	storm            *stormRun     // nil: no storm
}

// storming is a cluster that sends a trap storm around each kill.
type storming interface {
	trapStorm() *trapStorm // nil: no storm
	trapTargets() (ports, nodes []int)
}

// formCluster starts the nodes at once (each waits for the others).
func formCluster(ctx context.Context, c failoverCluster, work string) error {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, failoverNodes)
	for i := range failoverNodes {
		wg.Go(func() { errs[i] = c.start(ctx, work, i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("  cluster formed in %v\n", time.Since(start).Round(10*time.Millisecond))
	return nil
}

// dumping is a cluster of Go processes that can write their goroutines
// into their logs: done to a new leader that lost alerts.
type dumping interface{ dump(i int) }

// measureFailover forms the cluster, then -runs times kills the leader.
func measureFailover(ctx context.Context, c failoverCluster, work string, runs int) ([]failoverRun, error) {
	if err := formCluster(ctx, c, work); err != nil {
		return nil, err
	}
	var results []failoverRun
	for r := range runs {
		leader, term, _, err := awaitLeader(ctx, c, -1, 0, 60*time.Second)
		if err != nil {
			return results, fmt.Errorf("run %d: %w", r+1, err)
		}
		note := c.note(leader)
		// With a storm, the kill comes half-way through it.
		var storm *trapStorm
		var sentTo []int
		var sentAt []time.Time
		stormDone := make(chan error, 1)
		if s, ok := c.(storming); ok && s.trapStorm() != nil {
			storm = s.trapStorm()
			half := make(chan struct{})
			go func() {
				var err error
				sentTo, sentAt, err = storm.send(ctx, r, s.trapTargets, half)
				stormDone <- err
			}()
			select {
			case <-half:
			case err := <-stormDone:
				return results, fmt.Errorf("run %d: %w", r+1, err)
			}
		}
		killAt := time.Now()
		if err := c.kill(leader); err != nil {
			return results, fmt.Errorf("run %d: %w", r+1, err)
		}
		next, newTerm, at, err := awaitLeader(ctx, c, leader, term, 30*time.Second)
		if err != nil {
			return results, fmt.Errorf("run %d, after kill -9 of nb%d (term %d): %w", r+1, leader+1, term, err)
		}
		res := failoverRun{killed: leader, next: next, oldTerm: term, newTerm: newTerm, took: at.Sub(killAt), note: note}
		if storm != nil {
			if err := <-stormDone; err != nil {
				return results, fmt.Errorf("run %d: %w", r+1, err)
			}
			sr := storm.result(ctx, r, sentTo, sentAt, leader, killAt, 20*time.Second)
			res.storm = &sr
			if d, ok := c.(dumping); ok && sr.lost > 0 {
				// Where the new leader waits, for whoever reads its log.
				d.dump(next)
				fmt.Printf("  run %d lost alerts: nb%d's goroutines are at the end of its log (SIGQUIT); starting it again\n", r+1, next+1)
				if err := c.start(ctx, work, next); err != nil {
					return results, fmt.Errorf("run %d, starting nb%d again: %w", r+1, next+1, err)
				}
			}
		}
		restartAt := time.Now()
		if err := c.start(ctx, work, leader); err != nil {
			return results, fmt.Errorf("run %d, starting nb%d again: %w", r+1, leader+1, err)
		}
		res.restartTook = time.Since(restartAt)
		fmt.Printf("  run %d: kill -9 of nb%d (term %d) → nb%d leads (term %d) %v later; %s; nb%d back up in %v\n",
			r+1, leader+1, term, next+1, newTerm, res.took.Round(time.Millisecond), note, leader+1, res.restartTook.Round(10*time.Millisecond))
		if res.storm != nil {
			fmt.Printf("         %v\n", res.storm)
		}
		results = append(results, res)
	}
	return results, nil
}

// awaitLeader waits until the nodes other than skip see a leader other
// than skip with a term other than old (0: any), for at most within.
func awaitLeader(ctx context.Context, c failoverCluster, skip int, old uint64, within time.Duration) (int, uint64, time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		if node, term, since, ok := c.leader(skip); ok && node != skip && term != old {
			return node, term, since, nil
		}
		if err := c.failed(); err != nil {
			return 0, 0, time.Time{}, err
		}
		if time.Now().After(deadline) {
			return 0, 0, time.Time{}, fmt.Errorf("no leader after %v", within)
		}
		select {
		case <-ctx.Done():
			return 0, 0, time.Time{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// failoverVerdict prints every run and the median, and fails when a run
// took longer than maxTake or the new leader was the killed one.
func failoverVerdict(results []failoverRun, maxTake time.Duration) error {
	took := make([]time.Duration, 0, len(results))
	var failed []error
	for i, r := range results {
		took = append(took, r.took)
		if r.took > maxTake {
			failed = append(failed, fmt.Errorf("run %d: a new leader after %v, more than %v (%s)", i+1, r.took.Round(time.Millisecond), maxTake, r.note))
		}
		if s := r.storm; s != nil && (s.lost > 0 || s.secondAlerts > 0) {
			failed = append(failed, fmt.Errorf("run %d: %d of %d traps' alerts lost, %d second alerts for one trap", i+1, s.lost, s.sent, s.secondAlerts))
		}
		if r.next == r.killed {
			failed = append(failed, fmt.Errorf("run %d: the killed node nb%d still counted as leader", i+1, r.killed+1))
		}
	}
	slices.Sort(took)
	if len(took) == 0 {
		return errors.New("failover benchmark: no run completed")
	}
	median := took[len(took)/2]
	if len(took)%2 == 0 {
		median = (took[len(took)/2-1] + took[len(took)/2]) / 2
	}
	fmt.Printf("  kill -9 → new leader over %d runs: median %v, min %v, max %v\n", len(took),
		median.Round(time.Millisecond), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	if len(failed) > 0 {
		return fmt.Errorf("failover benchmark failed: %w", errors.Join(failed...))
	}
	fmt.Printf("PASS: every run had a new leader within %v\n", maxTake)
	return nil
}

// leaseCluster is three nocbench child processes, each a clustered store
// (its own embedded NATS server and directory) contending for the lease;
// each prints its view of the lease and of the Raft leaders on stdout.
type leaseCluster struct {
	procs
	ports []int

	mu    sync.Mutex
	nodes [failoverNodes]*leaseNodeProc
}

// leaseNodeProc is one node's current process and what it last said.
type leaseNodeProc struct {
	*nodeProc

	ready bool
	// Its view of the lease: who leads, in which term, since when (the
	// moment its line arrived).
	leader string
	term   uint64
	since  time.Time
	// Its view of the JetStream meta leader and the lease bucket's stream
	// leader.
	meta, bucket string
}

func (c *leaseCluster) start(ctx context.Context, work string, i int) error {
	c.mu.Lock()
	if c.ports == nil {
		ports, err := loopbackPorts(failoverNodes)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		c.ports = ports
	}
	ports := c.ports
	c.mu.Unlock()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding nocbench to run its nodes: %w", err)
	}
	var list []string
	for _, p := range ports {
		list = append(list, strconv.Itoa(p))
	}
	name := fmt.Sprintf("nb%d", i+1)
	cmd := exec.Command(exe, "failover", "-lease-node", strconv.Itoa(i+1), "-ports", strings.Join(list, ","), "-dir", filepath.Join(work, name))
	cmd.Env = append(os.Environ(), envBenchChild+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	proc, err := startNodeProc(cmd, name, filepath.Join(work, name+".log"))
	if err != nil {
		return err
	}
	p := &leaseNodeProc{nodeProc: proc}
	c.set(i, proc)
	c.mu.Lock()
	c.nodes[i] = p
	c.mu.Unlock()
	readyCh := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.noteLine(p, sc.Text(), time.Now(), readyCh)
		}
	}()
	return proc.await(ctx, readyCh)
}

// nodeProc is one node's process, its standard error going to a file.
type nodeProc struct {
	name string
	cmd  *exec.Cmd
	dead chan struct{} // closed once the process has exited
	log  string        // its standard error

	killed atomic.Bool // by kill, not of itself
}

// startNodeProc starts cmd (its standard error to logPath); the process
// dies with nocbench.
func startNodeProc(cmd *exec.Cmd, name, logPath string) (*nodeProc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting node %s: %w", name, err)
	}
	p := &nodeProc{name: name, cmd: cmd, dead: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		close(p.dead)
	}()
	return p, nil
}

// await waits until ready is closed; it kills the process when it does
// not come within 90 s.
func (p *nodeProc) await(ctx context.Context, ready <-chan struct{}) error {
	select {
	case <-ready:
		return nil
	case <-p.dead:
		return fmt.Errorf("node %s exited before it was ready (%v): %s", p.name, p.cmd.ProcessState, tailOf(p.log))
	case <-time.After(90 * time.Second):
		p.kill()
		return fmt.Errorf("node %s not ready after 90 s: %s", p.name, tailOf(p.log))
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *nodeProc) kill() {
	p.killed.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.dead
}

// dump makes a Go process write its goroutines into its log and exit
// (SIGQUIT), killing it if it has not within 10 s.
func (p *nodeProc) dump() {
	p.killed.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.dead:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// exitedOnItsOwn says so when the process died without kill.
func (p *nodeProc) exitedOnItsOwn() error {
	if p.alive() || p.killed.Load() {
		return nil
	}
	return fmt.Errorf("node %s exited on its own (%v): %s", p.name, p.cmd.ProcessState, tailOf(p.log))
}

func (p *nodeProc) alive() bool {
	select {
	case <-p.dead:
		return false
	default:
		return true
	}
}

// noteLine takes one line of a node's output: "ready", "lease <leader>
// <term>" ("-" 0 when none) or "raft <meta leader> <lease stream leader>".
func (c *leaseCluster) noteLine(p *leaseNodeProc, line string, at time.Time, readyCh chan struct{}) {
	f := strings.Fields(line)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(f) == 1 && f[0] == "ready":
		if !p.ready {
			p.ready = true
			close(readyCh)
		}
	case len(f) == 3 && f[0] == "lease":
		term, _ := strconv.ParseUint(f[2], 10, 64)
		if f[1] != p.leader || term != p.term {
			p.leader, p.term, p.since = f[1], term, at
		}
		if f[1] == "-" {
			p.leader = ""
		}
	case len(f) == 3 && f[0] == "raft":
		p.meta, p.bucket = f[1], f[2]
	}
}

// leader is the lease as the live nodes other than skip see it: a node
// leads once it says it does itself (it knows first). With no node
// skipped (before a kill), all three must be up and agree on the leader
// and on the lease bucket's stream leader: a node started again has
// caught up.
func (c *leaseCluster) leader(skip int) (int, uint64, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if skip < 0 {
		for _, p := range c.nodes {
			if p == nil || !p.alive() || p.leader != c.nodes[0].leader || p.term != c.nodes[0].term ||
				p.bucket == "-" || p.bucket != c.nodes[0].bucket {
				return 0, 0, time.Time{}, false
			}
		}
	}
	for i, p := range c.nodes {
		if i == skip || p == nil || !p.alive() {
			continue
		}
		if p.leader == fmt.Sprintf("nb%d", i+1) {
			return i, p.term, p.since, true
		}
	}
	return 0, 0, time.Time{}, false
}

func (c *leaseCluster) note(killed int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.nodes[killed]
	name := fmt.Sprintf("nb%d", killed+1)
	if p.bucket == name {
		return fmt.Sprintf("the lease bucket's stream leader was on %s too (meta leader %s)", name, p.meta)
	}
	return fmt.Sprintf("the lease bucket's stream leader on %s (meta leader %s)", p.bucket, p.meta)
}

// procs are the nodes' current processes by index: kill, failed and stop
// for every failoverCluster.
type procs struct {
	procMu sync.Mutex
	ps     [failoverNodes]*nodeProc
}

func (s *procs) set(i int, p *nodeProc) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	s.ps[i] = p
}

func (s *procs) kill(i int) error {
	s.procMu.Lock()
	p := s.ps[i]
	s.procMu.Unlock()
	if p != nil {
		p.kill()
	}
	return nil
}

func (s *procs) dump(i int) {
	s.procMu.Lock()
	p := s.ps[i]
	s.procMu.Unlock()
	if p != nil {
		p.dump()
	}
}

// failed is the first node that died unbidden.
func (s *procs) failed() error {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	for _, p := range s.ps {
		if p != nil {
			if err := p.exitedOnItsOwn(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *procs) stop() {
	for i := range failoverNodes {
		_ = s.kill(i)
	}
}

// tailOf is the end of a node's log, for an error.
func tailOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-2):], " | ")
}

// leaseNodeChild is one node of the lease mode: it opens its clustered
// store, contends for the lease, and prints "ready", then a "lease" line
// on each change of leadership and a "raft" line on each change of the
// meta leader or the lease bucket's stream leader, until killed.
func leaseNodeChild(ctx context.Context, node int, portList, dir string) error {
	var ports []int
	for _, s := range strings.Split(portList, ",") {
		p, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("-ports %q: %w", portList, err)
		}
		ports = append(ports, p)
	}
	if node < 1 || node > len(ports) || dir == "" {
		return fmt.Errorf("-lease-node %d needs -ports with as many ports and -dir", node)
	}
	c := benchClusterNode(node-1, ports)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", c.Node)
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: logger, Cluster: c})
	if err != nil {
		return err
	}
	defer st.Close()
	var kv *store.LeaseKV
	for kv == nil { // while a restarted node catches up, the bucket may not answer yet
		if kv, err = st.LeaseBucket(ctx, failoverBucket, lease.DefaultTTL); err != nil {
			logger.Warn("opening the lease bucket", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	l, err := lease.New(kv, c.Node, lease.Options{Logger: logger})
	if err != nil {
		return err
	}
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	say("ready")
	go func() {
		for range l.Changes() {
			node, term, ok := l.Leader()
			if !ok {
				node, term = "-", 0
			}
			say("lease %s %d", node, term)
		}
	}()
	go func() {
		var meta, bucket string
		for {
			ci := st.ClusterInfo(ctx)
			b := "-"
			for _, s := range ci.Streams {
				if s.Name == "KV_"+failoverBucket && s.Leader != "" {
					b = s.Leader
				}
			}
			if m := cmp.Or(ci.MetaLeader, "-"); m != meta || b != bucket {
				meta, bucket = m, b
				say("raft %s %s", meta, bucket)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return l.Run(ctx)
}
