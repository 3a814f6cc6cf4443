package outbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/schedule"
)

type laneState int

const (
	laneIdle    laneState = iota // in no queue: empty, or its head is being copied forward
	laneWaiting                  // in o.timers until its due time
	laneReady                    // due, in its destination's ready list
	laneBusy                     // its head is being attempted or recorded
)

// lane is one alert instance's notifications to one destination, in enqueue
// order; only the head is ever attempted.
type lane struct {
	key          string
	dest         *destState
	items        []*item
	state        laneState
	schedule.Due // when it falls due, while laneWaiting
}

// admitLocked puts a durable item at the end of its lane.
func (o *Outbox) admitLocked(it *item) {
	st := o.destLocked(it.dest)
	key := it.ev.InstanceID
	if key == "" {
		key = it.id // nothing to keep it in order with
	}
	l := st.lanes[key]
	if l == nil {
		l = &lane{key: key, dest: st}
		st.lanes[key] = l
	}
	it.lane = l
	l.items = append(l.items, it)
	st.pending++
	if l.state == laneIdle {
		o.scheduleLocked(l, o.clock.Now())
	}
}

// scheduleLocked makes an idle or waiting lane due at the given time.
func (o *Outbox) scheduleLocked(l *lane, due time.Time) {
	if len(l.items) == 0 || l.state == laneBusy || l.state == laneReady {
		return
	}
	l.state = laneWaiting
	o.timers.Set(l, due)
	o.poke()
}

// Run delivers until ctx is done and returns nil then. Attempts under way
// get stopGrace to finish, then are abandoned (their items stay queued),
// and are waited for.
func (o *Outbox) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.running {
		o.mu.Unlock()
		return errors.New("outbox: already running")
	}
	o.running = true
	o.mu.Unlock()

	// Requests are sent on a context that ends stopGrace after ctx.
	send, endSend := context.WithCancel(context.WithoutCancel(ctx))
	defer endSend()
	var wg sync.WaitGroup
	// The timer wakes the loop when the next lane falls due.
	timer := o.clock.AfterFunc(time.Hour, o.poke)
	for {
		o.mu.Lock()
		now := o.clock.Now()
		// Set under the lock, from the same now: whoever holds the lock
		// sees the queue and the timer agree, even on a clock it moves.
		if next, ok := o.dispatchLocked(ctx, send, &wg, now); ok {
			timer.Reset(next.Sub(now))
		} else {
			timer.Stop()
		}
		o.mu.Unlock()
		select {
		case <-ctx.Done():
			timer.Stop()
			grace := o.clock.AfterFunc(stopGrace, endSend)
			wg.Wait()
			grace.Stop()
			o.flushed()
			o.mu.Lock()
			o.running = false
			o.mu.Unlock()
			return nil
		case <-o.wake:
		}
	}
}

// stopGrace is how long an attempt under way when Run stops may still
// take. Its request may already have reached the receiver: cutting it short
// would deliver the notification again after a restart.
const stopGrace = time.Second

// job is one attempt with what it needs from its destination, taken when
// it started: a reload meanwhile does not change it.
type job struct {
	st      *destState
	l       *lane
	it      *item
	n       int          // attempt number
	cfg     *Destination // nil: the destination is no longer configured
	limiter *rate.Limiter
}

// dispatchLocked starts the attempts that are due and have a free slot,
// and returns when the next lane falls due. Attempts stop waiting when ctx
// ends and send their requests on send.
func (o *Outbox) dispatchLocked(ctx, send context.Context, wg *sync.WaitGroup, now time.Time) (time.Time, bool) {
	if !o.configured {
		return time.Time{}, false // without a config every destination would look removed
	}
	for {
		l, ok := o.timers.PopDue(now)
		if !ok {
			break
		}
		l.state = laneReady
		l.dest.ready = append(l.dest.ready, l)
	}
	for _, st := range o.dests {
		for len(st.ready) > 0 && st.inflight < maxInFlight {
			l := st.ready[0]
			st.ready[0] = nil
			st.ready = st.ready[1:]
			l.state = laneIdle
			it := l.items[0]
			if it.relocating {
				continue // rescheduled once the copy is written
			}
			l.state = laneBusy
			it.inFlight = true
			st.inflight++
			j := job{st: st, l: l, it: it, cfg: st.cfg, limiter: st.limiter}
			if j.cfg != nil {
				it.attempts++
				j.n = it.attempts
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.attempt(ctx, send, j)
			}()
		}
	}
	return o.timers.Next()
}

