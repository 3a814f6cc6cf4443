package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// daemonPoll is how often the daemon mode reads each node's
// GET /api/v1/cluster: the resolution of its figures.
const daemonPoll = 25 * time.Millisecond

// daemonCluster is three nocbridge daemons (the built binary, `nocbridge
// run`) clustered on loopback, each with its own state directory, HTTP
// API, trap listener and the same webhook destination; the leader is read
// from each node's GET /api/v1/cluster ("leader": {"node", "term"}).
type daemonCluster struct {
	procs
	bin       string // the nocbridge binary
	rules     string // the rule file, absolute
	receiver  string // the webhook receiver's URL
	routes    []int
	https     []int
	traps     []int
	client    *http.Client
	noLeader  string // set when a ready node's JSON has no "leader": this daemon does not elect one
	receiverS *httptest.Server
	storm     *trapStorm // nil: none

	mu       sync.Mutex
	nodes    [failoverNodes]*daemonNodeProc
	restarts int // nodes started again after exiting before ready
}

// daemonNodeProc is one daemon process and its latest view, polled.
type daemonNodeProc struct {
	*nodeProc

	ready        bool
	leader       string // "" when it knows none
	term         uint64
	since        time.Time // when this node was first seen to report leader and term
	meta         string
	streamsLed   int // streams whose (Raft) leader it is
	streamsTotal int
}

// newDaemonCluster builds nocbridge (unless bin is given) into work and
// answers the daemons' webhooks with 204, expecting one alert per trap of
// a storm of traps per run (0: no storm, and no notification) at rate
// per second.
func newDaemonCluster(ctx context.Context, work, bin, rules string, runs, traps, rate int) (*daemonCluster, error) {
	if bin == "" {
		bin = filepath.Join(work, "nocbridge")
		// No version stamp: the benchmark needs none, and git refuses to
		// read a checkout another user owns, which failed the build.
		out, err := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin, "github.com/nocbridge/nocbridge/cmd/nocbridge").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go build of nocbridge (run from the repository, or give -nocbridge): %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	rules, err := filepath.Abs(rules)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(rules); err != nil {
		return nil, fmt.Errorf("-rules %s (run from the repository root or pass -rules): %w", rules, err)
	}
	c := &daemonCluster{bin: bin, rules: rules, client: &http.Client{Timeout: 3 * time.Second}}
	rcv := newLatencyReceiver(runs * traps)
	if traps > 0 {
		c.storm = &trapStorm{n: traps, rate: rate, rcv: rcv}
	}
	c.receiverS = httptest.NewServer(rcv)
	c.receiver = c.receiverS.URL
	if c.routes, err = loopbackPorts(failoverNodes); err == nil {
		c.https, err = loopbackPorts(failoverNodes)
	}
	for range failoverNodes {
		if err != nil {
			break
		}
		var p int
		p, err = trapFreeUDPPort()
		c.traps = append(c.traps, p)
	}
	if err != nil {
		c.receiverS.Close()
		return nil, fmt.Errorf("finding free loopback ports: %w", err)
	}
	return c, nil
}

// config is node i's config: the benchmarks' daemon config with its
// cluster: block.
func (c *daemonCluster) config(work string, i int) string {
	k := benchClusterNode(i, c.routes)
	return daemonConfig(filepath.Join(work, k.Node), c.rules, "127.0.0.1:"+strconv.Itoa(c.https[i]), c.traps[i], c.receiver) +
		fmt.Sprintf("cluster:\n  name: %s\n  node: %s\n  listen: %s\n  peers: [%s]\n", k.Name, k.Node, k.Listen, strings.Join(k.Peers, ", "))
}

// daemonStartAttempts is how many times start runs a node that exits
// before it is ready, as systemd's Restart=on-failure would (the shipped
// unit restarts after 5 s).
const daemonStartAttempts = 3

// start runs node i until it is ready, starting it again when it exits
// first (saying why).
func (c *daemonCluster) start(ctx context.Context, work string, i int) error {
	var err error
	for attempt := 1; attempt <= daemonStartAttempts; attempt++ {
		if err = c.startOnce(ctx, work, i); err == nil || ctx.Err() != nil {
			return err
		}
		fmt.Printf("  nb%d (attempt %d of %d): %v\n", i+1, attempt, daemonStartAttempts, err)
		c.mu.Lock()
		c.restarts++
		c.mu.Unlock()
	}
	return err
}

