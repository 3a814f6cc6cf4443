package lease_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nocbridge/nocbridge/internal/cluster/lease"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/reexec"
)

// These tests run the lease on the real bucket (the embedded store's, or
// a NATS server shared with a child process), in real time: JetStream's
// own expiry decides when a dead leader's lease is gone.

// childEnv makes the test binary a contender in a child process, on the
// NATS server at its value, that says when it leads and waits to be
// killed.
const childEnv = "NOCBRIDGE_LEASE_TEST_CHILD_NATS"

func TestMain(m *testing.M) {
	if url := os.Getenv(childEnv); url != "" {
		os.Exit(runChild(url))
	}
	os.Exit(m.Run())
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := store.Open(ctx, store.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", dir, err)
	}
	return s
}

func leaseBucket(t *testing.T, s *store.Store) *store.LeaseKV {
	t.Helper()
	kv, err := s.LeaseBucket(context.Background(), "cluster_lease", lease.DefaultTTL)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Two and three contenders on the store's bucket: one leads at any
// moment; a leader that stops hands over within TTL/3, one that dies
// (cut off: it neither renews nor releases) once its lease expires, under 5 s.
func TestStoreFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time failover takes about 15 s")
	}
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d contenders", n), func(t *testing.T) {
			s := openStore(t, t.TempDir())
			defer s.Close()
			cs, ls := start(t, leaseBucket(t, s), n)
			m := watch(t, ls, time.Millisecond)
			defer m.finish()
			first, _ := m.waitLeader(5*time.Second, "")
			time.Sleep(2 * time.Second) // a few renews

			stopAt := time.Now()
			stop(t, cs[first])
			second, at := m.waitLeader(2*ttl, first)
			stopped := at.Sub(stopAt)
			if stopped > ttl/3+time.Second {
				t.Errorf("%s took over %v after %s stopped, want about TTL/3 = %v", second, stopped, first, ttl/3)
			}
			time.Sleep(2 * time.Second)

			// Dead without a word: its lease must expire.
			cutAt := time.Now()
			cs[second].kv.cut.Store(true)
			if n == 2 {
				// The only other contender stopped: start it again
				// (a restarted node) so someone can take over.
				restarted, err := lease.New(&faulty{KV: cs[first].kv.KV}, first, lease.Options{Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go func() { _ = restarted.Run(ctx) }()
				m.mu.Lock()
				m.leases[first] = restarted
				m.mu.Unlock()
			}
			third, at := m.waitLeader(2*ttl, second)
			died := at.Sub(cutAt)
			if died > 5*time.Second {
				t.Errorf("%s took over %v after %s died, want under 5 s (SPEC 9)", third, died, second)
			}
			if died < ttl-ttl/3 {
				t.Errorf("%s took over %v after %s died: before its lease (TTL %v, renewed every %v) could expire", third, died, second, ttl, ttl/3)
			}
			spans := m.finish()
			checkHandover(t, spans, first)
			checkHandover(t, spans, second)
			t.Logf("failover with %d contenders, TTL %v: leader stopped -> %v; leader dead -> %v", n, ttl, stopped, died)
		})
	}
}

// A leader whose renews fail on the real bucket steps down before its
// lease expires; the next one never overlaps it.
func TestStoreRenewFails(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	s := openStore(t, t.TempDir())
	defer s.Close()
	cs, ls := start(t, leaseBucket(t, s), 3)
	m := watch(t, ls, time.Millisecond)
	defer m.finish()
	old, _ := m.waitLeader(5*time.Second, "")
	time.Sleep(time.Second)
	faultAt := time.Now()
	cs[old].kv.hangUpdate.Store(true)
	next, _ := m.waitLeader(2*ttl, old)
	spans := m.finish()
	oldEnd, nextSpan := checkHandover(t, spans, old)
	if d := oldEnd.Sub(faultAt); d > ttl/3+ttl/2 {
		t.Errorf("%s led %v after its renews stopped being answered, want at most TTL/3 + TTL/2", old, d)
	}
	t.Logf("%s stepped down %v after the fault; %s led %v later, term %d", old, oldEnd.Sub(faultAt), next, nextSpan.from.Sub(oldEnd), nextSpan.term)
}

