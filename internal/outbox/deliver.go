package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/schedule"
	"github.com/nocbridge/nocbridge/internal/store"
)

type laneState int

const (
	laneIdle    laneState = iota // in no queue: empty, or its head is being copied forward
	laneWaiting                  // in o.timers until its due time
	laneReady                    // due, in its destination's ready list
	laneBusy                     // its head is being attempted or recorded
	laneParked                   // held by a digest (digest.go): its head past the window's budget
)

// lane is one alert instance's notifications to one destination, in enqueue
// order; only the head is ever attempted.
type lane struct {
	key          string
	dest         *destState
	items        []*item
	state        laneState
	dg           *digest // the digest holding it, while laneParked
	schedule.Due         // when it falls due, while laneWaiting
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
	if len(l.items) == 0 || l.state == laneBusy || l.state == laneReady || l.state == laneParked {
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
	probe   bool // the one attempt of a failing destination (health.go)
	// expired: max_age passed while the destination was failing; the item
	// is dead-lettered without a request.
	expired bool
}

// dispatchLocked starts the attempts that are due and have a free slot,
// and returns when the next lane falls due. Attempts stop waiting when ctx
// ends and send their requests on send.
func (o *Outbox) dispatchLocked(ctx, send context.Context, wg *sync.WaitGroup, now time.Time) (time.Time, bool) {
	if !o.configured {
		return time.Time{}, false // without a config every destination would look removed
	}
	var probes []*health
	for {
		x, ok := o.timers.PopDue(now)
		if !ok {
			break
		}
		switch x := x.(type) {
		case *lane:
			x.state = laneReady
			x.dest.ready = append(x.dest.ready, x)
		case *digest:
			// Its window ended, or its retry is due. One request in place
			// of many: it goes at once, past the in-flight bound if need be.
			o.startDigestLocked(ctx, send, wg, x)
		case *health:
			probes = append(probes, x) // once the due lanes are held
		}
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
			j := job{st: st, l: l, it: it}
			if st.health.failing {
				// A resolve behind its dead-lettered active goes to the
				// dead letters now, and so does what is too old.
				_, blocked := o.blockedLocked(it)
				if j.expired = pastMaxAge(st, it, now); !j.expired && !blocked {
					o.holdLocked(st, l)
					continue
				}
			} else if o.parkLocked(st, l, now) {
				continue // goes in the window's digest
			}
			o.startLocked(ctx, send, wg, j)
		}
	}
	for _, h := range probes {
		o.probeLocked(ctx, send, wg, h.st, now)
	}
	return o.timers.Next()
}

// startLocked starts the attempt of a lane's head.
func (o *Outbox) startLocked(ctx, send context.Context, wg *sync.WaitGroup, j job) {
	j.l.state = laneBusy
	j.it.inFlight = true
	j.st.inflight++
	j.cfg, j.limiter = j.st.cfg, j.st.limiter
	if j.cfg != nil && !j.expired {
		j.it.attempts++
		j.n = j.it.attempts
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.attempt(ctx, send, j)
	}()
}

// probeLocked sends a failing destination's probe, when none is under way.
// It goes past the in-flight bound: it is one request.
func (o *Outbox) probeLocked(ctx, send context.Context, wg *sync.WaitGroup, st *destState, now time.Time) {
	h := &st.health
	if !h.failing || h.probing {
		return
	}
	l, note := o.pickProbeLocked(st, now)
	defer note.log(st.log)
	if l == nil {
		// Nothing to try now (under way, parked in a digest, being copied):
		// look again after an interval. With nothing pending, the next
		// lane held schedules it.
		if st.pending > 0 {
			o.timers.Set(h, now.Add(st.cfg.Retry.ProbeInterval))
		}
		return
	}
	o.timers.Remove(l)
	h.probing = true
	h.probes++
	o.startLocked(ctx, send, wg, job{st: st, l: l, it: l.items[0], probe: true})
}

func (o *Outbox) attempt(ctx, send context.Context, j job) {
	it := j.it
	if j.cfg == nil {
		reason := fmt.Sprintf("destination %q is not in the current configuration (removed by a reload?); replay this dead letter once it is back", it.dest)
		o.concluded(j, tried{start: o.clock.Now()}, ResultDead, reason)
		o.giveUp(j, reason, 0)
		return
	}
	if j.expired {
		o.mu.Lock()
		reason := maxAgeReason(cmp.Or(it.lastReason, j.st.health.reason), it.attempts, j.cfg.Retry.MaxAge)
		status := it.lastStatus
		o.mu.Unlock()
		o.concluded(j, tried{start: o.clock.Now()}, ResultDead, reason)
		o.giveUp(j, reason, status)
		return
	}
	if activeID, blocked := o.blockedByDeadActive(it); blocked {
		reason := fmt.Sprintf("its active notification %s is dead-lettered: replay both, the active first, so the receiver sees them in order", activeID)
		o.concluded(j, tried{start: o.clock.Now()}, ResultDead, reason)
		o.giveUp(j, reason, 0)
		return
	}
	t, stopped, err := o.try(ctx, send, j.cfg, j.limiter, func(actx context.Context) error {
		return j.cfg.Notifier.Send(actx, notify.Notification{ID: it.id, Event: it.ev, Attempt: j.n})
	})
	if stopped {
		o.abandon(j)
		return
	}
	if j.probe {
		o.metrics.probes.WithLabelValues(j.cfg.Name, metricResult(resultOf(err))).Inc()
	}
	switch {
	case err == nil:
		o.answered(j.st, j.probe)
		retried := o.concluded(j, t, ResultDelivered, "")
		if retried != "" {
			j.st.log.Info("notification delivered after failures", "id", it.id, "event_id", it.ev.EventID,
				"instance_id", it.ev.InstanceID, "status", it.ev.Status, "attempts", j.n)
		}
		o.dropStaleDeadLetter(it)
		o.finish(j)
	case notify.Retryable(err):
		o.retry(j, t, err)
	default:
		o.answered(j.st, j.probe)
		reason := err.Error()
		o.concluded(j, t, ResultDead, reason)
		o.giveUp(j, reason, statusOf(err))
	}
}