func (o *Outbox) attempt(ctx, send context.Context, j job) {
	it := j.it
	if j.cfg == nil {
		reason := fmt.Sprintf("destination %q is not in the current configuration (removed by a reload?); replay this dead letter once it is back", it.dest)
		o.concluded(j, o.clock.Now(), 0, ResultDead, reason)
		o.giveUp(j, reason, 0)
		return
	}
	if activeID, blocked := o.blockedByDeadActive(it); blocked {
		reason := fmt.Sprintf("its active notification %s is dead-lettered: replay both, the active first, so the receiver sees them in order", activeID)
		o.concluded(j, o.clock.Now(), 0, ResultDead, reason)
		o.giveUp(j, reason, 0)
		return
	}
	if j.limiter != nil {
		if err := o.waitLimiter(ctx, j.limiter); err != nil {
			o.abandon(j)
			return
		}
	}
	// The attempt's timeout and duration are real time: they bound and
	// measure I/O, not the schedule. Measured from before the deadline is
	// set, a timed-out attempt never looks shorter than its timeout.
	start, began := o.clock.Now(), time.Now()
	actx, cancel := context.WithTimeout(send, j.cfg.Timeout)
	err := j.cfg.Notifier.Send(actx, notify.Notification{ID: it.id, Event: it.ev, Attempt: j.n})
	took := time.Since(began)
	cancel()
	if err != nil && ctx.Err() != nil {
		o.abandon(j) // stopping: not the receiver's failure
		return
	}
	o.metrics.duration.WithLabelValues(it.dest).Observe(took.Seconds())
	switch {
	case err == nil:
		retried := o.concluded(j, start, took, ResultDelivered, "")
		if retried != "" {
			j.st.log.Info("notification delivered after failures", "id", it.id, "event_id", it.ev.EventID,
				"instance_id", it.ev.InstanceID, "status", it.ev.Status, "attempts", j.n)
		}
		o.dropStaleDeadLetter(it)
		o.finish(j)
	case notify.Retryable(err):
		o.retry(j, start, took, err)
	default:
		reason := err.Error()
		o.concluded(j, start, took, ResultDead, reason)
		o.giveUp(j, reason, statusOf(err))
	}
}

// concluded frees the attempt's slot and records it; it returns the item's
// previous failure reason.
func (o *Outbox) concluded(j job, start time.Time, took time.Duration, result, reason string) (previous string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer o.poke()
	j.st.inflight--
	j.st.record(Attempt{
		ID: j.it.id, Destination: j.it.dest, InstanceID: j.it.ev.InstanceID, EventID: j.it.ev.EventID,
		Status: j.it.ev.Status, Attempt: j.n, At: start, Duration: took, Result: result, Error: reason,
	})
	o.metrics.notifications.WithLabelValues(j.it.dest, metricResult(result)).Inc()
	previous = j.it.lastReason
	if reason != "" {
		j.it.lastReason = reason
	}
	return previous
}

