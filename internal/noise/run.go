package noise

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/store"
)

// tickEvery coalesces the wake-ups a storm of device changes causes: held
// alerts are judged again at most this often (well inside the second
// SPEC 11.4 allows at a mute's end).
const tickEvery = 200 * time.Millisecond

// Run judges held alerts again until ctx ends: when a parent's verdict
// arrives or its wait runs out, when a parent or site comes back and the
// device's own `for` has passed, when a mute ends, when a flap episode goes
// quiet. It also evaluates sites whose devices changed.
func (g *Gate) Run(ctx context.Context) error {
	defer g.reportUnstored()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := g.tick(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(g.now()), 0)
		}
		timer.Reset(wait)
		var mutes <-chan struct{}
		if g.mutes != nil {
			mutes = g.mutes.Changed()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-mutes:
			g.mu.Lock()
			g.gen++ // a silence came or went: what it muted is judged again
			g.mu.Unlock()
		case <-g.wake:
			select { // let a burst of changes settle into one pass
			case <-ctx.Done():
				return nil
			case <-time.After(tickEvery):
			}
		}
	}
}

// Tick judges what is due at Options.Now and returns when to look next
// (zero: nothing waits on time). Run calls it itself; callers that drive a
// simulated clock without Run (rule tests) call it after every change and
// when that clock reaches the time it returned.
func (g *Gate) Tick(ctx context.Context) time.Time { return g.tick(ctx) }

// tick judges what is due and returns when to look next (zero: nothing
// waits on time).
func (g *Gate) tick(ctx context.Context) time.Time {
	now := g.now()
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	g.mu.Lock()
	if !g.nextMute.IsZero() && !now.Before(g.nextMute) {
		g.gen++ // a mute started or ended
	}
	derived := g.evaluateSitesLocked(now)
	for _, st := range g.sites {
		if st.dirty {
			consider(st.checked.Add(siteEvery))
		}
	}
	var due []string
	for _, k := range keysOf(g.recs) {
		rec := g.recs[k]
		if g.idleLocked(rec, now) {
			delete(g.recs, k) // nothing held, told or counted any more
			continue
		}
		switch {
		case rec.Flapping:
			end := g.flapEndLocked(rec)
			if !now.Before(end) {
				due = append(due, k)
			} else {
				consider(end)
			}
		case rec.Held != nil:
			// Judged again after a change, or when its own time comes.
			timed := (!rec.Deadline.IsZero() && !now.Before(rec.Deadline)) || (!rec.Eligible.IsZero() && !now.Before(rec.Eligible))
			if rec.judged != g.gen || timed {
				due = append(due, k)
			}
			if now.Before(rec.Deadline) {
				consider(rec.Deadline)
			}
			if now.Before(rec.Eligible) {
				consider(rec.Eligible)
			}
		case rec.shown != nil && rec.Active:
			if at := rec.updated.Add(updateEvery); now.Before(at) {
				consider(at)
			} else {
				due = append(due, k)
			}
		}
	}
	g.nextMute = time.Time{}
	if g.mutes != nil {
		if b, ok := g.mutes.NextBoundary(now); ok {
			consider(b)
			g.nextMute = b
		}
	}
	gen := g.gen
	g.mu.Unlock()
	for _, o := range derived {
		g.emitOne(o)
	}
	for _, k := range due {
		if ctx.Err() != nil {
			break
		}
		g.redecide(ctx, k, now, gen)
	}
	return next
}

// idleLocked: the record only remembers changes older than its flap
// window, so it can go (a key seen once must not stay for ever).
func (g *Gate) idleLocked(rec *record, now time.Time) bool {
	if rec.managed() || rec.stored || rec.shown != nil {
		return false
	}
	if len(rec.Changes) == 0 {
		return true
	}
	p := g.flapPolicy(rec.EventID)
	return p.Off || now.Sub(rec.Changes[len(rec.Changes)-1]) > p.Window.D()
}

func (g *Gate) flapEndLocked(rec *record) time.Time {
	if len(rec.Changes) == 0 {
		return time.Time{}
	}
	return rec.Changes[len(rec.Changes)-1].Add(g.flapPolicy(rec.EventID).Window.D())
}

