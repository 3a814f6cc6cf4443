package route

import (
	"reflect"
	"testing"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
)

func TestMatch(t *testing.T) {
	no := false
	subs := []config.Subscription{
		{Name: "all", Destinations: []string{"log"}},
		{Name: "crit", Filter: config.Filter{Severities: []int{1, 2}, EventIDs: []string{"NETWORK-DEVICES-*"}, Selector: config.Selector{Sites: []string{"HQ"}}}, Destinations: []string{"itsm", "slack"}},
		{Name: "chat-no-resolve", Filter: config.Filter{Selector: config.Selector{Roles: []string{"access"}}}, Destinations: []string{"slack"}, SendResolved: &no},
		{Name: "cisco", Filter: config.Filter{Selector: config.Selector{Labels: map[string]string{"vendor": "cisco"}, Devices: []string{"core-*"}}, Categories: []string{"ALERT"}}, Destinations: []string{"cisco-team"}},
	}
	r := New(subs)
	base := event.Event{EventID: "NETWORK-DEVICES-1-101", Severity: 1, Category: "ALERT",
		Device: inventory.Device{Name: "core-sw1", Site: "HQ", Role: "core", Labels: map[string]string{"vendor": "cisco"}}}
	tests := []struct {
		name string
		mut  func(e *event.Event)
		want []Target
	}{
		{"critical core at HQ", func(*event.Event) {}, []Target{{"cisco-team", true}, {"itsm", true}, {"log", true}, {"slack", true}}},
		{"other site", func(e *event.Event) { e.Device.Site = "Branch" }, []Target{{"cisco-team", true}, {"log", true}}},
		{"severity 3", func(e *event.Event) { e.Severity = 3 }, []Target{{"cisco-team", true}, {"log", true}}},
		{"event id glob misses", func(e *event.Event) { e.EventID = "SECURITY-SNMP-1-401" }, []Target{{"cisco-team", true}, {"log", true}}},
		{"access switch, slack twice: resolve wanted by one sub", func(e *event.Event) {
			e.Device = inventory.Device{Name: "acc1", Site: "HQ", Role: "access"}
		}, []Target{{"itsm", true}, {"log", true}, {"slack", true}}},
		{"access switch elsewhere: slack without resolve", func(e *event.Event) {
			e.Device = inventory.Device{Name: "acc1", Site: "B", Role: "access"}
		}, []Target{{"log", true}, {"slack", false}}},
		{"label mismatch", func(e *event.Event) { e.Device.Labels = map[string]string{"vendor": "juniper"}; e.Severity = 4 }, []Target{{"log", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := base
			ev.Device.Labels = map[string]string{"vendor": "cisco"}
			tt.mut(&ev)
			if got := r.Match(ev); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}
