package noise

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/inventory"
)

// record is the receivers' picture of one alert key (rule, device, key):
// what the gate told them or holds back, and its recent changes.
type record struct {
	EventID string `json:"event_id"`
	Device  string `json:"device"`
	Key     string `json:"key,omitempty"`

	// Told is an active the gate itself sent (a release, a flapping
	// active), and ToldTo where: its resolve goes there. Actives that
	// passed straight through are remembered by the alert manager.
	Told   *event.Event `json:"told,omitempty"`
	ToldTo []string     `json:"told_to,omitempty"`

	// Held is an active not sent, for Reason (By names the causes or
	// mutes). Deadline bounds a wait for parents' verdict; Back is when
	// the parent or site behind a suppressed device came back, Rejudge
	// the device's first round after that, Eligible when it may be told
	// if it still fails.
	Held     *event.Event `json:"held,omitempty"`
	Reason   string       `json:"reason,omitempty"`
	By       []string     `json:"by,omitempty"`
	HeldAt   time.Time    `json:"held_at,omitzero"`
	Deadline time.Time    `json:"deadline,omitzero"`
	Back     time.Time    `json:"back,omitzero"`
	Rejudge  time.Time    `json:"rejudge,omitzero"`
	Eligible time.Time    `json:"eligible,omitzero"`

	// Changes are the recent transitions (actives and resolves), for
	// flapping; Flapping holds every change back until the key has been
	// quiet for the flap window.
	Changes  []time.Time `json:"changes,omitempty"`
	Flapping bool        `json:"flapping,omitempty"`
	Active   bool        `json:"active,omitempty"` // the true state, as last dispatched
	Last     string      `json:"last,omitempty"`   // instance id and status last decided: a replay is not a change

	stored     bool   // a version of it is in the store
	storedJSON []byte // that version: an unchanged record is not written again

	// shown is the active receivers have with details["Affected Devices"]
	// (shownCount devices, sent or updated at updated): as more devices
	// become unreachable behind it, editors (Slack bot) get updates.
	shown      *event.Event
	shownCount int
	updated    time.Time

	judged uint64 // the gate's gen when the timers last judged it
}

// managed: the record holds something the alert manager does not know, so
// it must survive a restart.
func (r *record) managed() bool { return r.Told != nil || r.Held != nil || r.Flapping }

func alertKey(ev event.Event) string {
	h := sha256.Sum256([]byte(ev.EventID + "\x00" + ev.Device.Name + "\x00" + ev.Key))
	return "n_" + hex.EncodeToString(h[:16])
}

// step is what a decision asks to do outside the gate's lock.
type step struct {
	send    *event.Event // dispatch this
	to      []string     // a resolve's destinations
	dirty   bool         // the record changed: store it
	told    bool         // the sent active becomes the record's Told
	release bool         // the held active went out: the record holds nothing more
	was     string       // a release's hold reason, for history
	clear   bool         // the sent resolve ends the record's Told
	result  []string     // what Dispatch answers when nothing is sent
	pass    bool         // plain pass-through: answer what routing answers
}

// Dispatch is the alert manager's hand-over (alert.Dispatcher): it decides
// and routes, holds or drops the transition. A replay of a transition
// already decided (after a crash or a refused write) decides the same.
func (g *Gate) Dispatch(ctx context.Context, ev event.Event, resolveTo []string) ([]string, error) {
	k := alertKey(ev)
	unlock := g.keys.lock(k)
	defer unlock()
	g.mu.Lock()
	st, rec := g.decideLocked(k, ev, resolveTo)
	g.mu.Unlock()
	return g.apply(ctx, k, rec, st)
}

