package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/store"
)

// The crash-safe hand-over of transitions: stored as unsent, dispatched to
// routing and the outbox, then marked sent (written behind).

// commit stores the staged transitions in one journal write, dispatches
// them concurrently, then queues the instances' own records and the
// journal's deletion behind. A transition that fails stays unsent, in the
// store if it got there: dispatched again at the next start or reload.
func (m *Manager) commit(ctx context.Context) error {
	ts := m.staged
	m.staged = nil
	if len(ts) == 0 {
		return nil
	}
	m.rev++
	rev := m.rev
	journal, err := m.save(ctx, rev, ts)
	for _, t := range ts {
		if t.in != nil {
			t.in.unstored = err != nil || t.record == nil
		}
		if t.in != nil && t.err == nil && err != nil {
			t.err = err
		}
	}
	m.dispatchAll(ctx, ts)

	var errs []error
	for _, t := range ts {
		if t.err != nil {
			if t.in == nil {
				m.keepFailedEvent(t)
			}
			if m.unsentRetry.IsZero() {
				m.unsentRetry = m.now().Add(unsentRetryInterval)
				m.poke() // Run plans its timer for the retry
			}
			// nocbridge_alert_transitions_unsent counts what waits.
			m.log.Log(ctx, store.LogLevel(t.err, slog.LevelError), "alert transition failed; kept and tried again", "event_id", t.ev.EventID, "device", t.ev.Device.Name,
				"key", t.ev.Key, "status", t.ev.Status, "err", t.err)
			errs = append(errs, t.err)
			if t.record != nil && journal != nil {
				// Journaled, not dispatched: keep it unsent past the
				// journal entry's deletion.
				m.behind.put(t.k, t.record, t.in.EventID, t.in.Device.Name)
			}
			continue
		}
		if t.in == nil {
			continue // a one-shot event leaves no state
		}
		t.in.Unsent = nil
		if t.ev.Status == event.StatusResolved {
			if m.instances[t.k] == t.in {
				m.forget(t.k)
			}
			continue
		}
		t.in.ResolveTo = t.targets
		if r := t.in.ResolveAfter; r != nil {
			// The active went: its resolve, held behind it, goes next.
			t.in.ResolveAfter = nil
			m.stage(t.k, t.in, *r)
			m.poke()
			continue
		}
		if err := m.persistBehind(t.k, t.in, rev); err != nil {
			errs = append(errs, err)
		}
	}
	for _, k := range journal {
		m.behind.put(k, nil, "", "")
	}
	return errors.Join(errs...)
}

// save stores the transitions' instances, with their events unsent, in one
// store write: a journal entry (more if large), whose keys it returns. A
// lone transition goes straight to its instance's key instead, which spares
// the journal entry's deletion, unless a write of that key is still queued
// behind and could land after it. A transition whose instance cannot be
// encoded fails alone.
func (m *Manager) save(ctx context.Context, rev uint64, ts []*transition) ([]string, error) {
	records := map[string][]byte{}
	var lone *transition
	for _, t := range ts {
		if t.in == nil {
			continue
		}
		b, err := json.Marshal(record{Instance: *t.in, Rev: rev})
		if err != nil {
			t.err = fmt.Errorf("encoding alert state for %s on %s: %w", t.ev.EventID, t.ev.Device.Name, err)
			continue
		}
		t.record = b
		records[t.k] = b
		lone = t
	}
	switch {
	case len(records) == 0:
		return nil, nil
	case len(records) == 1 && !m.behind.queued(lone.k):
		if err := m.store.Put(ctx, lone.k, lone.record); err != nil {
			return nil, fmt.Errorf("storing alert state for %s on %s: %w", lone.ev.EventID, lone.ev.Device.Name, err)
		}
		return nil, nil
	}
	entries := journalEntries(rev, records)
	keys := make([]string, 0, len(entries))
	for k, v := range entries {
		if err := m.store.Put(ctx, k, v); err != nil {
			// The keys written so far are retired too: their batch is
			// not dispatched.
			for _, done := range keys {
				m.behind.put(done, nil, "", "")
			}
			return nil, fmt.Errorf("storing %d alert transition(s): %w", len(records), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// dispatchAll hands the transitions that are stored (or need no storing)
// to the dispatcher, concurrently.
func (m *Manager) dispatchAll(ctx context.Context, ts []*transition) {
	if len(ts) == 1 {
		m.dispatch(ctx, ts[0]) // the common case at low rates needs no goroutine
		return
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxConcurrentDispatches)
	for _, t := range ts {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			m.dispatch(ctx, t)
		})
	}
	wg.Wait()
}

func (m *Manager) dispatch(ctx context.Context, t *transition) {
	if t.err != nil {
		return
	}
	targets, err := m.dispatcher.Dispatch(ctx, t.ev, t.resolveTo)
	if err != nil {
		t.err = fmt.Errorf("dispatching %s for %s: %w", t.ev.EventID, t.ev.Device.Name, err)
		return
	}
	t.targets = targets
	m.noteHandedOn(t) // at once: its delivery attempts follow in history
}

// noteHandedOn tells history a transition was handed on, and where
// noise control and routing sent it.
func (m *Manager) noteHandedOn(t *transition) {
	kind := history.KindActive
	switch {
	case t.ev.Kind == event.KindEvent:
		kind = history.KindEvent
	case t.ev.Status == event.StatusResolved:
		kind = history.KindResolved
	}
	// Dispatch returns where a resolve will be owed, not every destination
	// (attempts name those); a resolve goes where the active went.
	var detail string
	switch {
	case kind == history.KindResolved && len(t.resolveTo) > 0:
		detail = "to " + strings.Join(t.resolveTo, ", ")
	case kind == history.KindResolved:
		detail = "to no destination: none was sent the active"
	case len(t.targets) > 0:
		detail = "resolve owed to " + strings.Join(t.targets, ", ")
	}
	m.history.Record(t.ev, history.Entry{At: t.ev.Timestamp, Kind: kind, Status: t.ev.Status, Detail: detail})
}

// persistBehind stores the instance's current state, written behind.
func (m *Manager) persistBehind(k string, in *Instance, rev uint64) error {
	b, err := json.Marshal(record{Instance: *in, Rev: rev})
	if err != nil {
		return fmt.Errorf("encoding alert state: %w", err)
	}
	m.behind.put(k, b, in.EventID, in.Device.Name)
	return nil
}

// maxFailedEvents bounds the one-shot events kept in memory for a retry
// while the store is down; beyond it the oldest are dropped, loudly.
const maxFailedEvents = 10000

// keepFailedEvent queues a refused one-shot event for the next retry. It
// keeps its instance id and time, so its webhook-id stays the same.
func (m *Manager) keepFailedEvent(t *transition) {
	if len(m.failedEvents) >= maxFailedEvents {
		lost := m.failedEvents[0]
		if m.dropped.Add(1) == 1 || m.dropped.Load()%1000 == 0 {
			m.log.Error("dropping the oldest one-shot events that could not be handed to the outbox: too many waiting",
				"event_id", lost.ev.EventID, "device", lost.ev.Device.Name, "waiting", len(m.failedEvents),
				"dropped_total", m.dropped.Load())
		}
		m.failedEvents = m.failedEvents[1:]
	}
	m.failedEvents = append(m.failedEvents, &transition{k: t.k, ev: t.ev})
}

// unsentRetryInterval spaces retries of transitions the store or the outbox
// refused (a store outage): often enough to notify soon after it ends,
// rarely enough not to hammer it.
const unsentRetryInterval = 10 * time.Second