// answered notes that the destination answered an attempt with anything
// but a retryable failure: it works.
func (o *Outbox) answered(st *destState, probe bool) {
	o.mu.Lock()
	note := o.answeredLocked(st, probe)
	o.mu.Unlock()
	note.log(st.log)
}

// try makes one attempt with send once the destination's rate limit
// allows it, and says when it started and how long it took. stopped says
// Run stopped first: the attempt does not count.
//
// The attempt's timeout and duration are real time: they bound and
// measure I/O, not the schedule. Measured from before the deadline is
// set, a timed-out attempt never looks shorter than its timeout.
func (o *Outbox) try(ctx, sendCtx context.Context, cfg *Destination, limiter *rate.Limiter, send func(context.Context) error) (t tried, stopped bool, err error) {
	if limiter != nil {
		if err := o.waitLimiter(ctx, limiter); err != nil {
			return t, true, err
		}
	}
	start, began := o.clock.Now(), time.Now()
	actx, cancel := context.WithTimeout(sendCtx, cfg.Timeout)
	actx, answer := notify.WithAnswerStatus(actx)
	err = send(actx)
	t = tried{start: start, took: time.Since(began), status: cmp.Or(statusOf(err), answer())}
	cancel()
	if err != nil && ctx.Err() != nil {
		return t, true, err // stopping: not the receiver's failure
	}
	o.metrics.duration.WithLabelValues(cfg.Name).Observe(t.took.Seconds())
	return t, false, err
}

// tried is what an attempt's request came to: when it started, how long
// it took, and the receiver's HTTP status (0: no answer, or none sent).
type tried struct {
	start  time.Time
	took   time.Duration
	status int
}

// concluded frees the attempt's slot and records it; it returns the item's
// previous failure reason.
func (o *Outbox) concluded(j job, t tried, result, reason string) (previous string) {
	a := Attempt{
		ID: j.it.id, Destination: j.it.dest, InstanceID: j.it.ev.InstanceID, EventID: j.it.ev.EventID,
		Status: j.it.ev.Status, Attempt: j.n, At: t.start, Duration: t.took, HTTPStatus: t.status,
		Result: result, Error: reason, Probe: j.probe,
	}
	o.noteAttempt(j.it.ev, a, "")
	return o.conclude(j.st, a, 1, &j.it.lastReason)
}

// noteAttempt tells history of an attempt of ev's notification; detail
// says what else it was part of (a digest).
func (o *Outbox) noteAttempt(ev event.Event, a Attempt, detail string) {
	if a.Error != "" {
		detail = strings.TrimPrefix(detail+": "+a.Error, ": ")
	}
	o.hist.Record(ev, history.Entry{
		At: a.At, Kind: history.KindAttempt, Status: ev.Status, Destination: a.Destination, Attempt: a.Attempt,
		Probe: a.Probe, Result: a.Result, HTTPStatus: a.HTTPStatus, DurationMs: float64(a.Duration.Microseconds()) / 1000, Detail: detail,
	})
}

// conclude frees an attempt's slot and records it: a dead result counts
// the notifications given up on (dead), others the attempt. last keeps the
// failure reason; conclude returns the one it held before.
func (o *Outbox) conclude(st *destState, a Attempt, dead int, last *string) (previous string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer o.poke()
	st.inflight--
	st.record(a)
	n := 1
	if a.Result == ResultDead {
		n = dead
	}
	o.metrics.notifications.WithLabelValues(a.Destination, metricResult(a.Result)).Add(float64(n))
	previous = *last
	if a.Error != "" {
		*last = a.Error
	}
	return previous
}