// apply carries out a decision: the send first (durable in the outbox),
// then the record, so a crash in between sends again with the same
// webhook-id rather than losing the notification.
func (g *Gate) apply(ctx context.Context, k string, rec *record, st step) ([]string, error) {
	var dests []string
	if st.send != nil {
		var err error
		if dests, err = g.next.Dispatch(ctx, *st.send, st.to); err != nil {
			return nil, err
		}
		if st.release {
			g.note(*st.send, history.KindReleased, g.now(), "was "+st.was+": sent now, to "+strings.Join(dests, ", "))
		}
	}
	if rec == nil {
		if st.pass {
			return dests, nil
		}
		return st.result, nil
	}
	g.mu.Lock()
	switch {
	case st.told:
		rec.Told, rec.ToldTo = st.send, dests
	case st.clear:
		rec.Told, rec.ToldTo = nil, nil
	}
	if st.release {
		rec.Held, rec.Reason, rec.By = nil, "", nil
		rec.HeldAt, rec.Deadline, rec.Back, rec.Rejudge, rec.Eligible = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	}
	if st.send == nil && !st.dirty && !st.told && !st.clear && !st.release {
		g.mu.Unlock()
		return st.result, nil // nothing changed: nothing to store
	}
	snapshot, del := g.snapshotLocked(k, rec)
	g.mu.Unlock()
	if err := g.persist(ctx, k, snapshot, del); err != nil {
		g.mu.Lock()
		rec.storedJSON = nil // not what the store holds: write it again next time
		g.mu.Unlock()
		return nil, err
	}
	if st.pass {
		return dests, nil
	}
	return st.result, nil
}

// decideLocked is the decision for one transition (SPEC 11). It returns
// the record when it changed.
func (g *Gate) decideLocked(k string, ev event.Event, resolveTo []string) (step, *record) {
	now := g.now()
	dev := g.deviceLocked(ev.Device)
	if ev.Kind == event.KindEvent {
		return g.decideOneShotLocked(ev, dev, now), nil
	}
	rec := g.recs[k]
	if rec == nil {
		rec = &record{EventID: ev.EventID, Device: ev.Device.Name, Key: ev.Key}
		g.recs[k] = rec
	}
	fresh := rec.Last != ev.InstanceID+"/"+string(ev.Status)
	rec.Last = ev.InstanceID + "/" + string(ev.Status)
	if fresh {
		rec.Changes = append(rec.Changes, now)
	}
	rec.Active = ev.Status == event.StatusActive
	g.startFlappingLocked(rec, ev, now)

	if ev.Status == event.StatusResolved {
		rec.shown = nil
		st := g.decideResolveLocked(rec, ev, resolveTo)
		st.dirty = true
		return st, rec
	}
	switch {
	case rec.Held != nil && rec.Held.InstanceID == ev.InstanceID:
		return step{dirty: true}, rec // a replay of what is held
	case rec.Told != nil && rec.Told.InstanceID == ev.InstanceID:
		return step{result: rec.ToldTo, dirty: true}, rec // a replay of what was sent
	}
	// An unreachable device, a pending verdict or a mute keeps an active
	// back whether or not the key flaps: the flapping of a device behind a
	// flapping parent is the parent's.
	if reason, by := g.holdReasonLocked(dev, ev, now); reason != "" {
		g.holdLocked(rec, ev, reason, by, now, dev)
		return step{dirty: true}, rec
	}
	if rec.Flapping {
		if rec.Told != nil {
			g.note(ev, history.KindSuppressed, now, "flapping: receivers already have an active of it")
			return step{dirty: true}, rec // receivers already have an active of this key
		}
		flag := ev
		flag.Details = maps.Clone(ev.Details)
		if flag.Details == nil {
			flag.Details = map[string]string{}
		}
		flag.Details["Flapping"] = fmt.Sprintf("%d changes in %v", len(rec.Changes), g.flapPolicy(ev.EventID).Window.D())
		return step{send: &flag, told: true}, rec
	}
	out := g.decorateLocked(ev, dev)
	g.showLocked(rec, out, now)
	if rec.managed() || rec.stored {
		return step{send: &out, pass: true}, rec
	}
	return step{send: &out, pass: true}, nil
}

