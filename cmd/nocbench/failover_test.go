package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain runs a child's part when a benchmark started this test binary
// as one of its processes (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if os.Getenv(envBenchChild) == "1" && len(os.Args) > 1 && benchmarks[os.Args[1]] != nil {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFailoverLease: three node processes form a cluster; kill -9 of the
// one holding the lease hands it to another, in a later term.
func TestFailoverLease(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a three-process JetStream cluster and waits for a lease to expire")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := &leaseCluster{}
	defer c.stop()
	results, err := measureFailover(ctx, c, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	r := results[0]
	if r.next == r.killed || r.newTerm <= r.oldTerm {
		t.Errorf("after kill -9 of nb%d (term %d): nb%d leads in term %d; want another node, a later term", r.killed+1, r.oldTerm, r.next+1, r.newTerm)
	}
	// The lease's TTL is 3 s; JetStream's own election, when the killed
	// node held the bucket's stream leader, takes up to 9 s more.
	if r.took <= 0 || r.took > 15*time.Second {
		t.Errorf("a new leader %v after the kill; want within 15 s", r.took)
	}
	if err := failoverVerdict(results, r.took+time.Millisecond); err != nil {
		t.Errorf("verdict within the bound: %v", err)
	}
	if err := failoverVerdict(results, r.took-time.Millisecond); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("verdict with a bound below the run: %v; want a failure", err)
	}
}
