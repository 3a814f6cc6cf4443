package alert

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/observation"
)

// intake hands observations from Observe to Run, which applies them in
// batches between the deadlines it waits for. While Run runs, Observe sends
// on ch; senders counts the Observe calls doing so, which Run waits out
// (left) before it returns. Run holds drain while it applies what was
// queued before it stopped, and an Observe applying its observation itself
// takes it too, so it cannot overtake them.
type intake struct {
	mu      sync.Mutex // guards running and senders
	running bool
	senders int
	ch      chan observation.Observation
	left    chan struct{}
	drain   sync.Mutex
}

// Observe evaluates an observation and applies the resulting transitions.
// While Run runs, it queues the observation for Run (waiting while the
// queue is full) and returns; Run logs what fails, and a transition that
// could not be dispatched stays unsent in the store. Otherwise Observe
// applies it at once and returns the failure.
func (m *Manager) Observe(ctx context.Context, obs observation.Observation) error {
	m.q.mu.Lock()
	if !m.q.running {
		m.q.mu.Unlock()
		m.q.drain.Lock()
		defer m.q.drain.Unlock()
		_, err := m.observe(ctx, []observation.Observation{obs})
		return err
	}
	m.q.senders++
	m.q.mu.Unlock()
	defer func() {
		m.q.mu.Lock()
		m.q.senders--
		m.q.mu.Unlock()
		select {
		case m.q.left <- struct{}{}:
		default:
		}
	}()
	select {
	case m.q.ch <- obs:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe applies observations in order and commits their transitions as
// one batch. It stops before an observation that concerns an instance
// already changed in this batch and returns it and the rest: their turn
// comes once this batch is dispatched. The first observation is always
// applied, so every call makes progress.
func (m *Manager) observe(ctx context.Context, batch []observation.Observation) (rest []observation.Observation, err error) {
	// Acknowledged once committed (stored, or handed to the outbox), after
	// the lock is released: an acknowledgement may be a network call.
	defer func() {
		if err != nil {
			return // not acknowledged: its sender delivers it again
		}
		for _, obs := range batch[:len(batch)-len(rest)] {
			if obs.Ack != nil {
				obs.Ack()
			}
		}
	}()
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := map[string]bool{}
	var errs []error
	for i, obs := range batch {
		conds, evalErrs := m.set.Evaluate(obs)
		keys := make([]string, len(conds))
		for j, c := range conds {
			keys[j] = instanceKey(c.Rule.EventID, c.Device.Name, c.Key)
			if i > 0 && changed[keys[j]] {
				rest = batch[i:]
				break
			}
		}
		if rest != nil {
			break // evaluated again, and its failures logged, in the next batch
		}
		m.faults.Evaluation(evalErrs)
		for j, c := range conds {
			if m.replay(keys[j], obs) {
				continue // applied by the previous leader
			}
			staged := len(m.staged)
			m.noteSeq(keys[j], obs) // an instance it resolves is buried with it
			if err := m.apply(keys[j], c); err != nil {
				m.log.Error("alert transition failed", "event_id", c.Rule.EventID, "device", c.Device.Name, "err", err)
				errs = append(errs, err)
			}
			m.noteSeq(keys[j], obs) // one it raised is stored with it
			if len(m.staged) > staged {
				changed[keys[j]] = true
			}
		}
	}
	errs = append(errs, m.commit(ctx))
	return rest, errors.Join(errs...)
}

// wakeFor makes Run plan again when due comes before the deadline its timer
// waits for. Later deadlines are found by that tick anyway, so a mass outage
// (thousands of devices pending at once) wakes Run once, not once per
// observation. The caller holds m.mu.
func (m *Manager) wakeFor(due time.Time) {
	if m.planned.IsZero() || due.Before(m.planned) {
		m.planned = due
		m.poke()
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run applies queued observations in batches, and fires pending alerts
// whose `for` has elapsed and resolves clearing ones whose `clear_for` has,
// at the moment they elapse rather than at the next observation, so
// notification latency does not depend on the probe interval. When ctx ends
// it applies what was queued, waits for the written-behind store writes and
// returns nil.
func (m *Manager) Run(ctx context.Context) error {
	m.q.mu.Lock()
	if m.q.running {
		m.q.mu.Unlock()
		return errors.New("alert manager: already running")
	}
	m.q.running = true
	m.q.mu.Unlock()
	defer m.reportUnsent()
	defer m.behind.drain()
	defer m.stopQueue(ctx)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := m.tick(ctx)
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(m.now()), 0)
		}
		timer.Reset(d)
		if !m.serve(ctx, timer) {
			return nil
		}
	}
}

// serve applies queued observations until a deadline may be due (true) or
// ctx ends (false).
func (m *Manager) serve(ctx context.Context, timer *time.Timer) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case obs := <-m.q.ch:
			m.applyQueued(ctx, obs)
		case <-m.wake:
			return true
		case <-timer.C:
			return true
		}
	}
}

// applyQueued applies first and whatever else is queued by now, in as few
// batches as per-instance order allows. Failures are logged by observe.
func (m *Manager) applyQueued(ctx context.Context, first observation.Observation) {
	batch := []observation.Observation{first}
more:
	for len(batch) < maxBatch {
		select {
		case obs := <-m.q.ch:
			batch = append(batch, obs)
		default:
			break more
		}
	}
	for len(batch) > 0 {
		batch, _ = m.observe(ctx, batch)
	}
}

// reportUnsent says, at stop, what was not handed to the outbox: what the
// store holds is sent at the next start, what it does not is lost.
func (m *Manager) reportUnsent() {
	unsent, unstored := m.Unsent()
	if unstored > 0 {
		m.log.Error("stopping with alert transitions that could not be stored (the store could not write): they are lost",
			"lost", unstored, "unsent_but_stored", unsent-unstored)
	} else if unsent > 0 {
		m.log.Warn("stopping with alert transitions not yet handed to the outbox; they are stored and sent at the next start",
			"unsent", unsent)
	}
}

// stopQueue makes Observe apply observations itself again, then applies
// those queued before, including any an Observe call is still handing over.
// They were accepted, so they are applied even though ctx has ended.
func (m *Manager) stopQueue(ctx context.Context) {
	m.q.drain.Lock()
	defer m.q.drain.Unlock()
	m.q.mu.Lock()
	m.q.running = false
	m.q.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	for {
		m.q.mu.Lock()
		idle := m.q.senders == 0
		m.q.mu.Unlock()
		if idle && len(m.q.ch) == 0 {
			return
		}
		select {
		case obs := <-m.q.ch:
			m.applyQueued(ctx, obs)
		case <-m.q.left:
		}
	}
}