func (g *Gate) decideResolveLocked(rec *record, ev event.Event, resolveTo []string) step {
	if rec.Held != nil && rec.Held.InstanceID == ev.InstanceID {
		// Never told: fired and cleared behind a parent, inside a mute
		// or while waiting for a verdict. Nothing to send, ever.
		g.log.Info("held alert resolved before it was sent: nothing sent", "event_id", ev.EventID, "device", ev.Device.Name,
			"key", ev.Key, "instance_id", ev.InstanceID, "reason", rec.Reason)
		g.note(ev, history.KindNotSent, g.now(), "resolved while held back ("+rec.Reason+"): neither active nor resolve is sent")
		rec.Held, rec.Reason, rec.By = nil, "", nil
		rec.Deadline, rec.Back, rec.Rejudge, rec.Eligible = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	}
	if rec.Flapping {
		g.note(ev, history.KindSuppressed, g.now(), "flapping: the real state goes out once it is quiet")
		if rec.Told == nil && len(resolveTo) > 0 {
			// It was told through routing: the gate takes over its resolve.
			told := ev
			told.Status = event.StatusActive
			rec.Told, rec.ToldTo = &told, resolveTo
		}
		return step{} // the real state goes out when the flapping ends
	}
	if rec.Told != nil {
		res := resolveOf(*rec.Told, ev.Timestamp)
		return step{send: &res, to: rec.ToldTo, clear: true}
	}
	if len(resolveTo) == 0 {
		return step{}
	}
	return step{send: &ev, to: resolveTo, pass: true}
}

// resolveOf is the resolve of a told active: its instance, at when.
func resolveOf(told event.Event, at time.Time) event.Event {
	res := told
	res.Status, res.Timestamp = event.StatusResolved, at
	return res
}

// decideOneShotLocked: a one-shot event is sent now or never.
func (g *Gate) decideOneShotLocked(ev event.Event, dev *inventory.Device, now time.Time) step {
	reason, by := g.holdReasonLocked(dev, ev, now)
	switch reason {
	case "":
		out := g.decorateLocked(ev, dev)
		return step{send: &out, pass: true}
	case ReasonParentWait:
		// A one-shot cannot wait on its own: a failing device's event
		// goes out unless its parents already explain it.
		return step{send: &ev, pass: true}
	case ReasonMaintenance, ReasonSilence:
		g.muted = append(g.muted, MutedEvent{Event: ev, MutedBy: by, At: now})
		if len(g.muted) > maxMuted {
			g.muted = g.muted[len(g.muted)-maxMuted:]
		}
	}
	g.metrics.decisions.WithLabelValues(reason).Inc()
	g.note(ev, holdKind(reason), now, reason+": "+strings.Join(by, ", ")+": a one-shot event is not sent later")
	g.log.Info("one-shot event not sent", "event_id", ev.EventID, "device", ev.Device.Name, "reason", reason, "by", by)
	return step{}
}

// MutedEvent is a one-shot event a mute kept from the receivers.
type MutedEvent struct {
	Event   event.Event `json:"event"`
	MutedBy []string    `json:"muted_by"`
	At      time.Time   `json:"at"`
}

// maxMuted bounds the muted one-shot events kept for the API.
const maxMuted = 1000

// deviceLocked is the inventory's record of the event's device, or the
// event's own copy for a device the inventory no longer has.
func (g *Gate) deviceLocked(d inventory.Device) *inventory.Device {
	if cur, ok := g.inv.Current(d); ok {
		return cur
	}
	return &d
}

// holdReasonLocked is why an active of dev must not be told now: its
// device is unreachable (parent, site), its parents' verdict is still
// pending (parent_wait), or a maintenance window or silence mutes it.
func (g *Gate) holdReasonLocked(dev *inventory.Device, ev event.Event, now time.Time) (string, []string) {
	if dev.Role == inventory.SiteRole && dev.Address == "" {
		return g.mutedLocked(dev, ev, now) // a site's own alert: only mutes apply
	}
	if g.unreachableLocked(dev.Name) {
		reason := ReasonParent
		if !g.parentExplainedLocked(dev) {
			reason = ReasonSite
		}
		return reason, g.causesLocked(dev)
	}
	if g.failingLocked(dev.Name) && !g.verdictLocked(dev) {
		return ReasonParentWait, g.pingedParentsLocked(dev)
	}
	return g.mutedLocked(dev, ev, now)
}

