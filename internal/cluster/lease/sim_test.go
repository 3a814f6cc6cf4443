package lease_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/cluster/lease"
	"github.com/nocbridge/nocbridge/internal/testutil/logtest"
	"github.com/nocbridge/nocbridge/internal/testutil/promtest"
)

// memKV is a lease bucket in memory with JetStream's semantics for one
// key at a time (history 1, a value gone TTL after its write, revisions
// from one growing sequence), on the time package's clock, so that the
// timing of the lease runs under testing/synctest. The real bucket is
// tested in store_test.go.
type memKV struct {
	ttl time.Duration

	mu      sync.Mutex
	seq     uint64
	entries map[string]memEntry
}

type memEntry struct {
	value []byte
	rev   uint64
	at    time.Time
}

func newMemKV(ttl time.Duration) *memKV { return &memKV{ttl: ttl, entries: map[string]memEntry{}} }

func (m *memKV) TTL() time.Duration { return m.ttl }

// live is key's entry unless it expired; the caller holds mu.
func (m *memKV) live(key string) (memEntry, bool) {
	e, ok := m.entries[key]
	if ok && time.Since(e.at) >= m.ttl {
		delete(m.entries, key)
		ok = false
	}
	return e, ok
}

func (m *memKV) write(key string, value []byte) uint64 {
	m.seq++
	m.entries[key] = memEntry{value: append([]byte(nil), value...), rev: m.seq, at: time.Now()}
	return m.seq
}

func (m *memKV) Create(ctx context.Context, key string, value []byte) (uint64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live(key); ok {
		return 0, false, nil
	}
	return m.write(key, value), true, nil
}

func (m *memKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.live(key); !ok || e.rev != last {
		return 0, fmt.Errorf("wrong last sequence: %d", e.rev)
	}
	return m.write(key, value), nil
}

func (m *memKV) Get(ctx context.Context, key string) ([]byte, uint64, time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key)
	return e.value, e.rev, e.at, ok, nil
}

func (m *memKV) Delete(ctx context.Context, key string, last uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.live(key); !ok || e.rev != last {
		return fmt.Errorf("wrong last sequence: %d", e.rev)
	}
	delete(m.entries, key)
	return nil
}

const ttl = lease.DefaultTTL

// contenders starts n nodes (nb1…) on kv, each through its own faulty
// view, with its own registry and log.
type contender struct {
	l      *lease.Lease
	kv     *faulty
	reg    *prometheus.Registry
	logs   *logtest.Logs
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, kv lease.KV, n int) (map[string]*contender, map[string]*lease.Lease) {
	t.Helper()
	cs := map[string]*contender{}
	ls := map[string]*lease.Lease{}
	for i := 1; i <= n; i++ {
		node := fmt.Sprintf("nb%d", i)
		cs[node] = startNode(t, kv, node)
		ls[node] = cs[node].l
	}
	return cs, ls
}

func startNode(t *testing.T, kv lease.KV, node string) *contender {
	t.Helper()
	c := &contender{kv: &faulty{KV: kv}, reg: prometheus.NewRegistry(), logs: &logtest.Logs{}, done: make(chan error, 1)}
	var err error
	c.l, err = lease.New(c.kv, node, lease.Options{Logger: c.logs.TextLogger(), Registerer: c.reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { c.done <- c.l.Run(ctx) }()
	t.Cleanup(cancel)
	return c
}

func stop(t *testing.T, c *contender) {
	t.Helper()
	c.cancel()
	if err := <-c.done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// Two or three contenders: one leads, keeps its term while it renews, and
// logs one line for it; the others know who leads.
func TestOneLeader(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d contenders", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs, ls := start(t, newMemKV(ttl), n)
				m := watch(t, ls, 10*time.Millisecond)
				time.Sleep(time.Minute)
				spans := m.finish()
				if len(spans) != 1 {
					t.Fatalf("leaderships in a minute of renewing: %+v, want one", spans)
				}
				leader := spans[0]
				for node, c := range cs {
					got, term, ok := c.l.Leader()
					if !ok || got != leader.node || term != leader.term {
						t.Errorf("%s: Leader() = %q, %d, %v; want %q, %d", node, got, term, ok, leader.node, leader.term)
					}
					want := 0.0
					if node == leader.node {
						want = 1
					}
					if v := promtest.Value(t, c.reg, "nocbridge_cluster_leader"); v != want {
						t.Errorf("%s: nocbridge_cluster_leader = %v, want %v", node, v, want)
					}
					if v := promtest.Value(t, c.reg, "nocbridge_cluster_leader_changes_total"); v != 1 {
						t.Errorf("%s: nocbridge_cluster_leader_changes_total = %v, want 1", node, v)
					}
					if lines := strings.Count(c.logs.String(), "\n"); lines != 1 {
						t.Errorf("%s logged %d lines in a minute of one leadership (renewed every %v), want 1:\n%s", node, lines, ttl/3, c.logs)
					}
				}
			})
		})
	}
}

