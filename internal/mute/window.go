package mute

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/notify"
)

// Window is one configured maintenance window, compiled: recurring (a
// wall-clock time each day or week, in its time zone, for a duration) or
// once (start to end). Immutable; safe for concurrent use.
//
// Daylight saving time: the start is wall-clock time in the window's zone
// and the duration is elapsed time. When the start does not exist that day
// (clocks jump forward over it: "sun 02:00" in Europe/Berlin on 2026-03-29),
// the window starts at the jump (03:00 CEST) and still lasts its whole
// duration. When the start occurs twice (clocks go back: 2026-10-25), the
// window starts at the first one (02:00 CEST), so a 2h window ends at
// 03:00 CET. Each occurrence covers [start, start+duration).
type Window struct {
	Name  string
	Match config.Match

	every    *config.Recurrence // nil: once
	duration time.Duration
	loc      *time.Location
	start    time.Time // once
	end      time.Time // once
}

// Compile builds the windows of a validated config; an error means the
// config was not validated.
func Compile(ms []config.Maintenance) ([]*Window, error) {
	var out []*Window
	var errs []error
	for _, m := range ms {
		w, err := compile(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("maintenance %q: %w", m.Name, err))
			continue
		}
		out = append(out, w)
	}
	return out, errors.Join(errs...)
}

func compile(m config.Maintenance) (*Window, error) {
	loc, err := time.LoadLocation(m.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %w", m.Timezone, err)
	}
	w := &Window{Name: m.Name, Match: m.Match, loc: loc}
	if m.Every != "" {
		r, err := config.ParseEvery(m.Every)
		if err != nil {
			return nil, err
		}
		if m.Duration <= 0 || m.Duration.D() >= r.Period() {
			return nil, fmt.Errorf("duration %s must be positive and shorter than %s", m.Duration, r.Period())
		}
		w.every, w.duration = &r, m.Duration.D()
		return w, nil
	}
	if w.start, err = time.Parse(time.RFC3339, m.Start); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if w.end, err = time.Parse(time.RFC3339, m.End); err != nil {
		return nil, fmt.Errorf("end: %w", err)
	}
	if !w.end.After(w.start) {
		return nil, errors.New("end must be after start")
	}
	return w, nil
}

// Covering returns the occurrence that covers t (start <= t < end).
func (w *Window) Covering(t time.Time) (start, end time.Time, ok bool) {
	if w.every == nil {
		if t.Before(w.start) || !t.Before(w.end) {
			return time.Time{}, time.Time{}, false
		}
		return w.start, w.end, true
	}
	// Walk back over as many days as an occurrence can last, plus one for
	// a DST shift; of overlapping occurrences (only on a DST day) the one
	// ending last wins.
	days := int(w.duration/(24*time.Hour)) + 1
	for i := -days; i <= 0; i++ {
		s, ok := w.on(t, i)
		if ok && !t.Before(s) && t.Before(s.Add(w.duration)) && s.Add(w.duration).After(end) {
			start, end = s, s.Add(w.duration)
		}
	}
	return start, end, !end.IsZero()
}

// Next returns the first occurrence that starts after the given time.
func (w *Window) Next(after time.Time) (start, end time.Time, ok bool) {
	if w.every == nil {
		if !w.start.After(after) {
			return time.Time{}, time.Time{}, false
		}
		return w.start, w.end, true
	}
	// From the day before: a start in a DST gap moves to the jump, which can
	// fall on the next day's wall clock.
	for i := -1; i <= 8; i++ {
		if s, ok := w.on(after, i); ok && s.After(after) {
			return s, s.Add(w.duration), true
		}
	}
	return time.Time{}, time.Time{}, false // unreachable: a week holds an occurrence
}

// NextOccurrence is the occurrence open at t, or else the first one to
// start after t: what an operator wants to see of a window. False when there
// is none (a single window that has ended).
func (w *Window) NextOccurrence(t time.Time) (start, end time.Time, ok bool) {
	if start, end, ok := w.Covering(t); ok {
		return start, end, true
	}
	return w.Next(t)
}

// Schedule says when the window opens, in the config's terms: "every sun
// 02:00 for 2h (Europe/Berlin)", "daily 02:00 for 30m (UTC)", or "once,
// 2026-12-12T22:00:00+01:00 to 2026-12-13T02:00:00+01:00".
func (w *Window) Schedule() string {
	if w.every == nil {
		return fmt.Sprintf("once, %s to %s", w.start.Format(time.RFC3339), w.end.Format(time.RFC3339))
	}
	when := "daily"
	if !w.every.Daily {
		when = "every " + strings.ToLower(w.every.Weekday.String()[:3])
	}
	return fmt.Sprintf("%s %02d:%02d for %s (%s)", when, w.every.Hour, w.every.Minute, notify.ShortDuration(w.duration), w.loc)
}

// on is the start of the occurrence on the day `days` after t's date in the
// window's zone, if the window has one that day.
func (w *Window) on(t time.Time, days int) (time.Time, bool) {
	y, m, d := t.In(w.loc).Date()
	day := time.Date(y, m, d+days, 0, 0, 0, 0, time.UTC) // normalises the date
	if !w.every.Daily && day.Weekday() != w.every.Weekday {
		return time.Time{}, false
	}
	y, m, d = day.Date()
	return wallClock(y, m, d, w.every.Hour, w.every.Minute, w.loc), true
}

// wallClock is the instant loc's clocks show h:m on the given date: the
// first one when that time occurs twice (clocks go back), the moment of the
// jump when it does not occur (clocks go forward over it). time.Date leaves
// both cases unspecified.
func wallClock(y int, mo time.Month, d, h, m int, loc *time.Location) time.Time {
	naive := time.Date(y, mo, d, h, m, 0, 0, time.UTC)
	// Any instant showing that wall time lies within ±14h of naive; the
	// offsets in force a day either side cover a transition in between.
	var found, latest time.Time
	for _, probe := range []time.Time{naive.Add(-30 * time.Hour), naive, naive.Add(30 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		c := naive.Add(-time.Duration(off) * time.Second)
		if c.After(latest) {
			latest = c
		}
		cy, cmo, cd := c.In(loc).Date()
		if cy == y && cmo == mo && cd == d && c.In(loc).Hour() == h && c.In(loc).Minute() == m && (found.IsZero() || c.Before(found)) {
			found = c
		}
	}
	if !found.IsZero() {
		return found
	}
	// A gap: read with the offset from before the jump, the wall time lands
	// after it; the zone in force there began at the jump.
	jump, _ := latest.In(loc).ZoneBounds()
	return jump
}
