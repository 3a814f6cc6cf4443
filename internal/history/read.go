package history

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/nocbridge/nocbridge/internal/store"
)

// ErrBadQuery is returned (wrapped, naming the parameter) for a Query that
// cannot be answered: an unknown status, a cursor history did not give.
var ErrBadQuery = errors.New("bad history query")

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Timeline bounds: an alert's first and last entries are kept, what lies
// between beyond them is counted (Alert.Omitted).
const (
	keepFirst = 100
	keepLast  = 900
)

// Get returns the alert (or one-shot event) with its timeline, oldest
// first, built from its own entries: it reads one subject, so it costs
// what the alert holds, whatever else history holds. An instance history
// does not hold (never seen, or older than the retention) is ErrNotFound.
func (h *History) Get(ctx context.Context, instanceID string) (Alert, error) {
	var first, last []stored
	seen := 0
	// A record holds the entries of one write, one JSON line each.
	err := h.log.ReadSubject(ctx, entryPrefix+token(instanceID), func(r store.Record) error {
		for line := range bytes.Lines(r.Data) {
			var s stored
			if err := json.Unmarshal(line, &s); err != nil {
				h.rate.Log(h.logger, slog.LevelError, "decode", "skipping an unreadable alert history entry", "instance_id", instanceID, "seq", r.Seq, "err", err)
				continue
			}
			seen++
			switch {
			case len(first) < keepFirst:
				first = append(first, s)
			case len(last) < keepLast:
				last = append(last, s)
			default:
				copy(last, last[1:])
				last[len(last)-1] = s
			}
		}
		return nil
	})
	if err != nil {
		return Alert{}, fmt.Errorf("alert %s: %w", instanceID, err)
	}
	if seen == 0 {
		return Alert{}, fmt.Errorf("alert %s: %w", instanceID, ErrNotFound)
	}
	a := Alert{InstanceID: instanceID, Omitted: seen - len(first) - len(last)}
	// Entries are written as they are handed over; the time they record
	// orders them (a decision made while an alert is handed on is written
	// before the transition that carries it).
	byTime := func(x, y stored) int { return x.At.Compare(y.At) }
	slices.SortStableFunc(first, byTime)
	slices.SortStableFunc(last, byTime)
	for _, part := range [][]stored{first, last} {
		for _, s := range part {
			a.apply(s)
			a.Timeline = append(a.Timeline, s.Entry)
		}
	}
	return a, nil
}

// List returns a page of alerts, the most recently changed first, with
// q's filters. A page reads the summaries of the alerts it shows, newest
// first: with a device or an event id, the store's index of subjects
// skips to that device's or event's summaries, so a page costs about its
// own size whatever else history holds; a status filter skips the
// summaries of other statuses one by one.
func (h *History) List(ctx context.Context, q Query) (Page, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	switch q.Status {
	case "", StatusPending, StatusActive, StatusResolved, StatusEvent:
	default:
		return Page{}, fmt.Errorf("%w: status %q: want pending, active, resolved or event", ErrBadQuery, q.Status)
	}
	before, err := parseCursor(q.Cursor)
	if err != nil {
		return Page{}, err
	}
	filter := summaryPrefix + cmp.Or(tokenOrAll(q.Device), "*") + "." + cmp.Or(tokenOrAll(q.EventID), "*") + ".*"
	page := Page{Items: []Alert{}}
	var lastSeq uint64
	err = h.log.ReadBack(ctx, filter, before, func(r store.Record) (bool, error) {
		var a Alert
		if err := json.Unmarshal(r.Data, &a); err != nil {
			h.rate.Log(h.logger, slog.LevelError, "decode", "skipping an unreadable alert history summary", "subject", r.Subject, "err", err)
			return true, nil
		}
		if q.Status != "" && a.Status != q.Status {
			return true, nil
		}
		if len(page.Items) == limit {
			page.Next = store.SeqCursor('h', lastSeq) // one more exists: there is a next page
			return false, nil
		}
		page.Items = append(page.Items, a)
		lastSeq = r.Seq
		return true, nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("alert history: %w", err)
	}
	return page, nil
}

func tokenOrAll(s string) string {
	if s == "" {
		return ""
	}
	return token(s)
}

func parseCursor(c string) (uint64, error) {
	seq, ok := store.ParseSeqCursor('h', c)
	if !ok {
		return 0, fmt.Errorf("%w: cursor %q is not one a page of history gave", ErrBadQuery, cut(c, 64))
	}
	return seq, nil
}
