package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/schedule"
)

// Digests (SPEC 11.5). A destination with a digest policy sends at most
// After notifications one by one per Window, the window opening with the
// first notification due after the last one ended. A lane whose head falls
// due past that budget is parked: it waits, so an alert's resolve never
// goes before its active. At the window's end the digest takes every
// notification of its lanes, in order, and is attempted as one: retried
// with backoff and Retry-After until max_age, dead-lettered whole. Its
// notifications stay in the queue log until it concludes; a digest itself
// is not stored, so a restart parks them again, in a new digest.

// digest is one window's parked lanes of a destination, then their
// notifications sent as one message.
type digest struct {
	st         *destState
	lanes      []*lane // in the order they were parked
	items      []*item // taken at the window's end, each lane's in order
	id         string  // derived from the items' ids
	attempts   int
	lastReason string
	// waiting says an item is being copied forward: applyFlush makes the
	// digest due again once the copy is written.
	waiting      bool
	schedule.Due // the window's end, then each retry
}

// parkLocked decides whether the lane, whose head falls due now, goes one
// by one (false) or waits for the window's digest (true).
func (o *Outbox) parkLocked(st *destState, l *lane, now time.Time) bool {
	it := l.items[0]
	if st.cfg == nil || st.cfg.Digest == nil || it.single {
		return false
	}
	if _, blocked := o.blockedLocked(it); blocked {
		return false // it is dead-lettered beside its active, on its own
	}
	if !now.Before(st.window) {
		st.window, st.singles, st.parking = now.Add(st.policy.Window), 0, nil
	}
	if st.singles < st.policy.After {
		st.singles++
		it.single = true
		return false
	}
	dg := st.parking
	if dg == nil {
		dg = &digest{st: st}
		st.parking = dg
		st.digests = append(st.digests, dg)
		o.timers.Set(dg, st.window)
	}
	l.state, l.dg = laneParked, dg
	dg.lanes = append(dg.lanes, l)
	return true
}

// releaseDigestsLocked makes the destination's digests due now, when a
// reload removed it or turned its digests off: each then hands its
// notifications back to their lanes (attemptDigest).
func (o *Outbox) releaseDigestsLocked(st *destState) {
	for _, dg := range st.digests {
		if dg.Queued() {
			o.timers.Set(dg, o.clock.Now())
		}
	}
	st.parking = nil
}

// digestJob is one attempt of a digest, with what it needs from its
// destination, taken when it started.
type digestJob struct {
	dg      *digest
	n       int          // attempt number
	cfg     *Destination // nil: the destination is no longer configured
	limiter *rate.Limiter
}

// startDigestLocked starts an attempt of a digest that fell due; the first
// time, it takes its lanes' notifications.
func (o *Outbox) startDigestLocked(ctx, send context.Context, wg *sync.WaitGroup, dg *digest) {
	st := dg.st
	if dg.items == nil && !o.takeLocked(dg) {
		return
	}
	for _, it := range dg.items {
		if it.relocating {
			dg.waiting = true
			return
		}
	}
	j := digestJob{dg: dg, cfg: st.cfg, limiter: st.limiter}
	if j.cfg != nil {
		dg.attempts++
		j.n = dg.attempts
	}
	for _, it := range dg.items {
		it.inFlight = true
		if j.cfg != nil {
			it.attempts++
		}
	}
	st.inflight++
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.attemptDigest(ctx, send, j)
	}()
}

// takeLocked ends a digest's collecting: it takes its lanes'
// notifications, each lane's up to one being copied forward (the lane goes
// on without the digest from there). False when it took none.
func (o *Outbox) takeLocked(dg *digest) bool {
	st := dg.st
	if st.parking == dg {
		st.parking = nil
	}
	lanes := dg.lanes[:0]
	var ids []string
	for _, l := range dg.lanes {
		n := 0
		for n < len(l.items) && !l.items[n].relocating {
			n++
		}
		if n == 0 {
			l.state, l.dg = laneIdle, nil // applyFlush schedules it once written
			continue
		}
		for _, it := range l.items[:n] {
			it.dg = dg
			ids = append(ids, it.id)
		}
		dg.items = append(dg.items, l.items[:n]...)
		lanes = append(lanes, l)
	}
	dg.lanes = lanes
	if len(dg.items) == 0 {
		o.dropDigestLocked(dg)
		return false
	}
	dg.id = notify.DigestID(ids)
	return true
}

func (o *Outbox) dropDigestLocked(dg *digest) {
	st := dg.st
	o.timers.Remove(dg)
	if st.parking == dg {
		st.parking = nil
	}
	for i, d := range st.digests {
		if d == dg {
			st.digests = append(st.digests[:i], st.digests[i+1:]...)
			break
		}
	}
}

