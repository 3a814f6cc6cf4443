package lease_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/cluster/lease"
)

// faulty wraps a lease bucket as one node sees it: its writes can fail at
// once (failUpdate), never be answered (hangUpdate: a JetStream R3 write
// without a quorum), or every call can fail (cut: the node partitioned).
type faulty struct {
	lease.KV
	failUpdate, hangUpdate, cut atomic.Bool
}

var errCut = errors.New("no responders: the node is cut off")

func (f *faulty) Create(ctx context.Context, key string, value []byte) (uint64, bool, error) {
	if f.cut.Load() {
		return 0, false, errCut
	}
	return f.KV.Create(ctx, key, value)
}

func (f *faulty) Update(ctx context.Context, key string, value []byte, last uint64) (uint64, error) {
	switch {
	case f.cut.Load():
		return 0, errCut
	case f.failUpdate.Load():
		return 0, errors.New("wrong last sequence (injected)")
	case f.hangUpdate.Load():
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return f.KV.Update(ctx, key, value, last)
}

func (f *faulty) Get(ctx context.Context, key string) ([]byte, uint64, time.Time, bool, error) {
	if f.cut.Load() {
		return nil, 0, time.Time{}, false, errCut
	}
	return f.KV.Get(ctx, key)
}

func (f *faulty) Delete(ctx context.Context, key string, last uint64) error {
	if f.cut.Load() {
		return errCut
	}
	return f.KV.Delete(ctx, key, last)
}

// span is a time one node was seen leading with one term.
type span struct {
	node     string
	term     uint64
	from, to time.Time
}

// monitor checks, every poll, that at most one contender leads, and
// records who led when.
type monitor struct {
	t      *testing.T
	leases map[string]*lease.Lease

	mu       sync.Mutex
	spans    []span
	open     map[string]int // node -> index of its open span
	overlaps int            // polls that found two leaders at once

	stop chan struct{}
	done chan struct{}
}

func watch(t *testing.T, leases map[string]*lease.Lease, poll time.Duration) *monitor {
	m := &monitor{t: t, leases: leases, open: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			m.check()
			select {
			case <-m.stop:
				m.check() // what led up to the stop
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// check observes every contender once. An observation that a contender
// leads holds for some instant between the clock readings around it, so a
// span runs from the reading after its first observation to the reading
// before its last: the time it surely led (one term is one unbroken
// leadership). Two spans that share an instant are two leaders at once.
func (m *monitor) check() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for node, l := range m.leases {
		before := time.Now()
		term, ok := l.Term()
		after := time.Now()
		i, isOpen := m.open[node]
		switch {
		case ok && isOpen && m.spans[i].term == term:
			m.spans[i].to = before
		case ok:
			m.open[node] = len(m.spans)
			m.spans = append(m.spans, span{node: node, term: term, from: after, to: before})
		default:
			delete(m.open, node)
		}
	}
	for _, i := range m.open {
		a := m.spans[i]
		for j, b := range m.spans {
			if j == i || !a.to.After(a.from) || !b.to.After(b.from) {
				continue
			}
			if from, to := later(a.from, b.from), earlier(a.to, b.to); from.Before(to) {
				m.overlaps++
				if m.overlaps == 1 { // the first time; finish counts them
					m.t.Errorf("two leaders at once from %v to %v: %s (term %d) and %s (term %d)",
						from.Format("15:04:05.000"), to.Format("15:04:05.000"), a.node, a.term, b.node, b.term)
				}
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// finish stops the monitor and returns the spans seen, in order.
func (m *monitor) finish() []span {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.overlaps > 1 {
		m.t.Errorf("more than one leader in %d polls", m.overlaps)
	}
	return append([]span(nil), m.spans...)
}

// leaderNow is the one contender leading now, waiting for one up to limit.
func (m *monitor) waitLeader(limit time.Duration, except string) (string, time.Time) {
	m.t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		m.mu.Lock()
		leases := maps.Clone(m.leases)
		m.mu.Unlock()
		for node, l := range leases {
			if node != except && l.IsLeader() {
				return node, time.Now()
			}
		}
		time.Sleep(time.Millisecond)
	}
	m.t.Fatalf("no leader (other than %q) within %v", except, limit)
	return "", time.Time{}
}

// checkHandover asserts that the spans show old's leadership ending before
// the next one began, with a greater term, and returns the gap.
func checkHandover(t *testing.T, spans []span, old string) (oldEnd time.Time, next span) {
	t.Helper()
	var prev *span
	for i := range spans {
		s := spans[i]
		if prev != nil {
			if s.term <= prev.term {
				t.Errorf("term %d of %s after term %d of %s: not increasing", s.term, s.node, prev.term, prev.node)
			}
			if !s.from.After(prev.to) {
				t.Errorf("%s led from %v, before %s's term %d ended at %v", s.node, s.from, prev.node, prev.term, prev.to)
			}
		}
		if prev != nil && prev.node == old && next.node == "" {
			oldEnd, next = prev.to, s
		}
		prev = &spans[i]
	}
	if next.node == "" {
		t.Fatalf("no leader after %s: %+v", old, spans)
	}
	return oldEnd, next
}