func (c *daemonCluster) startOnce(ctx context.Context, work string, i int) error {
	name := fmt.Sprintf("nb%d", i+1)
	if err := os.MkdirAll(filepath.Join(work, name), 0o750); err != nil {
		return err
	}
	cfg := filepath.Join(work, name, "nocbridge.yaml")
	if err := os.WriteFile(cfg, []byte(c.config(work, i)), 0o600); err != nil {
		return err
	}
	proc, err := startNodeProc(exec.Command(c.bin, "run", "--config", cfg, "--log-format", "json"), name, filepath.Join(work, name+".log"))
	if err != nil {
		return err
	}
	p := &daemonNodeProc{nodeProc: proc}
	c.set(i, proc)
	c.mu.Lock()
	c.nodes[i] = p
	c.mu.Unlock()
	ready := make(chan struct{})
	go c.poll(p, "http://127.0.0.1:"+strconv.Itoa(c.https[i]), ready)
	return proc.await(ctx, ready)
}

// poll reads the node's /readyz until it answers 200, then its
// /api/v1/cluster every daemonPoll, until the process is gone.
func (c *daemonCluster) poll(p *daemonNodeProc, base string, ready chan struct{}) {
	t := time.NewTicker(daemonPoll)
	defer t.Stop()
	for {
		select {
		case <-p.dead:
			return
		case <-t.C:
		}
		select {
		case <-ready:
			c.read(p, base)
			continue
		default:
		}
		if resp, err := c.client.Get(base + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				c.mu.Lock()
				p.ready = true
				c.mu.Unlock()
				close(ready)
			}
		}
	}
}

// read takes one GET /api/v1/cluster of the node.
func (c *daemonCluster) read(p *daemonNodeProc, base string) {
	resp, err := c.client.Get(base + "/api/v1/cluster")
	if err != nil {
		return // a node being killed, or slow: the next poll tells
	}
	defer resp.Body.Close()
	at := time.Now()
	body, err := io.ReadAll(resp.Body)
	var raw map[string]json.RawMessage
	if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(body, &raw) != nil {
		return
	}
	var ci struct {
		MetaLeader string `json:"meta_leader"`
		Leader     *struct {
			Node  string    `json:"node"`
			Term  uint64    `json:"term"`
			Since time.Time `json:"since"` // the lease's acquisition, when the daemon says
		} `json:"leader"` // absent while no leader is known
		SelfLeader bool `json:"self_leader"`
		Streams    []struct {
			Leader string `json:"leader"`
		} `json:"streams"`
	}
	_ = json.Unmarshal(body, &ci) // a field of another shape stays empty
	c.mu.Lock()
	defer c.mu.Unlock()
	_, hasLeader := raw["leader"]
	_, hasSelf := raw["self_leader"]
	if !hasLeader && !hasSelf && c.noLeader == "" {
		c.noLeader = fmt.Sprintf("GET %s/api/v1/cluster (node %s) has neither \"leader\" nor \"self_leader\": this nocbridge does not elect a leader in the daemon "+
			"(SPEC 9's lease, wired into the daemon on branch core); -mode lease measures the lease alone", base, p.name)
	}
	node, term := "", uint64(0)
	if ci.Leader != nil {
		node, term = ci.Leader.Node, ci.Leader.Term
		if ci.SelfLeader && !ci.Leader.Since.IsZero() {
			// The takeover's own time, not when a (possibly slow, while
			// JetStream elects stream leaders) answer said so.
			at = ci.Leader.Since
		}
	}
	if hasSelf && !ci.SelfLeader && node == p.name {
		node = "" // it no longer leads, though it has not read the lease since
	}
	if node != p.leader || term != p.term {
		p.leader, p.term, p.since = node, term, at
	}
	p.meta, p.streamsLed, p.streamsTotal = ci.MetaLeader, 0, len(ci.Streams)
	for _, s := range ci.Streams {
		if s.Leader == p.name {
			p.streamsLed++
		}
	}
}

// leader: a node leads once its own API says so. With no node skipped,
// all three must be up and agree.
func (c *daemonCluster) leader(skip int) (int, uint64, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if skip < 0 {
		for _, p := range c.nodes {
			if p == nil || !p.alive() || !p.ready || p.leader != c.nodes[0].leader || p.term != c.nodes[0].term {
				return 0, 0, time.Time{}, false
			}
		}
	}
	for i, p := range c.nodes {
		if i != skip && p != nil && p.alive() && p.leader == p.name {
			return i, p.term, p.since, true
		}
	}
	return 0, 0, time.Time{}, false
}

func (c *daemonCluster) note(killed int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.nodes[killed]
	return fmt.Sprintf("it led %d of %d streams (meta leader %s)", p.streamsLed, p.streamsTotal, p.meta)
}

func (c *daemonCluster) trapStorm() *trapStorm { return c.storm }

func (c *daemonCluster) failed() error {
	c.mu.Lock()
	noLeader := c.noLeader
	c.mu.Unlock()
	if noLeader != "" {
		return errors.New(noLeader)
	}
	return c.procs.failed()
}

func (c *daemonCluster) stop() {
	c.procs.stop()
	c.receiverS.Close()
}
