package snmp

import (
	"context"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/schedule"
)

// target is the scheduler's state for one device.
type target struct {
	cfg          Target
	p            *poller
	phase        time.Duration // offset of the device's slots on the interval grid
	schedule.Due               // when the next poll is due

	queued  bool // waiting for a free poll slot
	polling bool // a poll is in flight
	removed bool // dropped by SetTargets; its poll in flight is discarded
}

// skipLogEvery bounds the "slot skipped" warnings: an overloaded poller
// skips many slots of many devices, and one line a minute says it all.
const skipLogEvery = time.Minute

type finished struct {
	t    *target
	res  Result
	took time.Duration
}

// scheduler owns all targets; only Run's goroutine touches them, except
// that a poll in flight owns its target's poller until it finishes.
type scheduler struct {
	ctx    context.Context
	e      *Engine
	report func(Result)

	timers   schedule.Queue[*target]
	byName   map[string]*target
	queue    []*target // due, waiting for one of the concurrency slots
	inFlight int
	done     chan finished // capacity = concurrency: a finishing poll never blocks
	polls    sync.WaitGroup

	skippedUnlogged int       // slots skipped since the last warning
	skipLoggedAt    time.Time // zero before the first warning
}

func newScheduler(ctx context.Context, e *Engine, report func(Result)) *scheduler {
	return &scheduler{ctx: ctx, e: e, report: report, byName: map[string]*target{}, done: make(chan finished, e.concurrency)}
}

func (s *scheduler) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	s.applyTargets(time.Now())
	for {
		s.startDue(time.Now())
		if next, ok := s.timers.Next(); ok {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
		select {
		case <-s.ctx.Done():
			return
		case <-timer.C:
		case f := <-s.done:
			s.finish(f)
		case <-s.e.targets.Changed():
			s.applyTargets(time.Now())
		}
	}
}

// startDue queues every target whose slot has come, then starts polls.
// Slots are spread over the interval by device (schedule.Phase), so a round is
// never one burst.
func (s *scheduler) startDue(now time.Time) {
	for {
		t, ok := s.timers.PopDue(now)
		if !ok {
			break
		}
		s.timers.Set(t, nextSlot(t, now))
		if t.queued || t.polling {
			s.skip(t, now)
			continue
		}
		t.queued = true
		s.queue = append(s.queue, t)
	}
	s.dispatch()
}

// skip drops a slot whose previous poll has not finished: polls of a
// device never overlap, and a slow device never piles up requests.
func (s *scheduler) skip(t *target, now time.Time) {
	s.e.metrics.skipped.Inc()
	s.skippedUnlogged++
	if s.skipLoggedAt.IsZero() || now.Sub(s.skipLoggedAt) >= skipLogEvery {
		s.e.log.Warn("SNMP polls not finished by their next slot; slots skipped (raise the interval or the concurrency)",
			"skipped", s.skippedUnlogged, "example_device", t.cfg.Device, "interval", t.cfg.Interval,
			"queued", len(s.queue), "in_flight", s.inFlight, "concurrency", s.e.concurrency)
		s.skippedUnlogged, s.skipLoggedAt = 0, now
	}
}

// dispatch starts queued polls while fewer than Concurrency are in flight.
func (s *scheduler) dispatch() {
	for s.inFlight < s.e.concurrency && len(s.queue) > 0 {
		t := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if t.removed {
			continue
		}
		t.queued, t.polling = false, true
		s.inFlight++
		s.polls.Go(func() {
			// A poll never outlasts its interval, whatever the retries add up to.
			ctx, cancel := context.WithTimeout(s.ctx, t.cfg.Interval)
			start := time.Now()
			res := t.p.poll(ctx)
			cancel()
			s.done <- finished{t: t, res: res, took: time.Since(start)}
		})
	}
}

func (s *scheduler) finish(f finished) {
	s.inFlight--
	t := f.t
	t.polling = false
	result := f.res.Reason
	if result == "" {
		result = "ok"
	}
	s.e.metrics.duration.WithLabelValues(result).Observe(f.took.Seconds())
	switch {
	case t.removed:
		t.p.closeClient()
	case s.ctx.Err() == nil: // a poll cut short by the end of Run says nothing about the device
		f.res.dev = t.cfg.device() // renewed by a reload while the poll ran
		s.report(f.res)
	}
	s.dispatch()
}

// shutdown waits for the polls in flight (their context is cancelled) and
// closes every socket.
func (s *scheduler) shutdown() {
	s.polls.Wait()
	for {
		select {
		case f := <-s.done:
			f.t.p.closeClient()
		default:
			for _, t := range s.byName {
				t.p.closeClient()
			}
			return
		}
	}
}

// applyTargets reconciles the scheduler with the engine's target list: a
// target whose settings are unchanged keeps its schedule, its sources and
// its last uptime.
func (s *scheduler) applyTargets(now time.Time) {
	schedule.Reconciler[Target, *target]{
		Kind: "SNMP", Log: s.e.log,
		Name: func(c Target) string { return c.Device },
		Same: func(t *target, c Target) bool {
			if !sameTarget(t.cfg, c) {
				return false
			}
			t.cfg = c // the reload's record of the same device
			return true
		},
		Start: func(c Target) *target {
			t := s.newTarget(c)
			s.timers.Set(t, schedule.Slot(now, c.Interval, t.phase))
			return t
		},
		Stop: s.remove,
	}.Apply(s.byName, s.e.targets.Take())
}

func (s *scheduler) newTarget(cfg Target) *target {
	return &target{
		cfg:   cfg,
		p:     newPoller(cfg, customOIDs(cfg, s.e.log), s.e.newClient, s.e.log),
		phase: schedule.Phase(cfg.Device, cfg.Interval, 0),
	}
}

func (s *scheduler) remove(t *target) {
	t.removed = true
	s.timers.Remove(t)
	if !t.polling {
		t.p.closeClient() // else finish closes it
	}
}

// nextSlot follows the grid; after a stall (a suspended process) it skips
// to the next slot ahead instead of bursting to catch up.
func nextSlot(t *target, now time.Time) time.Time {
	next := t.At().Add(t.cfg.Interval)
	if !next.After(now) {
		next = schedule.Slot(now, t.cfg.Interval, t.phase)
		if !next.After(now) {
			next = next.Add(t.cfg.Interval)
		}
	}
	return next
}
