// Package mute owns maintenance windows and silences (SPEC 11.4): the
// windows compiled from config (DST-correct), the silences made at run time
// and kept in the embedded store, and the one question noise control asks
// of them: which of them mute this device's event at this moment, and when
// that answer next changes. It decides nothing about sending.
package mute

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/store"
)

// Store keeps the silences (a store.Bucket).
type Store = store.Records

// Retention is how long an expired silence stays listed before it is
// deleted.
const Retention = 24 * time.Hour

// Options configure a Set.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: no metrics
	Now        func() time.Time      // nil: time.Now
}

// Set is the windows and silences in force. Safe for concurrent use.
type Set struct {
	store Store
	log   *slog.Logger
	now   func() time.Time

	write sync.Mutex // one change of the stored silences at a time

	mu       sync.RWMutex
	windows  []*Window
	silences map[string]Silence
	changed  chan struct{} // closed at the next change
}

// New loads the stored silences; windows are the config's.
func New(ctx context.Context, store Store, windows []*Window, opts Options) (*Set, error) {
	s := &Set{store: store, log: opts.Logger, now: opts.Now, windows: windows, silences: map[string]Silence{}, changed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	all, err := store.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading silences: %w", err)
	}
	for id, b := range all {
		var sl Silence
		if err := json.Unmarshal(b, &sl); err != nil || sl.ID != id {
			// Kept in the store: a newer version may read it.
			s.log.Warn("skipping an unreadable stored silence", "id", id, "err", err)
			continue
		}
		s.silences[id] = sl
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(collector{s}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// MutedBy names what mutes the device's event at t, windows first in config
// order, then silences by start: "maintenance sunday-patching",
// "silence <id>". Nil when nothing does.
func (s *Set) MutedBy(d *inventory.Device, eventID string, at time.Time) []string {
	if d == nil {
		d = &inventory.Device{} // an unknown sender: only device-blind matches apply
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, w := range s.windows {
		if _, _, ok := w.Covering(at); ok && d.In(w.Match.Selector) && w.Match.MatchesEvent(eventID) {
			out = append(out, "maintenance "+w.Name)
		}
	}
	for _, sl := range s.sorted() {
		if sl.StateAt(at) == Active && d.In(sl.Match.Selector) && sl.Match.MatchesEvent(eventID) {
			out = append(out, "silence "+sl.ID)
		}
	}
	return out
}

// NextBoundary is the first moment after the given time at which a window
// or silence starts or ends: where a MutedBy answer can change next. False
// when none is ahead.
func (s *Set) NextBoundary(after time.Time) (time.Time, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var next time.Time
	consider := func(t time.Time) {
		if t.After(after) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, w := range s.windows {
		if _, end, ok := w.Covering(after); ok {
			consider(end)
		}
		if start, _, ok := w.Next(after); ok {
			consider(start)
		}
	}
	for _, sl := range s.silences {
		consider(sl.StartsAt)
		consider(sl.EndsAt)
	}
	return next, !next.IsZero()
}

// Changed returns a channel closed at the next change: a silence added or
// expired, windows replaced. Starts and ends on schedule are not changes
// (NextBoundary names them). Ask again after it closes.
func (s *Set) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// signal wakes Changed's waiters; s.mu must be held for writing.
func (s *Set) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// SetWindows replaces the windows, as a config reload does.
func (s *Set) SetWindows(ws []*Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.windows = ws
	s.signal()
}

// Windows are the configured windows.
func (s *Set) Windows() []*Window {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.windows)
}

// Add stores a new silence and returns it with its id. A refused request
// is ErrInvalid with every reason.
func (s *Set) Add(ctx context.Context, n NewSilence) (Silence, error) {
	s.write.Lock()
	defer s.write.Unlock()
	now := s.now()
	sl, err := n.silence(uuid.NewString(), now)
	if err != nil {
		return Silence{}, err
	}
	s.mu.RLock()
	count := len(s.silences)
	s.mu.RUnlock()
	if count >= maxSilences {
		return Silence{}, fmt.Errorf("%w: %d silences are stored already; expire some first", ErrInvalid, count)
	}
	if err := s.put(ctx, sl); err != nil {
		return Silence{}, err
	}
	s.log.Info("silence added", "id", sl.ID, "match", sl.Match.String(), "starts_at", sl.StartsAt, "ends_at", sl.EndsAt, "created_by", sl.CreatedBy)
	sl.State = sl.StateAt(now)
	return sl, nil
}

// Expire ends a silence now; a pending one never starts. One already
// expired is returned as it is.
func (s *Set) Expire(ctx context.Context, id string) (Silence, error) {
	s.write.Lock()
	defer s.write.Unlock()
	s.mu.RLock()
	sl, ok := s.silences[id]
	s.mu.RUnlock()
	if !ok {
		return Silence{}, fmt.Errorf("silence %q: %w", id, ErrNotFound)
	}
	now := s.now().UTC()
	if sl.StateAt(now) != Expired {
		sl.EndsAt = now
		if sl.StartsAt.After(now) {
			sl.StartsAt = now
		}
		if err := s.put(ctx, sl); err != nil {
			return Silence{}, err
		}
		s.log.Info("silence expired", "id", sl.ID, "match", sl.Match.String())
	}
	sl.State = Expired
	return sl, nil
}

// put stores sl, then makes it the one in force.
func (s *Set) put(ctx context.Context, sl Silence) error {
	sl.State = ""
	b, err := json.Marshal(sl)
	if err != nil {
		return err
	}
	if err := s.store.Put(ctx, sl.ID, b); err != nil {
		return fmt.Errorf("storing silence %s: %w", sl.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silences[sl.ID] = sl
	s.signal()
	return nil
}

// List is every silence not yet deleted, with its state now: active, then
// pending, then expired, each by start.
func (s *Set) List() []Silence {
	now := s.now()
	s.mu.RLock()
	out := s.sorted()
	s.mu.RUnlock()
	for i := range out {
		out[i].State = out[i].StateAt(now)
	}
	order := map[State]int{Active: 0, Pending: 1, Expired: 2}
	slices.SortStableFunc(out, func(a, b Silence) int { return cmp.Compare(order[a.State], order[b.State]) })
	return out
}

// sorted is the silences by start, then id; s.mu must be held.
func (s *Set) sorted() []Silence {
	out := make([]Silence, 0, len(s.silences))
	for _, sl := range s.silences {
		out = append(out, sl)
	}
	slices.SortFunc(out, func(a, b Silence) int {
		return cmp.Or(a.StartsAt.Compare(b.StartsAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// purgeRetry is how soon a failed deletion is tried again; also the longest
// Run sleeps, so a clock stepped forward is noticed.
const purgeRetry = time.Hour

// Run deletes silences Retention after they expired, until ctx is done.
func (s *Set) Run(ctx context.Context) error {
	for {
		changed := s.Changed()
		wait := s.purge(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// purge deletes what is due and returns how long until the next is.
func (s *Set) purge(ctx context.Context) time.Duration {
	s.write.Lock()
	defer s.write.Unlock()
	now := s.now()
	wait := purgeRetry
	s.mu.RLock()
	var due []string
	for id, sl := range s.silences {
		if left := sl.EndsAt.Add(Retention).Sub(now); left <= 0 {
			due = append(due, id)
		} else {
			wait = min(wait, left)
		}
	}
	s.mu.RUnlock()
	for _, id := range due {
		if err := s.store.Delete(ctx, id); err != nil {
			s.log.Warn("deleting an expired silence; trying again later", "id", id, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.silences, id) // not a change: it had stopped muting Retention ago
		s.mu.Unlock()
	}
	return wait
}

// collector reports the silences by state at scrape time, so the gauge
// never drifts from the set.
type collector struct{ s *Set }

var silencesDesc = prometheus.NewDesc("nocbridge_silences", "Silences by state: active, pending, or expired and still listed.", []string{"state"}, nil)

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- silencesDesc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n := map[State]int{}
	for _, sl := range c.s.List() {
		n[sl.State]++
	}
	for _, st := range []State{Active, Pending, Expired} {
		ch <- prometheus.MustNewConstMetric(silencesDesc, prometheus.GaugeValue, float64(n[st]), string(st))
	}
}