func (g *Gate) mutedLocked(dev *inventory.Device, ev event.Event, now time.Time) (string, []string) {
	if g.mutes != nil {
		if by := g.mutes.MutedBy(dev, ev.EventID, now); len(by) > 0 {
			reason := ReasonSilence
			if strings.HasPrefix(by[0], "maintenance") {
				reason = ReasonMaintenance
			}
			return reason, by
		}
	}
	return "", nil
}

// holdLocked holds an active back, counted and logged once.
func (g *Gate) holdLocked(rec *record, ev event.Event, reason string, by []string, now time.Time, dev *inventory.Device) {
	first := rec.Held == nil || rec.Held.InstanceID != ev.InstanceID || rec.Reason != reason
	held := ev
	rec.Held, rec.By = &held, by
	if rec.HeldAt.IsZero() || rec.Held.InstanceID != ev.InstanceID {
		rec.HeldAt = now
	}
	rec.Reason = reason
	rec.Deadline, rec.Back, rec.Rejudge, rec.Eligible = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if reason == ReasonParentWait {
		rec.Deadline = ev.Timestamp.Add(g.parentRoundTripLocked(dev))
		if !rec.Deadline.After(now) {
			rec.Deadline = now.Add(g.parentRoundTripLocked(dev))
		}
	}
	if first {
		g.note(ev, holdKind(reason), now, reason+": "+strings.Join(by, ", "))
		g.metrics.decisions.WithLabelValues(reason).Inc()
		g.log.Info("alert held back", "event_id", ev.EventID, "device", ev.Device.Name, "key", ev.Key,
			"instance_id", ev.InstanceID, "reason", reason, "by", strings.Join(by, ", "))
	}
	g.poke()
}

// showLocked notes an active sent with devices unreachable behind it, for
// its updates.
func (g *Gate) showLocked(rec *record, sent event.Event, now time.Time) {
	if d, ok := sent.Details["Affected Devices"]; ok {
		n, _ := strconv.Atoi(d[:strings.IndexByte(d, ':')])
		rec.shown, rec.shownCount, rec.updated = &sent, n, now
	}
}

// updateEvery spaces the updates of one alert's count: a growing outage
// edits its message every few seconds, not for every device.
const updateEvery = 10 * time.Second

// updateLocked is the update of a shown active whose count of unreachable
// devices grew, when one is due.
func (g *Gate) updateLocked(rec *record, now time.Time) (event.Event, bool) {
	if rec.shown == nil || !rec.Active || rec.Held != nil || rec.Flapping || now.Before(rec.updated.Add(updateEvery)) {
		return event.Event{}, false
	}
	dev := g.deviceLocked(rec.shown.Device)
	affected := g.affectedLocked(dev)
	if len(affected) <= rec.shownCount {
		return event.Event{}, false
	}
	upd := *rec.shown
	upd.Details = maps.Clone(upd.Details)
	upd.Details["Affected Devices"] = affectedDetail(affected)
	upd.Update = true
	rec.shown, rec.shownCount, rec.updated = &upd, len(affected), now
	return upd, true
}

// decorateLocked adds details["Affected Devices"] to an active of a device
// or site that others are unreachable behind (SPEC 11.1).
func (g *Gate) decorateLocked(ev event.Event, dev *inventory.Device) event.Event {
	if ev.Status != event.StatusActive {
		return ev
	}
	affected := g.affectedLocked(dev)
	if len(affected) == 0 {
		return ev
	}
	ev.Details = maps.Clone(ev.Details)
	if ev.Details == nil {
		ev.Details = map[string]string{}
	}
	ev.Details["Affected Devices"] = affectedDetail(affected)
	return ev
}

