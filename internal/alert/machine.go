package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/rules"
)

// The state machine: how a condition moves an instance through pending,
// firing and resolved, at the time of an observation or of a deadline.

func (m *Manager) apply(k string, c rules.Condition) error {
	r := c.Rule
	in := m.instances[k]
	switch {
	case r.Kind == event.KindEvent:
		if !c.Firing {
			return nil
		}
		m.staged = append(m.staged, &transition{k: k, ev: m.newEvent(r, c, uuid.NewString(), c.Time)})
		return nil
	case r.Source == observation.Trap:
		// Trap rules fire on the raising trap and resolve on the matching one.
		if c.Resolve && in != nil && in.State == StateFiring {
			return m.resolve(k, in, c.Time)
		}
		if c.Firing && in == nil {
			in = &Instance{EventID: r.EventID, Device: *c.Device, Key: c.Key, State: StatePending, Since: c.Time}
			m.instances[k] = in
			if expire, ok := m.inv.Unknown(in.Device); ok {
				m.wakeFor(c.Time.Add(expire))
			}
			m.fire(k, in, c, c.Time)
		}
		return nil
	}
	if in == nil {
		if !c.Firing {
			return nil
		}
		in = &Instance{EventID: r.EventID, Device: *c.Device, Key: c.Key, State: StatePending, Since: c.Time, Value: c.Value,
			InstanceID: uuid.NewString()}
		m.instances[k] = in
		if r.For > 0 {
			m.history.Record(m.newEvent(r, c, in.InstanceID, c.Time), history.Entry{At: c.Time, Kind: history.KindPending,
				Detail: fmt.Sprintf("condition holds; fires after for: %v", r.For)})
		}
	}
	in.Value = c.Value
	in.Device = *c.Device
	switch in.State {
	case StatePending:
		if !c.Firing {
			m.notePending(in, r, fmt.Sprintf("condition cleared after %v, before for: %v: it never fired", c.Time.Sub(in.Since).Round(time.Millisecond), r.For), c.Time)
			delete(m.instances, k)
			return nil
		}
		if c.Time.Sub(in.Since) >= r.For {
			m.fire(k, in, c, c.Time)
			return nil
		}
		m.wakeFor(in.Since.Add(r.For))
	case StateFiring:
		switch {
		case c.Clear && in.Clearing.IsZero():
			in.Clearing = c.Time
			if r.ClearFor == 0 {
				return m.resolve(k, in, c.Time)
			}
			m.wakeFor(in.Clearing.Add(r.ClearFor))
		case c.Clear && c.Time.Sub(in.Clearing) >= r.ClearFor:
			return m.resolve(k, in, c.Time)
		case !c.Clear:
			in.Clearing = time.Time{}
		}
	}
	return nil
}

// newEvent renders the rule's templates for c. A failed render still
// makes the event, with the rule's fallback name and description: counted
// and logged, never dropped.
func (m *Manager) newEvent(r *rules.Rule, c rules.Condition, instanceID string, at time.Time) event.Event {
	name, desc, err := r.Render(rules.TemplateData{Device: c.Device, Key: c.Key, Value: c.Value, Vars: c.Vars})
	if err != nil {
		m.faults.Template(r.EventID, err)
	}
	return event.Event{
		InstanceID: instanceID, EventID: r.EventID, Name: name, EventName: r.EventName, Description: desc,
		Category: r.Category, Domain: r.Domain, SubDomain: r.SubDomain, IssueCategory: r.IssueCategory, Severity: r.Severity,
		Source: string(r.Source), Timestamp: at.UTC(), Status: event.StatusActive, Kind: r.Kind,
		Device: *c.Device,
		Key:    c.Key,
	}
}

// notePending tells history that a pending instance ends without firing
// (only those that waited for `for` are in it).
func (m *Manager) notePending(in *Instance, r *rules.Rule, detail string, at time.Time) {
	if in.InstanceID == "" || r == nil || r.For <= 0 {
		return
	}
	ev := event.Event{InstanceID: in.InstanceID, EventID: in.EventID, Device: in.Device, Key: in.Key, Status: event.StatusActive}
	m.history.Record(ev, history.Entry{At: at, Kind: history.KindNotSent, Detail: detail})
}

func (m *Manager) fire(k string, in *Instance, c rules.Condition, at time.Time) {
	if in.InstanceID == "" {
		in.InstanceID = uuid.NewString() // a trap's, or one stored before instance ids were chosen at pending
	}
	ev := m.newEvent(c.Rule, c, in.InstanceID, at)
	in.State = StateFiring
	in.ActiveAt = at
	in.Clearing = time.Time{}
	in.Event = &ev
	m.log.Info("alert firing", "event_id", ev.EventID, "device", ev.Device.Name, "key", ev.Key, "instance_id", ev.InstanceID)
	m.stage(k, in, ev)
}