// retry schedules a notification again after a retryable failure: on its
// own backoff while its destination works, else once the destination's
// probe succeeds (health.go).
func (o *Outbox) retry(j job, t tried, err error) {
	it := j.it
	o.mu.Lock()
	it.lastStatus = statusOf(err)
	failing, note := o.failedLocked(j.st, it.id, it.suspect, j.probe, err)
	probeAt := j.st.health.notBefore
	o.mu.Unlock()
	now := o.clock.Now()
	// While its destination fails, its max_age is watched as it waits.
	next, reason, expired := now, err.Error(), false
	if !failing {
		next, reason, expired = o.nextTry(j.cfg.Retry, j.n, err, it.enqueuedAt)
	}
	if expired {
		o.concluded(j, t, ResultDead, reason)
		o.giveUp(j, reason, statusOf(err))
		note.log(j.st.log)
		return
	}
	previous := o.concluded(j, t, ResultRetry, reason)
	// Said before the lane is free, so the next attempt's log comes after.
	// Once its destination fails, the destination's log says it.
	logf, retryIn := failLevel(j.st.log, previous, reason), next.Sub(now)
	if failing {
		logf, retryIn = j.st.log.Debug, probeAt.Sub(now) // the destination's next probe
		if note.began {
			logf = failLevel(j.st.log, previous, reason)
		}
	}
	logf("notification delivery failed; will retry", "id", it.id, "event_id", it.ev.EventID, "instance_id", it.ev.InstanceID,
		"status", it.ev.Status, "attempt", j.n, "retry_in", retryIn.Round(time.Millisecond).String(), "probe", j.probe, "reason", reason)
	note.log(j.st.log)

	o.mu.Lock()
	o.landedLocked(it)
	j.l.state = laneIdle
	if j.st.health.failing {
		o.holdLocked(j.st, j.l)
	} else {
		o.scheduleLocked(j.l, next) // now, if its destination recovered meanwhile
	}
	o.mu.Unlock()
}

// nextTry is when the n-th failed attempt of what was enqueued at
// enqueuedAt may go again: after its backoff, or the service's Retry-After
// when later. expired says that would pass retry.max_age, and reason, the
// failure's text, then says so too.
func (o *Outbox) nextTry(p RetryPolicy, n int, err error, enqueuedAt time.Time) (next time.Time, reason string, expired bool) {
	reason = err.Error()
	next = o.clock.Now().Add(max(backoff(p, n, o.randN), notify.RetryAfter(err)))
	if next.After(enqueuedAt.Add(p.MaxAge)) {
		return next, maxAgeReason(reason, n, p.MaxAge), true
	}
	return next, reason, false
}

// maxAgeReason is the dead letter's reason when max_age ends the retries.
func maxAgeReason(last string, attempts int, maxAge time.Duration) string {
	return fmt.Sprintf("%s (gave up after %d attempts: retry.max_age %v reached)", last, attempts, maxAge)
}

// failLevel logs a failed attempt at Warn, or at Debug when its reason is
// the one said last time.
func failLevel(log *slog.Logger, previous, reason string) func(msg string, args ...any) {
	if previous == reason {
		return log.Debug
	}
	return log.Warn
}

// giveUp moves the item to the dead-letter log, then off the queue. If
// the dead letter cannot be written the item stays queued and is tried again.
func (o *Outbox) giveUp(j job, reason string, status int) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	err := o.writeDeadLetter(ctx, j.it, reason, status)
	cancel()
	it := j.it
	if err != nil {
		j.st.log.Log(ctx, store.LogLevel(err, slog.LevelError), "storing dead letter failed; the notification stays queued", "id", it.id, "err", err)
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

// finish records the item completed, then lets its lane move on.
func (o *Outbox) finish(j job) {
	o.complete(j.st, j.it.id, []*item{j.it}, []*item{j.it}, []*lane{j.l})
}

// complete records done (delivered or dead-lettered) completed, ends the
// attempt of landed, then lets lanes move on past their completed heads:
// the next notification of an alert goes only once this one's fate is on
// disk. id names what was attempted, for the log.
func (o *Outbox) complete(st *destState, id string, done, landed []*item, lanes []*lane) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	if err := o.recordDones(ctx, done); err != nil {
		st.log.Log(ctx, store.LogLevel(err, slog.LevelError), "recording a completed notification failed; it may be sent again after a restart", "id", id, "err", err)
	}
	cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, it := range done {
		it.state = itemDone
		o.noteDoneLocked(it.id)
		if o.byID[it.id] == it {
			delete(o.byID, it.id)
		}
	}
	for _, it := range landed {
		o.landedLocked(it)
	}
	now := o.clock.Now()
	for _, l := range lanes {
		n := 0
		for n < len(l.items) && l.items[n].state == itemDone {
			n++
		}
		clear(l.items[:n])
		l.items = l.items[n:]
		st.pending -= n
		l.state, l.dg = laneIdle, nil
		if len(l.items) > 0 {
			o.scheduleLocked(l, now)
		} else if st.lanes[l.key] == l {
			delete(st.lanes, l.key)
		}
	}
	o.idleLocked(st)
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
	if h := &j.st.health; j.probe {
		h.probes--
		h.probing = false
		if h.failing {
			o.timers.Set(h, o.clock.Now()) // the probe goes again when Run does
		}
	}
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

// resultOf is the result of an attempt that ended in err.
func resultOf(err error) string {
	switch {
	case err == nil:
		return ResultDelivered
	case notify.Retryable(err):
		return ResultRetry
	}
	return ResultDead
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
