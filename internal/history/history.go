// Package history keeps what happened to every alert — its transitions,
// each delivery attempt with its answer, noise control's decisions, digests
// and dead letters — in the embedded store for history.retention (SPEC 12),
// so an alert's link opens a useful page long after it resolved, and a
// one-shot event's at all.
//
// Writers (the alert manager, noise control, the outbox) hand entries over
// without waiting; readers (the API and the console) get an alert's
// timeline, or pages of alerts.
package history

import (
	"errors"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
)

// ErrNotFound is returned (wrapped) for an instance id history does not
// hold: never seen, or older than history.retention.
var ErrNotFound = errors.New("no such alert in history")

// Kind names what an Entry records.
type Kind string

const (
	KindPending    Kind = "pending"    // the condition started to hold; `for` runs
	KindActive     Kind = "active"     // fired: the active notification was handed on
	KindResolved   Kind = "resolved"   // resolved: the resolve was handed on
	KindEvent      Kind = "event"      // a one-shot event (kind: event)
	KindAttempt    Kind = "attempt"    // one delivery attempt to one destination
	KindHeld       Kind = "held"       // noise control holds it (parent first, unreachable, site outage)
	KindSuppressed Kind = "suppressed" // noise control will not send it (unreachable behind a parent)
	KindMuted      Kind = "muted"      // a maintenance window or silence mutes it
	KindFlapping   Kind = "flapping"   // a flapping episode started or ended
	KindReleased   Kind = "released"   // a hold or mute ended and it was sent
	KindDigest     Kind = "digest"     // it went out inside a chat digest
	KindDeadLetter Kind = "dead_letter"
	KindReplay     Kind = "replay"   // a dead letter replayed
	KindNotSent    Kind = "not_sent" // noise control sends nothing for it (resolved while held)
)

// Entry is one line of an alert's timeline.
type Entry struct {
	At   time.Time `json:"at"`
	Kind Kind      `json:"kind"`
	// Status is the notification's status an attempt, dead letter or
	// decision concerns (active or resolved).
	Status      event.Status `json:"status,omitempty"`
	Destination string       `json:"destination,omitempty"`
	Attempt     int          `json:"attempt,omitempty"`
	Probe       bool         `json:"probe,omitempty"`  // a failing destination's probe
	Result      string       `json:"result,omitempty"` // attempts: delivered, retry, dead
	HTTPStatus  int          `json:"http_status,omitempty"`
	DurationMs  float64      `json:"duration_ms,omitempty"`
	// Detail is the reason or answer (scrubbed and cut like every stored
	// answer), what it was suppressed or muted by, a digest's id…
	Detail string `json:"detail,omitempty"`
}

// Alert is one alert instance (or one-shot event) as history holds it.
type Alert struct {
	InstanceID string `json:"instance_id"`
	EventID    string `json:"event_id"`
	Name       string `json:"name"`
	Device     string `json:"device"`
	Key        string `json:"key,omitempty"`
	Severity   int    `json:"severity"`
	// Status is the latest: pending, active, resolved, or event for a
	// one-shot event.
	Status     string    `json:"status"`
	FirstAt    time.Time `json:"first_at"`
	LastAt     time.Time `json:"last_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Event is the last notification as handed on (its DNA Center payload
	// is event.DNAC of it).
	Event *event.Event `json:"event,omitempty"`
	// Timeline is oldest first; empty in list pages.
	Timeline []Entry `json:"timeline,omitempty"`
	// Omitted counts the entries left out of the middle of a very long
	// timeline (a destination probed for days): the first and the last
	// ones are kept (Get).
	Omitted int `json:"omitted,omitempty"`
}

// Query selects a page of alerts, newest first.
type Query struct {
	Device  string // exact device name
	EventID string
	Status  string // pending, active, resolved, event
	Limit   int    // at most this many (0: the default page size)
	Cursor  string // where the previous page ended (Page.Next)
}

// Page is one page of alerts; Next, when not empty, is the cursor of the
// next page.
type Page struct {
	Items []Alert `json:"items"`
	Next  string  `json:"next_cursor,omitempty"`
}
