package mute

import (
	"strings"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func window(t *testing.T, m config.Maintenance) *Window {
	t.Helper()
	if m.Name == "" {
		m.Name = "w"
	}
	if m.Match.Empty() {
		m.Match = config.Match{Selector: config.Selector{Devices: []string{"*"}}}
	}
	ws, err := Compile([]config.Maintenance{m})
	if err != nil {
		t.Fatal(err)
	}
	return ws[0]
}

func recurring(t *testing.T, every, dur, tz string) *Window {
	t.Helper()
	d, err := time.ParseDuration(dur)
	if err != nil {
		t.Fatal(err)
	}
	return window(t, config.Maintenance{Every: every, Duration: config.Duration(d), Timezone: tz})
}

// Europe/Berlin in 2026: clocks jump 02:00 CET → 03:00 CEST on Sunday
// 29 March (01:00 UTC) and go back 03:00 CEST → 02:00 CET on Sunday
// 25 October (01:00 UTC). America/New_York: 8 March 02:00 → 03:00 EDT
// (07:00 UTC), 1 November 02:00 → 01:00 EST (06:00 UTC).
func TestWindowOccurrencesAcrossDST(t *testing.T) {
	tests := []struct {
		name              string
		every, dur, tz    string
		after             string // Next(after)
		wantStart, endUTC string
	}{
		{"weekly, winter", "sun 02:00", "2h", "Europe/Berlin", "2026-03-21T12:00:00Z", "2026-03-22T01:00:00Z", "2026-03-22T03:00:00Z"},
		{"weekly, 02:00 does not exist: starts at the jump, lasts 2h", "sun 02:00", "2h", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00Z"},
		{"weekly, 02:30 does not exist either", "sun 02:30", "1h", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"},
		{"weekly, 03:00 exists on the jump day", "sun 03:00", "1h", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"},
		{"weekly, 01:59 is before the jump", "sun 01:59", "1h", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T00:59:00Z", "2026-03-29T01:59:00Z"},
		{"weekly, summer", "sun 02:00", "2h", "Europe/Berlin", "2026-03-29T12:00:00Z", "2026-04-05T00:00:00Z", "2026-04-05T02:00:00Z"},
		{"weekly, 02:00 occurs twice: the first, 2h of real time", "sun 02:00", "2h", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"},
		{"weekly, 02:59 occurs twice: the first", "sun 02:59", "10m", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:59:00Z", "2026-10-25T01:09:00Z"},
		{"weekly, 03:00 after the fall back", "sun 03:00", "1h", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"},
		{"weekly, winter again", "sun 02:00", "2h", "Europe/Berlin", "2026-10-25T12:00:00Z", "2026-11-01T01:00:00Z", "2026-11-01T03:00:00Z"},
		{"daily, the day before the jump", "02:00", "30m", "Europe/Berlin", "2026-03-27T12:00:00Z", "2026-03-28T01:00:00Z", "2026-03-28T01:30:00Z"},
		{"daily, the jump", "02:00", "30m", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"},
		{"daily, the day after the jump", "02:00", "30m", "Europe/Berlin", "2026-03-29T12:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:30:00Z"},
		{"daily, the fall back", "02:00", "30m", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z"},
		{"daily, west of UTC, the jump", "02:30", "1h", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"},
		{"daily, west of UTC, 01:30 twice", "01:30", "1h", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"},
		{"daily, UTC", "23:30", "1h", "UTC", "2026-06-01T23:30:00Z", "2026-06-02T23:30:00Z", "2026-06-03T00:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := recurring(t, tt.every, tt.dur, tt.tz)
			start, end, ok := w.Next(utc(tt.after))
			if !ok || !start.Equal(utc(tt.wantStart)) || !end.Equal(utc(tt.endUTC)) {
				t.Fatalf("Next(%s) = %s – %s (%v); want %s – %s", tt.after, start.UTC(), end.UTC(), ok, tt.wantStart, tt.endUTC)
			}
			// Start inclusive, end exclusive.
			for _, c := range []struct {
				at time.Time
				ok bool
			}{{start.Add(-time.Nanosecond), false}, {start, true}, {start.Add(w.duration / 2), true}, {end.Add(-time.Nanosecond), true}, {end, false}} {
				s, e, ok := w.Covering(c.at)
				if ok != c.ok || ok && (!s.Equal(start) || !e.Equal(end)) {
					t.Errorf("Covering(%s) = %s – %s (%v); want ok=%v", c.at.UTC(), s.UTC(), e.UTC(), ok, c.ok)
				}
			}
			// The next one comes after this one, not again.
			if s, _, ok := w.Next(start); !ok || !s.After(end) {
				t.Errorf("Next(start %s) = %s, %v; want a later occurrence", start.UTC(), s.UTC(), ok)
			}
			if s, _, _ := w.Next(start.Add(-time.Nanosecond)); !s.Equal(start) {
				t.Errorf("Next(just before start) = %s, want %s", s.UTC(), start.UTC())
			}
		})
	}
}

func TestWindowOnlyOnItsDay(t *testing.T) {
	w := recurring(t, "wed 22:00", "4h", "UTC")
	// Wednesday 2026-06-03 22:00 to Thursday 02:00.
	for at, want := range map[string]bool{
		"2026-06-03T21:59:59Z": false,
		"2026-06-03T22:00:00Z": true,
		"2026-06-04T01:59:59Z": true, // past midnight, into Thursday
		"2026-06-04T02:00:00Z": false,
		"2026-06-04T22:30:00Z": false, // Thursday evening
		"2026-06-10T23:00:00Z": true,
	} {
		if _, _, ok := w.Covering(utc(at)); ok != want {
			t.Errorf("Covering(%s) = %v, want %v", at, ok, want)
		}
	}
	if s, _, _ := w.Next(utc("2026-06-04T00:00:00Z")); !s.Equal(utc("2026-06-10T22:00:00Z")) {
		t.Errorf("Next from Thursday = %s, want the next Wednesday", s)
	}
}

func TestWindowOnce(t *testing.T) {
	w := window(t, config.Maintenance{Start: "2026-12-12T22:00:00+01:00", End: "2026-12-13T02:00:00+01:00", Timezone: "Local"})
	start, end := utc("2026-12-12T21:00:00Z"), utc("2026-12-13T01:00:00Z")
	for _, c := range []struct {
		at time.Time
		ok bool
	}{{start.Add(-time.Nanosecond), false}, {start, true}, {end.Add(-time.Nanosecond), true}, {end, false}} {
		s, e, ok := w.Covering(c.at)
		if ok != c.ok || ok && (!s.Equal(start) || !e.Equal(end)) {
			t.Errorf("Covering(%s) = %s – %s (%v); want ok=%v", c.at, s, e, ok, c.ok)
		}
	}
	if s, e, ok := w.Next(start.Add(-time.Hour)); !ok || !s.Equal(start) || !e.Equal(end) {
		t.Errorf("Next before it = %s – %s (%v)", s, e, ok)
	}
	if _, _, ok := w.Next(start); ok {
		t.Error("Next from its start: a single window has no next occurrence")
	}
}

func TestCompileRefusesWhatValidationRefuses(t *testing.T) {
	sel := config.Match{Selector: config.Selector{Devices: []string{"*"}}}
	for _, m := range []config.Maintenance{
		{Name: "tz", Match: sel, Every: "02:00", Duration: config.Duration(time.Hour), Timezone: "Nowhere/Else"},
		{Name: "every", Match: sel, Every: "someday", Duration: config.Duration(time.Hour), Timezone: "UTC"},
		{Name: "dur", Match: sel, Every: "02:00", Duration: config.Duration(24 * time.Hour), Timezone: "UTC"},
		{Name: "end", Match: sel, Start: "2026-12-13T02:00:00Z", End: "2026-12-13T01:00:00Z", Timezone: "UTC"},
	} {
		if _, err := Compile([]config.Maintenance{m}); err == nil || !strings.Contains(err.Error(), `maintenance "`+m.Name+`"`) {
			t.Errorf("Compile(%s): %v, want an error naming it", m.Name, err)
		}
	}
}

// What the console shows of a window: its schedule, and the occurrence open
// now or else the next one.
func TestWindowNextOccurrenceAndSchedule(t *testing.T) {
	weekly := recurring(t, "sun 02:00", "2h", "Europe/Berlin")
	daily := recurring(t, "02:00", "30m", "UTC")
	once := window(t, config.Maintenance{Start: "2026-12-12T22:00:00+01:00", End: "2026-12-13T02:00:00+01:00"})
	tests := []struct {
		name       string
		w          *Window
		at         string
		start, end string // empty: none
	}{
		{"weekly, before it opens", weekly, "2026-03-21T12:00:00Z", "2026-03-22T01:00:00Z", "2026-03-22T03:00:00Z"},
		{"weekly, open now: the open one", weekly, "2026-03-22T02:00:00Z", "2026-03-22T01:00:00Z", "2026-03-22T03:00:00Z"},
		{"weekly, at its end: the next week's", weekly, "2026-03-22T03:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T03:00:00Z"},
		{"daily, just after it ended", daily, "2026-06-01T02:30:00Z", "2026-06-02T02:00:00Z", "2026-06-02T02:30:00Z"},
		{"daily, at its start", daily, "2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z", "2026-06-01T02:30:00Z"},
		{"once, before", once, "2026-12-01T00:00:00Z", "2026-12-12T21:00:00Z", "2026-12-13T01:00:00Z"},
		{"once, open", once, "2026-12-13T00:00:00Z", "2026-12-12T21:00:00Z", "2026-12-13T01:00:00Z"},
		{"once, over", once, "2026-12-13T01:00:00Z", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end, ok := tt.w.NextOccurrence(utc(tt.at))
			if tt.start == "" {
				if ok {
					t.Fatalf("NextOccurrence = %s–%s, want none", start, end)
				}
				return
			}
			if !ok || !start.Equal(utc(tt.start)) || !end.Equal(utc(tt.end)) {
				t.Fatalf("NextOccurrence = %s–%s %v, want %s–%s", start.UTC(), end.UTC(), ok, tt.start, tt.end)
			}
		})
	}
	for w, want := range map[*Window]string{
		weekly: "every sun 02:00 for 2h (Europe/Berlin)",
		daily:  "daily 02:00 for 30m (UTC)",
		once:   "once, 2026-12-12T22:00:00+01:00 to 2026-12-13T02:00:00+01:00",
	} {
		if got := w.Schedule(); got != want {
			t.Errorf("Schedule() = %q, want %q", got, want)
		}
	}
}