func (o *Outbox) attemptDigest(ctx, send context.Context, j digestJob) {
	dg := j.dg
	if j.cfg == nil || j.cfg.Digest == nil {
		// Removed by a reload, or its digests turned off: each
		// notification goes its own way (to a dead letter, for a
		// destination that is gone).
		o.mu.Lock()
		dg.st.inflight--
		o.mu.Unlock()
		dg.st.log.Info("digest dissolved: its notifications go one by one", "id", dg.id, "notifications", len(dg.items))
		o.finishDigest(dg, nil)
		return
	}
	ns := make([]notify.Notification, len(dg.items))
	oldest := dg.items[0].enqueuedAt
	for i, it := range dg.items {
		ns[i] = notify.Notification{ID: it.id, Event: it.ev, Attempt: it.attempts}
		if it.enqueuedAt.Before(oldest) {
			oldest = it.enqueuedAt // max_age runs from the oldest
		}
	}
	t, stopped, err := o.try(ctx, send, j.cfg, j.limiter, func(actx context.Context) error {
		return j.cfg.Digest.SendDigest(actx, notify.Digest{ID: dg.id, Notifications: ns, Attempt: j.n})
	})
	if stopped {
		o.abandonDigest(j)
		return
	}
	log := dg.st.log.With("id", dg.id, "notifications", len(dg.items))
	// A digest counts towards its destination's health like one
	// notification, but keeps its own schedule (health.go).
	if notify.Retryable(err) {
		o.mu.Lock()
		_, note := o.failedLocked(dg.st, dg.id, false, false, err)
		o.mu.Unlock()
		defer note.log(dg.st.log)
	} else {
		o.answered(dg.st, false)
	}
	switch {
	case err == nil:
		o.concludedDigest(j, t, ResultDelivered, "")
		o.metrics.digestMessages.WithLabelValues(j.cfg.Name).Inc()
		o.metrics.digestNotifications.WithLabelValues(j.cfg.Name).Add(float64(len(dg.items)))
		log.Info("digest delivered", "attempts", j.n)
		for _, it := range dg.items {
			o.dropStaleDeadLetter(it)
		}
		o.finishDigest(dg, dg.items)
	case notify.Retryable(err):
		next, reason, expired := o.nextTry(j.cfg.Retry, j.n, err, oldest)
		if expired {
			o.concludedDigest(j, t, ResultDead, reason)
			o.giveUpDigest(j, log, reason, statusOf(err))
			return
		}
		previous := o.concludedDigest(j, t, ResultRetry, reason)
		failLevel(log, previous, reason)("digest delivery failed; will retry", "attempt", j.n,
			"retry_in", next.Sub(o.clock.Now()).Round(time.Millisecond).String(), "reason", reason)
		o.mu.Lock()
		for _, it := range dg.items {
			o.landedLocked(it)
		}
		o.timers.Set(dg, next)
		o.poke()
		o.mu.Unlock()
	default:
		reason := err.Error()
		o.concludedDigest(j, t, ResultDead, reason)
		o.giveUpDigest(j, log, reason, statusOf(err))
	}
}

// concludedDigest is concluded for a digest: its attempt, in
// /api/v1/deliveries, names how many notifications it carried.
func (o *Outbox) concludedDigest(j digestJob, t tried, result, reason string) (previous string) {
	dg := j.dg
	a := Attempt{
		ID: dg.id, Destination: dg.st.name, Notifications: len(dg.items),
		Attempt: j.n, At: t.start, Duration: t.took, HTTPStatus: t.status, Result: result, Error: reason,
	}
	in := fmt.Sprintf("in digest %s of %d notifications", dg.id, len(dg.items))
	for _, it := range dg.items {
		o.noteAttempt(it.ev, a, in)
		if result == ResultDelivered {
			o.hist.Record(it.ev, history.Entry{At: t.start, Kind: history.KindDigest, Status: it.ev.Status, Destination: a.Destination, Detail: dg.id})
		}
	}
	return o.conclude(dg.st, a, len(dg.items), &dg.lastReason)
}

// giveUpDigest dead-letters every notification of the digest, logged once.
// If a dead letter cannot be written, it and those after it stay queued
// and go one by one.
func (o *Outbox) giveUpDigest(j digestJob, log *slog.Logger, reason string, status int) {
	dg := j.dg
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	dead := dg.items
	itemReason := fmt.Sprintf("in digest %s of %d notifications: %s", dg.id, len(dg.items), reason)
	for i, it := range dg.items {
		if err := o.writeDeadLetter(ctx, it, itemReason, status); err != nil {
			log.Error("storing dead letters failed; the digest's other notifications stay queued and go one by one", "dead_lettered", i, "err", err)
			dead = dg.items[:i]
			break
		}
	}
	log.Error("digest dead-lettered", "attempts", j.n, "reason", reason)
	o.finishDigest(dg, dead)
}

// finishDigest records done, the digest's items up to some point
// (delivered or dead-lettered), completed, then lets the digest's lanes
// move on. Items not done go on one by one.
func (o *Outbox) finishDigest(dg *digest, done []*item) {
	o.mu.Lock()
	for _, it := range dg.items {
		it.dg, it.single = nil, true
	}
	o.dropDigestLocked(dg)
	o.mu.Unlock()
	o.complete(dg.st, dg.id, done, dg.items, dg.lanes)
}

// abandonDigest returns an attempt cut short by Run stopping: it did not
// count, and the digest is due again when Run is.
func (o *Outbox) abandonDigest(j digestJob) {
	o.mu.Lock()
	defer o.mu.Unlock()
	dg := j.dg
	dg.st.inflight--
	dg.attempts--
	for _, it := range dg.items {
		o.landedLocked(it)
		it.attempts--
	}
	o.timers.Set(dg, o.clock.Now())
	o.poke()
}

// parkedLocked counts the destination's notifications waiting for a
// digest: parked, or carried by one not yet delivered.
func (st *destState) parkedLocked() int {
	n := 0
	for _, dg := range st.digests {
		if dg.items != nil {
			n += len(dg.items)
			continue
		}
		for _, l := range dg.lanes {
			n += len(l.items)
		}
	}
	return n
}
