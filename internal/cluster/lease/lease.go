// Package lease elects one leader among nocbridge's nodes through a lease
// held in a JetStream KV bucket (SPEC 9: elected through a JetStream KV
// lease, never by home-made consensus). The bucket's values expire TTL
// after their last write; key "leader" names the holder.
//
//   - A node acquires leadership with Create, which JetStream refuses while
//     the key holds a value; the revision of that write is the leadership's
//     term, monotonically increasing (JetStream's stream sequence), so
//     writers can tag their work with it (fencing).
//   - The leader renews every TTL/3 with Update at the revision it holds (a
//     compare-and-set). A renew has TTL/2 to be confirmed: the node stops
//     leading the moment one fails or is not confirmed in time, that is at
//     the latest TTL/3+TTL/2 = 5/6 TTL after sending the last write that
//     was confirmed. That write expires TTL after JetStream stored it (at or
//     after it was sent), so the node has stepped down TTL/6 before anyone
//     else can Create the key: two leaders never overlap, as long as the
//     nodes' clocks run at the same rate within that margin.
//   - A partitioned minority node cannot renew: writes to a replicated (R3)
//     bucket need a quorum of the JetStream cluster, which the minority
//     lacks. Its renews fail or time out, so it steps down on its own within
//     5/6 TTL, while the majority side sees the key expire and elects a new
//     leader after TTL. Nothing here decides who has a quorum: JetStream does.
//   - When the leader dies, its key expires TTL after its last renew. The
//     others try every TTL/3 and time a try to that expiry (from the write
//     time JetStream gives), so they take over within TTL of its death (3 s
//     with the default TTL), and within TTL + TTL/3 (4 s) whatever the
//     clocks. A leader stopped cleanly deletes its key (at the revision it
//     holds), so another takes over within TTL/3.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Key is the key that holds the lease in its bucket.
const Key = "leader"

// DefaultTTL is the lease bucket's TTL to use (store.LeaseBucket): a dead
// leader is replaced within 3 s, and 4 s at most, inside SPEC 9's 5 s.
const DefaultTTL = 3 * time.Second

// KV is the lease bucket: values expire TTL after their last write, and
// writes are compare-and-set (store.LeaseKV).
type KV interface {
	// Create writes key only when it holds no value; created is false,
	// without error, when it holds one.
	Create(ctx context.Context, key string, value []byte) (rev uint64, created bool, err error)
	// Update writes key only when its latest revision is last.
	Update(ctx context.Context, key string, value []byte, last uint64) (rev uint64, err error)
	// Get returns key's latest value, its revision and when it was
	// written; found is false when it holds none (never written, deleted
	// or expired).
	Get(ctx context.Context, key string) (value []byte, rev uint64, written time.Time, found bool, err error)
	// Delete removes key only when its latest revision is last.
	Delete(ctx context.Context, key string, last uint64) error
	// TTL is how long a value lives after its last write.
	TTL() time.Duration
}

// Options configure New. Time is the time package's, which
// testing/synctest replaces in tests.
type Options struct {
	Logger *slog.Logger
	// Registerer takes nocbridge_cluster_leader and
	// nocbridge_cluster_leader_changes_total (nil: not registered).
	Registerer prometheus.Registerer
}

// State is the leadership as this node knows it.
type State struct {
	// Node leads with Term since Since (as the leader wrote it); Node is
	// empty when no leader is known.
	Node  string    `json:"node,omitempty"`
	Term  uint64    `json:"term,omitempty"`
	Since time.Time `json:"since,omitzero"`
	// Self: this node is the leader.
	Self bool `json:"self"`
}

// record is the lease's value.
type record struct {
	Node string `json:"node"`
	// Term is the revision of the Create that began this leadership; 0 in
	// that first write itself (its revision is not known before), so a
	// reader takes the entry's revision then.
	Term       uint64    `json:"term,omitempty"`
	AcquiredAt time.Time `json:"acquired_at"`
	// Incarnation tells this process's writes from an earlier run's of the
	// same node: only its own stale lease does a node delete.
	Incarnation string `json:"incarnation"`
}

// Lease is one node's contender for leadership; Run takes part.
type Lease struct {
	kv          KV
	node        string
	ttl         time.Duration
	every       time.Duration // renew and try-to-acquire interval
	confirm     time.Duration // how long a renew may take to be confirmed
	log         *slog.Logger
	incarnation string

	mu      sync.Mutex
	state   State
	rev     uint64    // Self: the revision this node holds
	until   time.Time // Self: this node leads only before this instant
	rest    time.Time // after a step-down: tries to acquire only from then
	lastErr string    // the last KV error logged, until one call succeeds

	changes chan struct{}
	running atomic.Bool
	leader  prometheus.Gauge
	elected prometheus.Counter
}

