package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/store"
)

func init() { benchmarks["cluster"] = runCluster }

// runCluster measures durable delivery through a three-node JetStream
// cluster (every stream R3, as SPEC 9 keeps the outbox), the outbox running
// on one node, and in the same run the same load on a store alone (R1):
// these machines are noisy, so the two are compared within one run.
func runCluster(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	load := outboxLoadFlags(fs)
	minRate := fs.Float64("min-rate", 2000, "fail when the R3 cluster delivers fewer notifications per second")
	rounds := fs.Int("rounds", 1, "measure R3 then R1 this many times, alternately")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := load.check(); err != nil {
		return err
	}
	if *rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	fmt.Printf("cluster: %d notifications, %d webhook destinations on a loopback receiver (204), %d producers, fsync on every write; "+
		"three embedded stores routed on loopback (R3) against one store alone (R1), %d round(s)\n",
		load.n, load.dests, load.producers, *rounds)
	var r3, r1 []outboxResult
	for round := range *rounds {
		res, err := measureClusterOutbox(ctx, *load)
		if err != nil {
			return fmt.Errorf("round %d, R3: %w", round+1, err)
		}
		r3 = append(r3, res)
		if res, err = measureAloneOutbox(ctx, *load); err != nil {
			return fmt.Errorf("round %d, R1: %w", round+1, err)
		}
		r1 = append(r1, res)
	}
	return clusterVerdict(load.n, r3, r1, *minRate)
}

// measureClusterOutbox forms a three-node cluster on loopback, each node
// its own embedded store in its own directory, and runs the outbox on the
// first.
func measureClusterOutbox(ctx context.Context, load outboxLoad) (outboxResult, error) {
	dir, err := os.MkdirTemp("", "nocbench-cluster-")
	if err != nil {
		return outboxResult{}, err
	}
	defer os.RemoveAll(dir)
	logger := benchStoreLogger()
	stores, err := openBenchCluster(ctx, dir, logger)
	if err != nil {
		return outboxResult{}, err
	}
	defer func() {
		for _, s := range stores {
			_ = s.Close()
		}
	}()
	fmt.Println("  R3, three nodes, the outbox on nb1:")
	res, err := measureOutbox(ctx, stores[0], logger, load)
	if err != nil {
		return outboxResult{}, err
	}
	res.print("    ")
	// Where each stream's (Raft) leader was: a write on nb1 to a stream
	// led elsewhere takes one more hop.
	var leaders []string
	for _, s := range stores[0].ClusterInfo(ctx).Streams {
		leaders = append(leaders, fmt.Sprintf("%s R%d on %s", s.Name, s.Replicas, s.Leader))
	}
	fmt.Printf("    stream leaders: %s\n", strings.Join(leaders, ", "))
	return res, nil
}

// measureAloneOutbox runs the same load on one store alone (R1).
func measureAloneOutbox(ctx context.Context, load outboxLoad) (outboxResult, error) {
	dir, err := os.MkdirTemp("", "nocbench-cluster-r1-")
	if err != nil {
		return outboxResult{}, err
	}
	defer os.RemoveAll(dir)
	logger := benchStoreLogger()
	st, err := store.Open(ctx, store.Options{Dir: dir, Logger: logger})
	if err != nil {
		return outboxResult{}, err
	}
	defer st.Close()
	fmt.Println("  R1, one store alone:")
	res, err := measureOutbox(ctx, st, logger, load)
	if err != nil {
		return outboxResult{}, err
	}
	res.print("    ")
	return res, nil
}

// openBenchCluster opens three stores under dir (nb1, nb2, nb3), routed to
// each other on loopback ports, at once: each waits for the others.
func openBenchCluster(ctx context.Context, dir string, logger *slog.Logger) ([]*store.Store, error) {
	ports, err := loopbackPorts(3)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stores := make([]*store.Store, len(ports))
	errs := make([]error, len(ports))
	var wg sync.WaitGroup
	for i := range ports {
		wg.Go(func() {
			c := benchClusterNode(i, ports)
			stores[i], errs[i] = store.Open(ctx, store.Options{Dir: filepath.Join(dir, c.Node), Logger: logger.With("node", c.Node), Cluster: c})
			if errs[i] != nil {
				errs[i] = fmt.Errorf("node %s: %w", c.Node, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range stores {
			if s != nil {
				_ = s.Close()
			}
		}
		return nil, err
	}
	return stores, nil
}

// benchClusterNode is node i's cluster: block (nb1, nb2…): routes on
// 127.0.0.1:ports[i], peers every other port.
func benchClusterNode(i int, ports []int) *config.Cluster {
	c := &config.Cluster{Name: "nocbench", Node: fmt.Sprintf("nb%d", i+1),
		Listen: "127.0.0.1:" + strconv.Itoa(ports[i]), DownWhen: config.DownWhenAll}
	for j, p := range ports {
		if j != i {
			c.Peers = append(c.Peers, "nats://127.0.0.1:"+strconv.Itoa(p))
		}
	}
	return c
}

// loopbackPorts finds n free loopback TCP ports and lets them go for the
// caller to bind.
func loopbackPorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// clusterVerdict prints the comparison and fails the run when a
// notification is missing or repeated on either side, or when the R3
// cluster's slowest round is below minRate.
func clusterVerdict(n int, r3, r1 []outboxResult, minRate float64) error {
	var failed []error
	worst := 0.0
	for i := range r3 {
		fmt.Printf("  round %d: R3 %.0f/s (p50 %v, p99 %v), R1 %.0f/s (p50 %v, p99 %v): R3 at %.0f%% of R1\n", i+1,
			r3[i].rate(), pct(r3[i].lat, 50), pct(r3[i].lat, 99), r1[i].rate(), pct(r1[i].lat, 50), pct(r1[i].lat, 99),
			100*r3[i].rate()/r1[i].rate())
		if i == 0 || r3[i].rate() < worst {
			worst = r3[i].rate()
		}
		for _, side := range []struct {
			name string
			res  outboxResult
		}{{"R3", r3[i]}, {"R1", r1[i]}} {
			if err := outboxVerdict(n, len(side.res.lat), side.res.dups, side.res.unknown, 0, 0); err != nil {
				failed = append(failed, fmt.Errorf("round %d, %s: %w", i+1, side.name, err))
			}
		}
	}
	if worst < minRate {
		failed = append(failed, fmt.Errorf("the R3 cluster delivered %.0f notifications/s, below the %.0f/s target", worst, minRate))
	}
	if len(failed) > 0 {
		return fmt.Errorf("cluster benchmark failed: %w", errors.Join(failed...))
	}
	fmt.Printf("PASS: every notification delivered once on both sides, R3 %.0f/s ≥ %.0f/s\n", worst, minRate)
	return nil
}
