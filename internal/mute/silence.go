package mute

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
)

// Silence mutes the alerts its match covers from StartsAt until EndsAt.
type Silence struct {
	ID        string       `json:"id"`
	Match     config.Match `json:"match"`
	StartsAt  time.Time    `json:"starts_at"`
	EndsAt    time.Time    `json:"ends_at"`
	Comment   string       `json:"comment"`
	CreatedBy string       `json:"created_by"`
	CreatedAt time.Time    `json:"created_at"`
	// State is set by List; it is not stored.
	State State `json:"state,omitempty"`
}

// State is where a silence stands at a moment.
type State string

const (
	Pending State = "pending" // starts later
	Active  State = "active"
	Expired State = "expired" // ended; listed for Retention, then deleted
)

// StateAt is the silence's state at t.
func (s Silence) StateAt(t time.Time) State {
	switch {
	case t.Before(s.StartsAt):
		return Pending
	case t.Before(s.EndsAt):
		return Active
	}
	return Expired
}

// NewSilence is a silence as asked for; it is also the JSON body of
// POST /api/v1/silences.
type NewSilence struct {
	Match    config.Match `json:"match"`
	StartsAt time.Time    `json:"starts_at,omitzero"` // zero: now
	// EndsAt or Duration (from StartsAt), not both.
	EndsAt    time.Time `json:"ends_at,omitzero"`
	Duration  Duration  `json:"duration,omitzero"`
	Comment   string    `json:"comment"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration ("2h").
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a Go duration such as 2h or 30m", b)
	}
	*d = Duration(v)
	return nil
}

// ErrInvalid marks a silence refused for what it says; ErrNotFound an
// unknown id.
var (
	ErrInvalid  = errors.New("invalid silence")
	ErrNotFound = errors.New("no such silence")
)

// Bounds on what one request may store.
const (
	maxComment   = 1024
	maxCreatedBy = 256
	maxSilences  = 10000 // not yet deleted, so a runaway script cannot fill the store
)

// silence validates n at now and builds the silence it asks for; every
// problem is named at once.
func (n NewSilence) silence(id string, now time.Time) (Silence, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if n.Match.Empty() {
		bad(`match is empty, which would mute every alert; name devices, sites, roles, labels or event_ids (devices ["*"] means every device)`)
	}
	for _, g := range n.Match.InvalidGlobs() {
		bad("match %s", g)
	}
	start := n.StartsAt
	if start.IsZero() {
		start = now
	}
	end := n.EndsAt
	if n.Duration > 0 {
		end = start.Add(time.Duration(n.Duration))
	}
	switch {
	case !n.EndsAt.IsZero() && n.Duration != 0:
		bad("give ends_at or duration, not both")
	case n.EndsAt.IsZero() && n.Duration == 0:
		bad("ends_at or duration is required")
	case n.Duration < 0:
		bad("duration must be positive")
	case !end.After(start):
		bad("ends_at must be after starts_at")
	case !end.After(now):
		bad("ends_at %s is in the past", end.Format(time.RFC3339))
	}
	switch c := strings.TrimSpace(n.Comment); {
	case c == "":
		bad("comment is required: say why (a change number, the work being done)")
	case len(c) > maxComment:
		bad("comment is longer than %d bytes", maxComment)
	}
	if len(n.CreatedBy) > maxCreatedBy {
		bad("created_by is longer than %d bytes", maxCreatedBy)
	}
	if len(problems) > 0 {
		return Silence{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	// UTC strips the monotonic reading and keeps stored times comparable.
	return Silence{ID: id, Match: n.Match, StartsAt: start.UTC(), EndsAt: end.UTC(), Comment: strings.TrimSpace(n.Comment),
		CreatedBy: n.CreatedBy, CreatedAt: now.UTC()}, nil
}