// A node's term only grows: across a clean stop and a restart of the
// store, and across a restart after its lease expired (nothing left in
// the bucket), since terms are JetStream's stream sequence.
func TestTermMonotonicAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a lease to expire")
	}
	dir := t.TempDir()
	lead := func(s *store.Store) (*contender, uint64) {
		cs, ls := start(t, leaseBucket(t, s), 1)
		m := watch(t, ls, time.Millisecond)
		m.waitLeader(5*time.Second, "")
		m.finish()
		term, ok := cs["nb1"].l.Term()
		if !ok {
			t.Fatal("nb1 does not lead")
		}
		return cs["nb1"], term
	}
	s := openStore(t, dir)
	c, term1 := lead(s)
	stop(t, c) // releases
	_ = s.Close()

	s = openStore(t, dir)
	c, term2 := lead(s)
	if term2 <= term1 {
		t.Errorf("term after a restart = %d, want more than %d", term2, term1)
	}
	c.kv.cut.Store(true) // dies: its lease expires in the bucket
	time.Sleep(ttl + time.Second)
	stop(t, c)
	_ = s.Close()

	s = openStore(t, dir)
	defer s.Close()
	c, term3 := lead(s)
	defer stop(t, c)
	if term3 <= term2 {
		t.Errorf("term after an expired lease and a restart = %d, want more than %d", term3, term2)
	}
	t.Logf("terms: %d, after a restart %d, after expiry and a restart %d", term1, term2, term3)
}

// kill -9 of the leader: a contender in a child process leads, is killed
// with SIGKILL (no release, its connection just gone), and this process
// takes over once its lease expires, within 5 s.
func TestKilledLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	url := srv.ClientURL()

	child := reexec.Start(t, childEnv+"="+url)
	childTerm := child.Await(t, "leading ")

	kv := sharedBucket(t, url)
	l, err := lease.New(kv, "parent", lease.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = l.Run(ctx) }()
	time.Sleep(2 * time.Second)
	if node, term, ok := l.Leader(); !ok || node != "child" || fmt.Sprint(term) != childTerm || l.IsLeader() {
		t.Fatalf("before the kill: Leader() = %q, %d, %v; IsLeader %v; want the child, term %s", node, term, ok, l.IsLeader(), childTerm)
	}

	killAt := time.Now()
	if err := child.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for !l.IsLeader() {
		if time.Since(killAt) > 2*ttl {
			t.Fatalf("no takeover %v after the leader was killed", time.Since(killAt))
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(killAt)
	if took > 5*time.Second {
		t.Errorf("took over %v after kill -9 of the leader, want under 5 s (SPEC 9)", took)
	}
	term, _ := l.Term()
	t.Logf("kill -9 of the leader (term %s): this process leads (term %d) %v later (TTL %v)", childTerm, term, took, ttl)
}

// sharedBucket opens the lease bucket on the NATS server at url.
func sharedBucket(t testing.TB, url string) *store.LeaseKV {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := store.OpenLeaseKV(context.Background(), js, "cluster_lease", lease.DefaultTTL, 1)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// runChild contends for the lease as node "child" and prints "leading
// <term>" once it leads; it runs until killed.
func runChild(url string) int {
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	kv, err := store.OpenLeaseKV(context.Background(), js, "cluster_lease", lease.DefaultTTL, 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	l, err := lease.New(kv, "child", lease.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	go func() {
		for range l.Changes() {
			if term, ok := l.Term(); ok {
				fmt.Printf("leading %d\n", term)
			}
		}
	}()
	_ = l.Run(context.Background())
	return 0
}
