package route

import (
	"context"
	"sync/atomic"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/outbox"
)

// Enqueuer stores notifications durably: the outbox.
type Enqueuer interface {
	Enqueue(ctx context.Context, items ...outbox.Item) error
}

// Dispatcher routes the alert manager's events and hands them to the
// outbox: an active event to the destinations of every matching
// subscription, a resolve to where its active went, whatever the
// subscriptions say by then.
type Dispatcher struct {
	router atomic.Pointer[Router]
	edits  atomic.Pointer[func(destination string) bool]
	outbox Enqueuer
}

// SetEditors says which destinations edit the message they posted for an
// alert: the ones an alert's update (event.Event.Update) goes to.
func (d *Dispatcher) SetEditors(edits func(destination string) bool) { d.edits.Store(&edits) }

// NewDispatcher routes with r into ob.
func NewDispatcher(r *Router, ob Enqueuer) *Dispatcher {
	d := &Dispatcher{outbox: ob}
	d.router.Store(r)
	return d
}

// SetRouter swaps in a reloaded config's subscriptions.
func (d *Dispatcher) SetRouter(r *Router) { d.router.Store(r) }

// Dispatch enqueues ev. For an active event it returns the destinations
// whose subscription wants its resolve (none for one-shot events); a
// resolved event goes to resolveTo.
func (d *Dispatcher) Dispatch(ctx context.Context, ev event.Event, resolveTo []string) ([]string, error) {
	var items []outbox.Item
	var wantResolve []string
	if ev.Status == event.StatusResolved {
		for _, dest := range resolveTo {
			items = append(items, outbox.Item{Destination: dest, Event: ev})
		}
	} else {
		for _, t := range d.router.Load().Match(ev) {
			if ev.Update {
				if edits := d.edits.Load(); edits != nil && (*edits)(t.Destination) {
					items = append(items, outbox.Item{Destination: t.Destination, Event: ev})
				}
				continue // an update is no new active: no resolve owed for it
			}
			items = append(items, outbox.Item{Destination: t.Destination, Event: ev})
			if t.SendResolved && ev.Kind != event.KindEvent {
				wantResolve = append(wantResolve, t.Destination)
			}
		}
	}
	if len(items) == 0 {
		return nil, nil
	}
	if err := d.outbox.Enqueue(ctx, items...); err != nil {
		return nil, err
	}
	return wantResolve, nil
}