// A leader whose renews fail, or go unanswered, or which is cut off
// altogether steps down before its lease can expire, so the next leader
// never overlaps it; the next one takes over within TTL + TTL/3.
func TestLeaderStepsDownBeforeExpiry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*faulty)
		// the old leader must have stepped down this soon after the fault
		within time.Duration
		// and the next one waited this long at least after that: a node
		// that can still delete its stale lease frees it at once; one
		// cut off leaves it to expire.
		minGap time.Duration
	}{
		{"renew fails", func(f *faulty) { f.failUpdate.Store(true) }, ttl / 3, 0},
		{"renew unanswered", func(f *faulty) { f.hangUpdate.Store(true) }, ttl/3 + ttl/2, 0},
		{"node cut off", func(f *faulty) { f.cut.Store(true) }, ttl / 3, ttl / 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cs, ls := start(t, newMemKV(ttl), 3)
				m := watch(t, ls, time.Millisecond)
				t.Cleanup(func() {
					m.finish()
					if t.Failed() {
						for node, c := range cs {
							t.Logf("%s's log:\n%s", node, c.logs)
						}
					}
				})
				old, _ := m.waitLeader(time.Second, "")
				time.Sleep(10 * time.Second)
				faultAt := time.Now()
				tc.fault(cs[old].kv)
				_, _ = m.waitLeader(2*ttl, old)
				time.Sleep(ttl)
				spans := m.finish()
				oldEnd, next := checkHandover(t, spans, old)
				if d := oldEnd.Sub(faultAt); d > tc.within {
					t.Errorf("%s led %v after the fault, want at most %v", old, d, tc.within)
				}
				// Cut off, it stepped down 5/6 TTL after its last
				// confirmed renew at most; the lease expired TTL after it.
				if gap := next.from.Sub(oldEnd); gap < tc.minGap {
					t.Errorf("%s took over %v after %s stepped down, want at least %v", next.node, gap, old, tc.minGap)
				}
				if d := next.from.Sub(faultAt); d > ttl+ttl/3 {
					t.Errorf("%s took over %v after the fault, want at most TTL + TTL/3 = %v", next.node, d, ttl+ttl/3)
				}
				if !strings.Contains(cs[old].logs.String(), "no longer leads") {
					t.Errorf("%s's log does not say it stepped down:\n%s", old, cs[old].logs)
				}
				if v := promtest.Value(t, cs[old].reg, "nocbridge_cluster_leader"); v != 0 {
					t.Errorf("%s: nocbridge_cluster_leader = %v after stepping down", old, v)
				}
				for node, c := range cs {
					if node == old {
						continue
					}
					if v := promtest.Value(t, c.reg, "nocbridge_cluster_leader_changes_total"); v != 2 {
						t.Errorf("%s: nocbridge_cluster_leader_changes_total = %v, want 2", node, v)
					}
				}
			})
		})
	}
}

// A leader that stops releases its lease: another takes over within one
// try interval, not after the TTL.
func TestStopReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := newMemKV(ttl)
		cs, ls := start(t, kv, 2)
		m := watch(t, ls, time.Millisecond)
		old, _ := m.waitLeader(time.Second, "")
		time.Sleep(5 * time.Second)
		stopAt := time.Now()
		stop(t, cs[old])
		if cs[old].l.IsLeader() {
			t.Errorf("%s still leads after Run returned", old)
		}
		_, _ = m.waitLeader(2*ttl, old)
		spans := m.finish()
		_, next := checkHandover(t, spans, old)
		if d := next.from.Sub(stopAt); d > ttl/3+10*time.Millisecond {
			t.Errorf("%s took over %v after %s stopped, want within TTL/3 = %v", next.node, d, old, ttl/3)
		}
	})
}