// redecide judges one held or flapping key again and carries out what
// follows; a failure is logged and retried at the next pass.
func (g *Gate) redecide(ctx context.Context, k string, now time.Time, gen uint64) {
	unlock := g.keys.lock(k)
	defer unlock()
	g.mu.Lock()
	rec := g.recs[k]
	if rec == nil {
		g.mu.Unlock()
		return
	}
	st := g.reconsiderLocked(rec, now)
	rec.judged = gen
	g.mu.Unlock()
	if _, err := g.apply(ctx, k, rec, st); err != nil {
		if errors.Is(err, store.ErrUnavailable) {
			// The store logs its outage; Retry runs this again when it ends.
			g.log.Debug("releasing a held alert waits for the store", "event_id", rec.EventID, "device", rec.Device, "err", err)
			return
		}
		g.log.Error("releasing a held alert failed; tried again shortly", "event_id", rec.EventID, "device", rec.Device, "err", err)
		g.mu.Lock()
		g.poke()
		g.mu.Unlock()
	}
}

// Retry judges every held and flapping alert again now: the store, which
// refused to take what they released, writes again.
func (g *Gate) Retry() {
	g.mu.Lock()
	g.poke()
	g.mu.Unlock()
}

// reportUnstored says, at stop, how many decisions changed but could not
// be stored (the store could not write): a restart does not know them.
func (g *Gate) reportUnstored() {
	g.mu.Lock()
	n := 0
	for _, rec := range g.recs {
		if rec.stored && rec.storedJSON == nil {
			n++
		}
	}
	g.mu.Unlock()
	if n > 0 {
		g.log.Error("stopping with noise-control decisions the store could not take: they are lost", "lost", n)
	}
}

// reconsiderLocked is the timer's decision for one key.
func (g *Gate) reconsiderLocked(rec *record, now time.Time) step {
	if rec.Flapping {
		if now.Before(g.flapEndLocked(rec)) {
			return step{}
		}
		rec.Flapping = false
		g.noteRec(rec, history.KindFlapping, now, fmt.Sprintf("ended: no change for %v", g.flapPolicy(rec.EventID).Window.D()))
		g.log.Info("alert no longer flapping: its real state goes out", "event_id", rec.EventID, "device", rec.Device,
			"key", rec.Key, "active", rec.Active)
		if !rec.Active && rec.Told != nil {
			res := resolveOf(*rec.Told, now)
			return step{send: &res, to: rec.ToldTo, clear: true}
		}
		return step{dirty: true} // still active: its active went out; its resolve follows the real one
	}
	if rec.Held == nil {
		if upd, ok := g.updateLocked(rec, now); ok {
			g.log.Info("alert updated: more devices unreachable behind it", "event_id", upd.EventID, "device", upd.Device.Name,
				"affected", upd.Details["Affected Devices"])
			return step{send: &upd, pass: true}
		}
		return step{}
	}
	held := *rec.Held
	dev := g.deviceLocked(held.Device)
	reason, by := g.holdReasonLocked(dev, held, now)
	switch rec.Reason {
	case ReasonParentWait:
		if reason == ReasonParentWait && now.Before(rec.Deadline) {
			return step{}
		}
		if reason == ReasonParentWait {
			g.log.Warn("parents' verdict did not come in time: the alert goes out", "event_id", held.EventID,
				"device", held.Device.Name, "parents", strings.Join(by, ", "))
			reason, by = g.mutedLocked(dev, held, now)
		}
	case ReasonParent, ReasonSite:
		switch {
		case reason == ReasonParent || reason == ReasonSite:
			changed := !rec.Back.IsZero() || rec.Reason != reason || !slices.Equal(rec.By, by)
			rec.Back, rec.Rejudge, rec.Eligible = time.Time{}, time.Time{}, time.Time{}
			rec.Reason, rec.By = reason, by
			return step{dirty: changed}
		case rec.Back.IsZero():
			// The cause came back: the device is judged from its own
			// next round (rejudgeLocked), or, unpinged, from now.
			rec.Back = now
			if dev.ICMP == nil {
				rec.Rejudge, rec.Eligible = now, now.Add(g.ruleFor(held.EventID))
			} else {
				g.backs[alertKey(held)] = rec
			}
			return step{dirty: true}
		case rec.Eligible.IsZero() || now.Before(rec.Eligible):
			return step{}
		}
	}
	if reason != "" {
		if reason != rec.Reason {
			g.holdLocked(rec, held, reason, by, now, dev)
			return step{dirty: true}
		}
		changed := !slices.Equal(rec.By, by)
		rec.By = by
		return step{dirty: changed}
	}
	g.log.Info("held alert released", "event_id", held.EventID, "device", held.Device.Name, "key", held.Key,
		"instance_id", held.InstanceID, "was", rec.Reason)
	out := g.decorateLocked(held, dev)
	g.showLocked(rec, out, now)
	return step{send: &out, told: true, release: true, was: rec.Reason}
}

// emitOne hands a derived observation on; a nil Emit drops it (tests).
func (g *Gate) emitOne(o observation.Observation) {
	if g.emit != nil {
		g.emit(o)
	}
}