// New makes node a contender for the lease in kv. The TTL is the bucket's.
func New(kv KV, node string, opts Options) (*Lease, error) {
	if node == "" {
		return nil, errors.New("lease: node name is empty")
	}
	ttl := kv.TTL()
	if ttl < 300*time.Millisecond {
		return nil, fmt.Errorf("lease: the bucket's TTL %v is too short (at least 300ms)", ttl)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var inc [8]byte
	_, _ = rand.Read(inc[:])
	l := &Lease{
		kv: kv, node: node, ttl: ttl, every: ttl / 3, confirm: ttl / 2,
		log:         log.With("node", node),
		incarnation: hex.EncodeToString(inc[:]),
		changes:     make(chan struct{}, 1),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nocbridge_cluster_leader",
			Help: "1 while this node is the cluster's leader (holds the JetStream KV lease), 0 otherwise."}),
		elected: prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_cluster_leader_changes_total",
			Help: "Leaderships (new lease terms) this node has seen begin, its own included."}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{l.leader, l.elected} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("lease: registering metrics: %w", err)
			}
		}
	}
	return l, nil
}

// Leader is the current leader and its term; ok is false when none is
// known. Another node's leadership is as last read from the bucket (at
// most TTL/3 ago); this node's own ends the moment it can no longer be
// sure of it, even before Run has noticed.
func (l *Lease) Leader() (node string, term uint64, ok bool) {
	s := l.State()
	return s.Node, s.Term, s.Node != ""
}

// IsLeader reports whether this node leads now.
func (l *Lease) IsLeader() bool { return l.State().Self }

// Term is this node's term while it leads: the fencing token to tag work
// with. ok is false when it does not lead.
func (l *Lease) Term() (term uint64, ok bool) {
	if s := l.State(); s.Self {
		return s.Term, true
	}
	return 0, false
}

// State is the leadership as this node knows it now.
func (l *Lease) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state.Self && !time.Now().Before(l.until) {
		return State{} // no longer sure of its own lease; Run steps down
	}
	return l.state
}

// Changes receives a value after the leadership changed (read State
// then); changes that come faster than they are read are merged. It is
// never closed.
func (l *Lease) Changes() <-chan struct{} { return l.changes }

// Run takes part in the election until ctx is done, then steps down and
// releases the lease if it held it. It returns nil when ctx ends; a Lease
// runs once.
func (l *Lease) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("lease: Run called twice")
	}
	defer l.release()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		t.Reset(l.tick(ctx))
	}
}

// tick renews or tries to acquire the lease once and returns how long to
// wait before the next time.
func (l *Lease) tick(ctx context.Context) time.Duration {
	l.mu.Lock()
	self, rev, until, term, since := l.state.Self, l.rev, l.until, l.state.Term, l.state.Since
	l.mu.Unlock()
	if self {
		return l.renew(ctx, rev, until, record{Node: l.node, Term: term, AcquiredAt: since, Incarnation: l.incarnation})
	}
	return l.acquire(ctx)
}

func (l *Lease) renew(ctx context.Context, rev uint64, until time.Time, rec record) time.Duration {
	sent := time.Now()
	if !sent.Before(until) {
		l.stepDown(fmt.Sprintf("the lease was not renewed within %v", l.confirm))
		return 0
	}
	// The renew must be confirmed before until: this node leads no longer.
	rctx, cancel := context.WithDeadline(ctx, until)
	newRev, err := l.kv.Update(rctx, Key, encode(rec), rev)
	cancel()
	if ctx.Err() != nil {
		return l.every // Run stops and releases
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("renew not confirmed within %v: %w", l.confirm, err)
		}
		l.stepDown("renewing the lease failed: " + err.Error())
		return 0
	}
	l.mu.Lock()
	l.rev = newRev
	l.until = sent.Add(l.every + l.confirm)
	l.mu.Unlock()
	l.noteErr(nil)
	return max(0, l.every-time.Since(sent))
}