// startFlappingLocked counts the key's changes within its flap window and
// starts an episode at the threshold (SPEC 11.3).
func (g *Gate) startFlappingLocked(rec *record, ev event.Event, now time.Time) {
	p := g.flapPolicy(ev.EventID)
	if p.Off {
		rec.Changes = nil
		return
	}
	cut := now.Add(-p.Window.D())
	i := 0
	for i < len(rec.Changes) && rec.Changes[i].Before(cut) {
		i++
	}
	rec.Changes = rec.Changes[i:]
	if len(rec.Changes) > p.Changes {
		rec.Changes = rec.Changes[len(rec.Changes)-p.Changes:]
	}
	if !rec.Flapping && len(rec.Changes) >= p.Changes {
		rec.Flapping = true
		g.note(ev, history.KindFlapping, now, fmt.Sprintf("started: %d changes in %v", len(rec.Changes), p.Window.D()))
		g.metrics.decisions.WithLabelValues(ReasonFlapping).Inc()
		g.log.Warn("alert flapping: changes held back until it is quiet", "event_id", ev.EventID, "device", ev.Device.Name,
			"key", ev.Key, "changes", len(rec.Changes), "window", p.Window.D())
		g.poke()
	}
}

// snapshotLocked encodes the record for the store, or says to delete it
// when nothing in it needs to survive a restart.
func (g *Gate) snapshotLocked(k string, rec *record) ([]byte, bool) {
	if !rec.managed() {
		if len(rec.Changes) == 0 {
			delete(g.recs, k)
		}
		if !rec.stored {
			return nil, false
		}
		rec.stored, rec.storedJSON = false, nil
		return nil, true
	}
	b, err := json.Marshal(rec)
	if err != nil {
		g.log.Error("encoding a noise record", "event_id", rec.EventID, "device", rec.Device, "err", err)
		return nil, false
	}
	if rec.stored && bytes.Equal(b, rec.storedJSON) {
		return nil, false // nothing new to write
	}
	rec.stored, rec.storedJSON = true, b
	return b, false
}

func (g *Gate) persist(ctx context.Context, k string, b []byte, del bool) error {
	switch {
	case del:
		if err := g.store.Delete(ctx, k); err != nil {
			return fmt.Errorf("noise: forgetting a decision: %w", err)
		}
	case b != nil:
		if err := g.store.Put(ctx, k, b); err != nil {
			return fmt.Errorf("noise: storing a decision: %w", err)
		}
	}
	return nil
}

// load reads the stored records: decisions survive a restart.
// Resync makes the gate's records (what is held, suppressed, muted, sent)
// what the store holds now — what another node decided while it led the
// cluster — and judges them again. A cluster's new leader calls it before
// Run; the device and site picture rebuilds from the observations that
// follow.
func (g *Gate) Resync(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.recs, g.backs = map[string]*record{}, map[string]*record{}
	if err := g.load(ctx); err != nil {
		return err
	}
	for k, rec := range g.recs {
		if rec.Held != nil && !rec.Back.IsZero() && rec.Rejudge.IsZero() {
			g.backs[k] = rec
		}
	}
	g.poke()
	return nil
}

func (g *Gate) load(ctx context.Context) error {
	all, err := g.store.All(ctx)
	if err != nil {
		return fmt.Errorf("loading noise-control decisions: %w", err)
	}
	var errs []error
	for k, b := range all {
		rec := &record{}
		if err := json.Unmarshal(b, rec); err != nil {
			errs = append(errs, fmt.Errorf("noise record %s: %w", k, err))
			continue
		}
		rec.stored, rec.storedJSON = true, b
		g.recs[k] = rec
	}
	for _, err := range errs {
		g.log.Error("dropping an unreadable noise-control record", "err", err) // a corrupt record must not stop the daemon
	}
	return nil
}

// rejudgeLocked notes, for the alerts held behind a parent or site that
// came back, the device's first round since: counted from it, a device
// still failing is told after its rule's `for` (SPEC 11.1).
func (g *Gate) rejudgeLocked(device string, at time.Time) {
	for k, rec := range g.backs {
		if rec.Held == nil || rec.Back.IsZero() || !rec.Rejudge.IsZero() {
			delete(g.backs, k) // released, dropped or judged meanwhile
			continue
		}
		if rec.Device != device || !at.After(rec.Back) {
			continue
		}
		rec.Rejudge = at
		rec.Eligible = at.Add(g.ruleFor(rec.EventID))
		delete(g.backs, k)
		g.poke()
	}
}

// keysOf lists record keys sorted, for deterministic timer passes.
func keysOf(m map[string]*record) []string {
	ks := slices.Collect(maps.Keys(m))
	slices.Sort(ks)
	return ks
}