func (o *Outbox) retry(j job, start time.Time, took time.Duration, err error) {
	it, p := j.it, j.cfg.Retry
	reason := err.Error()
	now := o.clock.Now()
	delay := max(backoff(p, j.n, o.randN), notify.RetryAfter(err))
	if deadline := it.enqueuedAt.Add(p.MaxAge); now.Add(delay).After(deadline) {
		reason = fmt.Sprintf("%s (gave up after %d attempts: retry.max_age %v reached)", reason, j.n, p.MaxAge)
		o.concluded(j, start, took, ResultDead, reason)
		o.giveUp(j, reason, statusOf(err))
		return
	}
	previous := o.concluded(j, start, took, ResultRetry, reason)
	// Said before the lane is free, so the next attempt's log comes after.
	level := j.st.log.Warn
	if previous == reason {
		level = j.st.log.Debug // said already
	}
	level("notification delivery failed; will retry", "id", it.id, "event_id", it.ev.EventID,
		"instance_id", it.ev.InstanceID, "status", it.ev.Status, "attempt", j.n, "retry_in", delay.Round(time.Millisecond), "reason", reason)

	o.mu.Lock()
	o.landedLocked(it)
	j.l.state = laneIdle
	o.scheduleLocked(j.l, now.Add(delay))
	o.mu.Unlock()
}

// giveUp moves the item to the dead-letter log, then off the queue. If
// the dead letter cannot be written the item stays queued and is tried again.
func (o *Outbox) giveUp(j job, reason string, status int) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	err := o.writeDeadLetter(ctx, j.it, reason, status)
	cancel()
	it := j.it
	if err != nil {
		j.st.log.Error("storing dead letter failed; the notification stays queued", "id", it.id, "err", err)
		o.mu.Lock()
		o.landedLocked(it)
		j.l.state = laneIdle
		o.scheduleLocked(j.l, o.clock.Now().Add(time.Minute))
		o.mu.Unlock()
		return
	}
	j.st.log.Error("notification dead-lettered", "id", it.id, "event_id", it.ev.EventID,
		"instance_id", it.ev.InstanceID, "status", it.ev.Status, "attempts", it.attempts, "reason", reason)
	o.finish(j)
}

// finish records the item completed, then lets its lane move on: the next
// notification of an alert goes only once this one's fate is on disk.
func (o *Outbox) finish(j job) {
	it, l, st := j.it, j.l, j.st
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	if err := o.recordDone(ctx, it); err != nil {
		st.log.Error("recording a completed notification failed; it may be sent again after a restart", "id", it.id, "err", err)
	}
	cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	it.state = itemDone
	o.landedLocked(it)
	if o.byID[it.id] == it {
		delete(o.byID, it.id)
	}
	l.items[0] = nil
	l.items = l.items[1:]
	st.pending--
	l.state = laneIdle
	if len(l.items) > 0 {
		o.scheduleLocked(l, o.clock.Now())
	} else if st.lanes[l.key] == l {
		delete(st.lanes, l.key)
	}
	o.dropIfIdleLocked(st)
}

// landedLocked ends the item's attempt and wakes whoever waits for that.
func (o *Outbox) landedLocked(it *item) {
	it.inFlight = false
	if it.settled != nil {
		close(it.settled)
		it.settled = nil
	}
}

// abandon returns an attempt cut short by Run stopping: it did not count.
func (o *Outbox) abandon(j job) {
	o.mu.Lock()
	defer o.mu.Unlock()
	j.st.inflight--
	o.landedLocked(j.it)
	if j.cfg != nil {
		j.it.attempts--
	}
	j.l.state = laneIdle
	o.scheduleLocked(j.l, o.clock.Now())
	o.dropIfIdleLocked(j.st)
}

// backoff is the wait after the n-th failed attempt: full jitter in
// [Initial, min(Max, Initial·2^(n-1))], floored at Initial so attempts
// never come back to back.
func backoff(p RetryPolicy, n int, randN func(int64) int64) time.Duration {
	upper := p.Initial
	for i := 1; i < n && upper < p.Max && upper <= math.MaxInt64/2; i++ {
		upper *= 2
	}
	upper = min(upper, p.Max)
	if upper <= p.Initial {
		return p.Initial
	}
	return p.Initial + time.Duration(randN(int64(upper-p.Initial)+1))
}

// metricResult names an attempt's result in nocbridge_notifications_total:
// a retried attempt counts as failed.
func metricResult(result string) string {
	if result == ResultRetry {
		return "failed"
	}
	return result
}

func statusOf(err error) int {
	var ne *notify.Error
	if errors.As(err, &ne) {
		return ne.Status
	}
	return 0
}