func (l *Lease) acquire(ctx context.Context) time.Duration {
	l.mu.Lock()
	resting := time.Now().Before(l.rest)
	l.mu.Unlock()
	if !resting {
		if wait, done := l.create(ctx); done {
			return wait
		}
	}
	gctx, cancel := context.WithTimeout(ctx, l.confirm)
	defer cancel()
	value, rev, written, found, err := l.kv.Get(gctx, Key)
	if ctx.Err() != nil {
		return l.every
	}
	if err != nil {
		l.noteErr(err)
		return l.every
	}
	if !found {
		l.noteErr(nil)
		l.set(State{}, "")
		if resting {
			return l.every
		}
		return 0 // expired since Create: try again at once
	}
	var held record
	if err := json.Unmarshal(value, &held); err != nil || held.Node == "" {
		l.noteErr(fmt.Errorf("lease key %q at revision %d is not a lease nocbridge wrote (%q): waiting for it to expire", Key, rev, value))
		l.set(State{Term: rev}, "")
		return l.every
	}
	l.noteErr(nil)
	if held.Incarnation == l.incarnation {
		// This process's own lease, left by a renew whose confirmation
		// came too late: it leads no longer, so free the key for all.
		err := l.kv.Delete(gctx, Key, rev)
		if err == nil {
			l.set(State{}, "")
			if resting {
				return l.every
			}
			return 0
		}
		l.noteErr(fmt.Errorf("freeing this node's own stale lease: %w", err))
	}
	if held.Term == 0 {
		held.Term = rev
	}
	l.set(State{Node: held.Node, Term: held.Term, Since: held.AcquiredAt}, "")
	if resting {
		return l.every
	}
	// Try again as the holder's lease expires, unless it renews first: a
	// dead leader is replaced about TTL after its last renew, not up to
	// TTL/3 later. The write time is JetStream's clock: a skewed one only
	// makes the try early (refused, tried again) or late (by the interval
	// at most).
	return min(l.every, max(l.every/10, time.Until(written.Add(l.ttl))+5*time.Millisecond))
}

// create tries to acquire the lease; done is false when another holds it.
func (l *Lease) create(ctx context.Context) (wait time.Duration, done bool) {
	sent := time.Now()
	rec := record{Node: l.node, AcquiredAt: sent.UTC().Round(0), Incarnation: l.incarnation}
	cctx, cancel := context.WithTimeout(ctx, l.confirm)
	rev, created, err := l.kv.Create(cctx, Key, encode(rec))
	cancel()
	switch {
	case ctx.Err() != nil:
		return l.every, true
	case err != nil:
		l.noteErr(err)
		return l.every, true
	case !created:
		return 0, false
	}
	l.noteErr(nil)
	l.mu.Lock()
	l.rev = rev
	l.until = sent.Add(l.every + l.confirm)
	l.setLocked(State{Node: l.node, Term: rev, Since: rec.AcquiredAt, Self: true}, "")
	l.mu.Unlock()
	return max(0, l.every-time.Since(sent)), true
}

// stepDown ends this node's leadership. Unless it stops, the node then
// rests for a TTL before it tries to acquire again, so that a healthy node
// takes over from one whose writes fail rather than it leading again.
func (l *Lease) stepDown(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state.Self {
		l.rest = time.Now().Add(l.ttl)
		l.setLocked(State{}, reason)
	}
}

// release steps down and deletes this process's lease so that another
// node takes over at once rather than after the TTL.
func (l *Lease) release() {
	l.mu.Lock()
	was := l.state.Self
	l.mu.Unlock()
	l.stepDown("stopped")
	if !was {
		return
	}
	// The last renew may or may not have landed: delete the lease at the
	// revision it has, if it is still this process's.
	ctx, cancel := context.WithTimeout(context.Background(), l.confirm)
	defer cancel()
	value, rev, _, found, err := l.kv.Get(ctx, Key)
	var held record
	if err == nil && found && json.Unmarshal(value, &held) == nil && held.Incarnation == l.incarnation {
		err = l.kv.Delete(ctx, Key, rev)
	}
	if err != nil {
		l.log.Warn("releasing the lease on stop failed: another node takes over once it expires", "ttl", l.ttl, "err", err)
	}
}

func (l *Lease) set(s State, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setLocked(s, reason)
}

// setLocked records s, and on a change logs one line, counts a new term,
// sets the gauge and signals Changes.
func (l *Lease) setLocked(s State, reason string) {
	prev := l.state
	l.state = s
	if prev.Node == s.Node && prev.Term == s.Term && prev.Self == s.Self {
		return
	}
	if s.Term != 0 && s.Term != prev.Term && s.Node != "" {
		l.elected.Inc()
	}
	switch {
	case s.Self:
		l.leader.Set(1)
		l.log.Info("this node leads the cluster", "term", s.Term)
	case prev.Self:
		l.leader.Set(0)
		l.log.Warn("this node no longer leads the cluster", "term", prev.Term, "reason", reason)
	case s.Node != "":
		l.log.Info("cluster leader", "leader", s.Node, "term", s.Term, "since", s.Since)
	default:
		l.log.Info("no cluster leader", "previous", prev.Node, "term", prev.Term)
	}
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

// noteErr logs a KV error once (until a call succeeds again).
func (l *Lease) noteErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil && l.lastErr != "":
		l.log.Info("lease bucket answers again")
		l.lastErr = ""
	case err != nil && err.Error() != l.lastErr:
		l.log.Warn("lease bucket", "err", err)
		l.lastErr = err.Error()
	}
}

func encode(r record) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("lease: encoding %+v: %v", r, err)) // a struct of strings, ints and a time
	}
	return b
}