// A leader that cannot renew stops leading by the clock even while Run is
// still waiting for an answer: IsLeader is never stale.
func TestIsLeaderEndsOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cs, _ := start(t, newMemKV(ttl), 1)
		c := cs["nb1"]
		time.Sleep(time.Second) // renewed at 0 and 1s: the next renew is at 2s
		synctest.Wait()
		if !c.l.IsLeader() {
			t.Fatal("the only contender does not lead")
		}
		c.kv.hangUpdate.Store(true)
		// Last confirmed renew sent at 1s: leads until 1s + TTL/3 + TTL/2.
		time.Sleep(ttl/3 + ttl/2 - time.Millisecond)
		if !c.l.IsLeader() {
			t.Fatal("stepped down before TTL/3 + TTL/2 after its last renew")
		}
		time.Sleep(time.Millisecond)
		if c.l.IsLeader() {
			t.Fatal("still leads TTL/3 + TTL/2 after its last renew")
		}
		if _, _, ok := c.l.Leader(); ok {
			t.Error("Leader() still names a leader: its own lease, no longer sure")
		}
	})
}

// A node whose renew landed but was not confirmed in time stops leading;
// finding its own lease still in the bucket, it frees it rather than
// leave the cluster without a leader until it expires.
func TestOwnStaleLeaseFreed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := newMemKV(ttl)
		slow := &slowKV{memKV: kv}
		l, err := lease.New(slow, "nb1", lease.Options{Logger: (&logtest.Logs{}).TextLogger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = l.Run(ctx) }()
		time.Sleep(10 * time.Millisecond)
		term1, ok := l.Term()
		if !ok {
			t.Fatal("no leadership")
		}
		slow.delay.Store(int64(ttl)) // renews land, their answers come too late
		time.Sleep(2 * ttl)
		slow.delay.Store(0)
		time.Sleep(ttl / 2)
		term2, ok := l.Term()
		if !ok || term2 <= term1 {
			t.Fatalf("Term() = %d, %v after its stale lease; want a new term after %d", term2, ok, term1)
		}
	})
}

// slowKV answers writes only after delay, though they land at once.
type slowKV struct {
	*memKV
	delay atomic.Int64 // nanoseconds
}

func (s *slowKV) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	rev, err := s.memKV.Update(ctx, key, value, last)
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return rev, err
}

// A dead leader is replaced as its lease expires, TTL after its last
// renew, not at the others' next try up to TTL/3 later.
func TestDeadLeaderReplacedAtExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := newMemKV(ttl)
		leader := startNode(t, kv, "nb1")
		time.Sleep(ttl / 6) // the others try out of step with its renews
		others := map[string]*lease.Lease{"nb1": leader.l}
		for _, node := range []string{"nb2", "nb3"} {
			others[node] = startNode(t, kv, node).l
		}
		m := watch(t, others, time.Millisecond)
		t.Cleanup(func() { m.finish() })
		time.Sleep(10 * time.Second)
		// nb1 renewed at 0, 1s, … 10s; it dies just after.
		lastRenew := time.Now().Truncate(ttl / 3)
		leader.kv.cut.Store(true)
		next, at := m.waitLeader(2*ttl, "nb1")
		if d := at.Sub(lastRenew.Add(ttl)); d < 0 || d > 20*time.Millisecond {
			t.Errorf("%s took over %v after nb1's lease expired, want within 20ms", next, d)
		}
	})
}

// A lease key nocbridge did not write (another program's, a damaged
// value) holds no leader: each contender says so once, names the key and
// revision, and they wait for it to expire.
func TestForeignValueWaitsForExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kv := newMemKV(ttl)
		if _, _, err := kv.Create(context.Background(), lease.Key, []byte("not json")); err != nil {
			t.Fatal(err)
		}
		cs, ls := start(t, kv, 2)
		m := watch(t, ls, time.Millisecond)
		t.Cleanup(func() { m.finish() })
		_, at := m.waitLeader(2*ttl, "")
		if at.Before(time.Unix(946684800, 0).Add(ttl)) { // the bubble starts at 2000-01-01
			t.Errorf("led at %v, before the foreign value expired", at)
		}
		time.Sleep(ttl / 3) // every contender has read the bucket again
		for node, c := range cs {
			if _, _, ok := c.l.Leader(); !ok {
				t.Errorf("%s knows no leader after the foreign value expired", node)
			}
			if n := strings.Count(c.logs.String(), `is not a lease nocbridge wrote (\"not json\")`); n != 1 {
				t.Errorf("%s logged the foreign value %d times, want once:\n%s", node, n, c.logs)
			}
		}
	})
}