func (m *Manager) resolve(k string, in *Instance, at time.Time) error {
	if in.Event == nil {
		m.forget(k)
		return nil
	}
	if in.ResolveAfter != nil || (in.Unsent != nil && in.Unsent.Status == event.StatusResolved) {
		return nil // already resolving, waiting for the store or the outbox
	}
	ev := *in.Event
	ev.Status = event.StatusResolved
	ev.Timestamp = at.UTC()
	m.log.Info("alert resolved", "event_id", ev.EventID, "device", ev.Device.Name, "key", ev.Key, "instance_id", ev.InstanceID)
	if in.Unsent != nil {
		// The active is still waiting: the resolve follows it, in order.
		in.ResolveAfter = &ev
		return nil
	}
	m.stage(k, in, ev)
	return nil
}

// stage records ev as the instance's unsent transition, to be stored and
// dispatched by the next commit.
func (m *Manager) stage(k string, in *Instance, ev event.Event) {
	in.Unsent = &ev
	t := &transition{k: k, in: in, ev: ev}
	if ev.Status == event.StatusResolved {
		t.resolveTo = in.ResolveTo
	}
	m.staged = append(m.staged, t)
}

// forget drops the instance; the deletion is written behind, or, for a
// trap alert of a cluster, a tombstone (replay.go).
func (m *Manager) forget(k string) {
	if in := m.instances[k]; in != nil {
		delete(m.instances, k)
		if in.BusSeq > 0 {
			m.bury(k, in)
			return
		}
		m.behind.put(k, nil, in.EventID, in.Device.Name)
	}
}

// Tick applies the deadlines due at Options.Now (pending alerts whose
// `for` has elapsed, clearing ones whose `clear_for` has) and returns the
// next one (zero if none). Run calls it itself; callers that drive a
// simulated clock without Run (rule tests) call it when that clock reaches
// the deadline.
func (m *Manager) Tick(ctx context.Context) time.Time { return m.tick(ctx) }

// tick applies due deadlines and returns the next one (zero if none).
func (m *Manager) tick(ctx context.Context) time.Time {
	m.ticks.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	retryUnsent := !m.unsentRetry.IsZero() && !now.Before(m.unsentRetry)
	if retryUnsent {
		m.unsentRetry = time.Time{} // commit sets it again if they fail again
		m.staged = append(m.staged, m.failedEvents...)
		m.failedEvents = nil
	} else if !m.unsentRetry.IsZero() {
		consider(m.unsentRetry)
	}
	// Map order: a deadline scan of ten thousand alerts in an outage must
	// not sort them on every wake; transitions of different alerts are
	// independent, and one alert has at most one per scan.
	for k, in := range m.instances {
		if in.Unsent != nil {
			// A transition the store or the outbox refused: handed over
			// again here rather than only at the next start or reload.
			if retryUnsent {
				m.stage(k, in, *in.Unsent)
			}
			continue
		}
		r := m.set.ByEventID(in.EventID)
		if r == nil {
			continue
		}
		switch {
		case in.State == StatePending && r.Source != observation.Trap:
			due := in.Since.Add(r.For)
			if now.Before(due) {
				consider(due)
				continue
			}
			m.fire(k, in, rules.Condition{Rule: r, Device: &in.Device, Key: in.Key, Time: due, Firing: true, Value: in.Value}, due)
		case in.State == StateFiring && !in.Clearing.IsZero():
			due := in.Clearing.Add(r.ClearFor)
			if now.Before(due) {
				consider(due)
				continue
			}
			if err := m.resolve(k, in, due); err != nil {
				m.log.Error("resolving alert", "event_id", in.EventID, "device", in.Device.Name, "err", err)
			}
		case in.State == StateFiring && r.Source == observation.Trap:
			expire, ok := m.inv.Unknown(in.Device)
			if !ok {
				continue
			}
			due := in.ActiveAt.Add(expire)
			if now.Before(due) {
				consider(due)
				continue
			}
			m.log.Info("resolving an unknown trap sender's alert: no clear trap within traps.unknown_expire",
				"event_id", in.EventID, "device", in.Device.Name, "key", in.Key, "unknown_expire", expire.String())
			if err := m.resolve(k, in, due); err != nil {
				m.log.Error("resolving alert", "event_id", in.EventID, "device", in.Device.Name, "err", err)
			}
		}
	}
	_ = m.commit(ctx) // failures are logged; they stay unsent in the store
	m.planned = next
	return next
}
