package route

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/outbox"
)

type fakeOutbox struct {
	items []outbox.Item
	err   error
}

func (f *fakeOutbox) Enqueue(_ context.Context, items ...outbox.Item) error {
	if f.err != nil {
		return f.err
	}
	f.items = append(f.items, items...)
	return nil
}

func TestDispatch(t *testing.T) {
	no := false
	subs := []config.Subscription{
		{Name: "all", Destinations: []string{"log"}},
		{Name: "chat", Filter: config.Filter{Selector: config.Selector{Roles: []string{"core"}}}, Destinations: []string{"slack"}, SendResolved: &no},
	}
	active := event.Event{InstanceID: "i1", EventID: "NETWORK-DEVICES-1-101", Status: event.StatusActive,
		Device: inventory.Device{Name: "core-sw1", Role: "core"}}
	oneShot := active
	oneShot.Kind = event.KindEvent
	resolved := active
	resolved.Status = event.StatusResolved

	tests := []struct {
		name        string
		ev          event.Event
		resolveTo   []string
		wantDests   []string
		wantResolve []string
	}{
		{"active: every matching destination; resolves only where wanted", active, nil, []string{"log", "slack"}, []string{"log"}},
		{"one-shot event: never resolved", oneShot, nil, []string{"log", "slack"}, nil},
		{"resolve: where its active went, whatever config says now", resolved, []string{"itsm-gone"}, []string{"itsm-gone"}, nil},
		{"resolve of an active that went nowhere", resolved, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ob := &fakeOutbox{}
			d := NewDispatcher(New(subs), ob)
			got, err := d.Dispatch(context.Background(), tt.ev, tt.resolveTo)
			if err != nil {
				t.Fatal(err)
			}
			var dests []string
			for _, it := range ob.items {
				dests = append(dests, it.Destination)
				if it.Event.InstanceID != tt.ev.InstanceID || it.Event.Status != tt.ev.Status {
					t.Errorf("item carries %+v, want the dispatched event", it.Event)
				}
			}
			if !reflect.DeepEqual(dests, tt.wantDests) || !reflect.DeepEqual(got, tt.wantResolve) {
				t.Errorf("enqueued to %v, resolve to %v; want %v, %v", dests, got, tt.wantDests, tt.wantResolve)
			}
		})
	}

	t.Run("a reload's subscriptions apply to the next active", func(t *testing.T) {
		ob := &fakeOutbox{}
		d := NewDispatcher(New(subs), ob)
		d.SetRouter(New([]config.Subscription{{Name: "new", Destinations: []string{"webhook"}}}))
		if _, err := d.Dispatch(context.Background(), active, nil); err != nil {
			t.Fatal(err)
		}
		if len(ob.items) != 1 || ob.items[0].Destination != "webhook" {
			t.Errorf("enqueued %+v, want the reloaded subscription's destination only", ob.items)
		}
	})
	t.Run("an outbox failure is returned, no resolve destinations", func(t *testing.T) {
		refused := errors.New("store full")
		d := NewDispatcher(New(subs), &fakeOutbox{err: refused})
		got, err := d.Dispatch(context.Background(), active, nil)
		if !errors.Is(err, refused) || got != nil {
			t.Errorf("Dispatch = %v, %v; want the outbox's error and no destinations", got, err)
		}
	})
}

// An alert's update (more devices behind it) goes only to destinations
// that edit their message, and owes no resolve.
func TestDispatchUpdateOnlyToEditors(t *testing.T) {
	subs := []config.Subscription{{Name: "all", Destinations: []string{"noc-slack", "itsm"}}}
	upd := event.Event{InstanceID: "i1", EventID: "NETWORK-DEVICES-1-101", Status: event.StatusActive, Update: true,
		Device: inventory.Device{Name: "core"}, Details: map[string]string{"Affected Devices": "5: a, b, c, d, e"}}
	for _, tc := range []struct {
		name  string
		edits func(string) bool
		want  []string
	}{
		{"no editors configured", nil, nil},
		{"slack bot edits", func(d string) bool { return d == "noc-slack" }, []string{"noc-slack"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ob := &fakeOutbox{}
			d := NewDispatcher(New(subs), ob)
			if tc.edits != nil {
				d.SetEditors(tc.edits)
			}
			resolveTo, err := d.Dispatch(context.Background(), upd, nil)
			if err != nil || resolveTo != nil {
				t.Fatalf("Dispatch = %v, %v; want no resolve destinations", resolveTo, err)
			}
			var got []string
			for _, it := range ob.items {
				got = append(got, it.Destination)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("update went to %v, want %v", got, tc.want)
			}
		})
	}
	plain := upd
	plain.Update = false
	if upd.NotificationID("noc-slack") == plain.NotificationID("noc-slack") {
		t.Error("an update has the webhook-id of its active: the outbox would drop it as a duplicate")
	}
}
