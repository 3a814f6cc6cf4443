// Package historytest records what writers hand to alert history, for the
// tests of the alert manager, noise control and the outbox.
package historytest

import (
	"sync"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
)

// Recorded is one Record call.
type Recorded struct {
	Event event.Event
	Entry history.Entry
}

// Recorder keeps every entry handed to it (a history.Recorder).
type Recorder struct {
	mu  sync.Mutex
	all []Recorded
}

// Record keeps the entry.
func (r *Recorder) Record(ev event.Event, e history.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, Recorded{Event: ev, Entry: e})
}

// All returns what was recorded, in order.
func (r *Recorder) All() []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Recorded(nil), r.all...)
}

// Of returns the entries recorded for one instance, in order.
func (r *Recorder) Of(instanceID string) []history.Entry {
	var out []history.Entry
	for _, x := range r.All() {
		if x.Event.InstanceID == instanceID {
			out = append(out, x.Entry)
		}
	}
	return out
}

// Kinds lists the kinds of the entries recorded for one instance, in order.
func (r *Recorder) Kinds(instanceID string) []history.Kind {
	var out []history.Kind
	for _, e := range r.Of(instanceID) {
		out = append(out, e.Kind)
	}
	return out
}
