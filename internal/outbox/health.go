package outbox

import (
	"log/slog"
	"time"

	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/schedule"
)

// A destination's health (SPEC 6, "A receiver that comes back"). Backoff
// belongs to the destination, not to each notification:
//
//   - Healthy, a notification that fails is retried on its own backoff
//     (retry.initial … retry.max) while the other lanes go on: a payload the
//     receiver refuses, or one request that timed out, holds up nobody.
//   - Failing: after failingAfter retryable failures in a row with no answer
//     between, of at least two notifications (or of the destination's only
//     lane, when there is nothing else to tell by), every lane waits and one
//     probe at a time goes: the oldest pending notification, at most every
//     retry.probe_interval (Retry-After when longer). Waiting lanes are due
//     again at their max_age, which dead-letters them without a request.
//   - Any answer but a retryable failure (delivered, or refused for good)
//     makes it healthy again, and every waiting lane is due at once.
//
// The oldest might be the one the receiver refuses rather than the receiver
// being down. So the probe steps aside, when another notification waits,
// once it was the probe for retry.max, or at once when the failing rests on
// it alone: it is then suspect, retried on its own backoff, never the probe
// again while another waits and never counted towards failing.
//
// Chat digests keep their own schedule: their results count here, and at
// recovery one waiting for a retry is due at once.
type health struct {
	st      *destState
	failing bool
	since   time.Time // when it started failing
	reason  string    // the last retryable failure

	// Retryable failures in a row since the last answer, the first one's
	// notification, and whether another notification failed since.
	streak int
	first  string
	mixed  bool
	lone   bool // failing began on one notification alone, and only it failed since

	probe     *item     // the notification probed, while failing
	probeFrom time.Time // since when it is
	probing   bool      // its attempt is under way
	probes    int       // probes sent since failing began
	notBefore time.Time // the earliest the next probe may go

	// The next probe, while failing, none is under way and a lane waits.
	schedule.Due
}

// failingAfter is how many retryable failures in a row, with no answer
// between, make a destination failing: more than two, so that the odd
// failures of a busy receiver that mostly works seldom stop its flow.
const failingAfter = 3

// Health is a destination's state as /api/v1/deliveries shows it.
type Health struct {
	State        string     `json:"state"` // healthy | failing
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// NextProbeAt is absent while a probe is under way.
	NextProbeAt *time.Time `json:"next_probe_at,omitempty"`
	Probes      int        `json:"probes,omitempty"` // sent since it started failing
	LastError   string     `json:"last_error,omitempty"`
}

// Health states.
const (
	StateHealthy = "healthy"
	StateFailing = "failing"
)

// Health returns the destination's state.
func (o *Outbox) Health(destination string) Health {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.dests[destination]
	if st == nil || !st.health.failing {
		return Health{State: StateHealthy}
	}
	h := &st.health
	out := Health{State: StateFailing, FailingSince: ptr(h.since), Probes: h.probes, LastError: h.reason}
	if h.Queued() {
		out.NextProbeAt = ptr(h.At())
	}
	return out
}

// healthNote is what changed in a destination's health, logged once the
// lock is released.
type healthNote struct {
	began, recovered bool
	reason           string
	pending, probes  int
	interval, down   time.Duration
	stepped          *item // a probe that stepped aside
}

func (n healthNote) log(log *slog.Logger) {
	if n.began {
		log.Warn("destination failing: only its oldest notification is tried until one is delivered",
			"probe_interval", n.interval.String(), "pending", n.pending, "reason", n.reason)
	}
	if n.recovered {
		log.Info("destination recovered: its waiting notifications go now",
			"failing_for", n.down.Round(time.Millisecond).String(), "waiting", n.pending, "probes", n.probes)
	}
	if it := n.stepped; it != nil {
		log.Info("probe steps aside: another notification is tried, this one goes on its own backoff",
			"id", it.id, "event_id", it.ev.EventID, "instance_id", it.ev.InstanceID, "attempts", it.attempts, "reason", it.lastReason)
	}
}

