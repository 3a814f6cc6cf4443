package config

import (
	"testing"
	"time"
)

func TestParseEvery(t *testing.T) {
	tests := []struct {
		in   string
		want Recurrence
		err  string
	}{
		{in: "sun 02:00", want: Recurrence{Weekday: time.Sunday, Hour: 2}},
		{in: "MON 23:59", want: Recurrence{Weekday: time.Monday, Hour: 23, Minute: 59}},
		{in: "sat  7:05", want: Recurrence{Weekday: time.Saturday, Hour: 7, Minute: 5}},
		{in: "02:00", want: Recurrence{Daily: true, Hour: 2}},
		{in: "00:00", want: Recurrence{Daily: true}},
		{in: "sunday 02:00", err: `day "sunday" must be one of sun, mon, tue, wed, thu, fri, sat`},
		{in: "24:00", err: `time "24:00" must be HH:MM, 00:00 to 23:59`},
		{in: "2:0", err: `time "2:0" must be HH:MM, 00:00 to 23:59`},
		{in: "+2:00", err: `time "+2:00" must be HH:MM, 00:00 to 23:59`},
		{in: "sun", err: `time "sun" must be HH:MM, 00:00 to 23:59`},
		{in: "", err: `time "" must be HH:MM, 00:00 to 23:59`},
	}
	for _, tt := range tests {
		got, err := ParseEvery(tt.in)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("ParseEvery(%q) error %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ParseEvery(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if p := (Recurrence{Daily: true}).Period(); p != 24*time.Hour {
		t.Errorf("daily period %v", p)
	}
	if p := (Recurrence{Weekday: time.Sunday}).Period(); p != 7*24*time.Hour {
		t.Errorf("weekly period %v", p)
	}
}

func TestMatch(t *testing.T) {
	m := Match{Selector: Selector{Devices: []string{"core-*"}, Sites: []string{"HQ"}, Labels: map[string]string{"vendor": "cisco", "tier": "1"}},
		EventIDs: []string{"NETWORK-DEVICES-*"}}
	if m.Empty() || !(Match{}).Empty() || (Match{EventIDs: []string{"*"}}).Empty() {
		t.Error("Empty: only a match with no field set is empty")
	}
	if !m.MatchesEvent("NETWORK-DEVICES-1-101") || m.MatchesEvent("NETWORK-INTERFACES-2-301") || !(Match{}).MatchesEvent("anything") {
		t.Error("MatchesEvent: globs, and every event without event_ids")
	}
	if got, want := m.String(), "devices=core-* sites=HQ label:tier=1 label:vendor=cisco event_ids=NETWORK-DEVICES-*"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