// failedLocked notes a retryable failure of the notification id: the
// probe's, or another's. It says whether the destination is failing now,
// and what to log.
func (o *Outbox) failedLocked(st *destState, id string, suspect, probe bool, err error) (failing bool, note healthNote) {
	h := &st.health
	if st.cfg == nil {
		return false, note // removed by a reload: its queue goes to the dead letters
	}
	now := o.clock.Now()
	h.reason = err.Error()
	next := now.Add(max(st.cfg.Retry.ProbeInterval, notify.RetryAfter(err)))
	if probe {
		h.probing = false
	}
	if h.failing {
		if id != h.first {
			h.lone = false
		}
		if probe {
			h.notBefore = next
			o.timers.Set(h, next)
			o.poke()
		}
		return true, note
	}
	if suspect {
		return false, note // its failures are its own
	}
	switch {
	case h.streak == 0:
		h.first, h.mixed = id, false
	case id != h.first:
		h.mixed = true
	}
	h.streak++
	if h.streak < failingAfter || !h.mixed && len(st.lanes) > 1 {
		return false, note
	}
	h.failing, h.since, h.lone, h.probes, h.probe, h.notBefore = true, now, !h.mixed, 0, nil, next
	o.timers.Set(h, next)
	o.poke()
	return true, healthNote{began: true, reason: h.reason, pending: st.pending, interval: st.cfg.Retry.ProbeInterval}
}

// answeredLocked notes an attempt the receiver answered with anything but
// a retryable failure: the destination works.
func (o *Outbox) answeredLocked(st *destState, probe bool) healthNote {
	h := &st.health
	h.streak = 0
	if probe {
		h.probing = false
	}
	if !h.failing {
		return healthNote{}
	}
	note := healthNote{recovered: true, down: o.clock.Now().Sub(h.since), pending: st.pending, probes: h.probes}
	o.endFailingLocked(st)
	return note
}

// endFailingLocked makes the destination healthy and everything waiting
// due now: held lanes, lanes on their own backoff, digests waiting for a
// retry. A digest still collecting keeps its window.
func (o *Outbox) endFailingLocked(st *destState) {
	h := &st.health
	if !h.failing {
		return
	}
	h.failing, h.probe, h.streak = false, nil, 0
	o.timers.Remove(h)
	now := o.clock.Now()
	for _, l := range st.lanes {
		if l.state == laneWaiting {
			o.timers.Set(l, now)
		}
	}
	for _, dg := range st.digests {
		if dg.items != nil && dg.Queued() {
			o.timers.Set(dg, now)
		}
	}
	o.poke()
}

// holdLocked makes a lane of a failing destination wait for the probe's
// success; it falls due at its head's max_age, to be dead-lettered then.
// The probe, if none is due or under way (it found nothing to try, or
// nothing was pending), is due again.
func (o *Outbox) holdLocked(st *destState, l *lane) {
	l.state = laneWaiting
	o.timers.Set(l, l.items[0].enqueuedAt.Add(st.cfg.Retry.MaxAge))
	if h := &st.health; !h.probing && !h.Queued() {
		o.timers.Set(h, later(o.clock.Now(), h.notBefore))
	}
	o.poke()
}

// idleLocked unschedules the probe of a failing destination with nothing
// pending: holdLocked schedules it again.
func (o *Outbox) idleLocked(st *destState) {
	if st.pending == 0 {
		o.timers.Remove(&st.health)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pickProbeLocked chooses the lane whose head is the next probe: the
// oldest waiting notification that is not suspect, unless it steps aside
// (see health); a suspect one only when no other waits. Nil when no lane
// can be tried now (all under way, parked in a digest, or being copied).
func (o *Outbox) pickProbeLocked(st *destState, now time.Time) (*lane, healthNote) {
	h := &st.health
	older := func(a, b *lane) bool { return b == nil || a.items[0].order < b.items[0].order }
	var best, second, suspect *lane
	for _, l := range st.lanes {
		if l.state != laneWaiting || l.items[0].relocating {
			continue
		}
		switch {
		case l.items[0].suspect:
			if older(l, suspect) {
				suspect = l
			}
		case older(l, best):
			best, second = l, best
		case older(l, second):
			second = l
		}
	}
	var note healthNote
	if best != nil && second != nil && best.items[0] == h.probe && (h.lone || now.Sub(h.probeFrom) >= st.cfg.Retry.Max) {
		best.items[0].suspect = true
		note.stepped = best.items[0]
		best = second
	}
	if best == nil {
		best = suspect
	}
	if best != nil && best.items[0] != h.probe {
		h.probe, h.probeFrom = best.items[0], now
	}
	return best, note
}

// pastMaxAge says whether the item is past its destination's max_age.
func pastMaxAge(st *destState, it *item, now time.Time) bool {
	return !now.Before(it.enqueuedAt.Add(st.cfg.Retry.MaxAge))
}
