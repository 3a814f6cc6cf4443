package noise

import (
	"sort"
	"time"

	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/event"
)

// AlertStatus is what noise control says of one alert, as /api/v1/alerts
// shows it beside the alert.
type AlertStatus struct {
	// Suppressed is parent or site when the device is unreachable;
	// SuppressedBy names the causes.
	Suppressed   string   `json:"suppressed,omitempty"`
	SuppressedBy []string `json:"suppressed_by,omitempty"`
	MutedBy      []string `json:"muted_by,omitempty"`
	Flapping     bool     `json:"flapping,omitempty"`
	// Held is why its active was not sent (yet), any reason.
	Held string `json:"held,omitempty"`
}

// AlertStatus of the alert of eventID on device with key.
func (g *Gate) AlertStatus(eventID, device, key string) AlertStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	ev := event.Event{EventID: eventID, Key: key}
	ev.Device.Name = device
	rec := g.recs[alertKey(ev)]
	var st AlertStatus
	if rec == nil {
		return st
	}
	st.Flapping = rec.Flapping
	if rec.Held != nil {
		st.Held = rec.Reason
		switch rec.Reason {
		case ReasonParent, ReasonSite:
			st.Suppressed, st.SuppressedBy = rec.Reason, rec.By
		case ReasonMaintenance, ReasonSilence:
			st.MutedBy = rec.By
		}
	}
	return st
}

// Annotate marks the unreachable devices of a device list (state
// unreachable, suppressed_by).
func (g *Gate) Annotate(list []devstate.Status) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range list {
		if !g.unreachableLocked(list[i].Name) {
			continue
		}
		d, _ := g.inv.Device(list[i].Name)
		list[i].State, list[i].SuppressedBy = "unreachable", g.causesLocked(d)
	}
}

// Summary is /api/v1/noise: everything noise control holds back now.
type Summary struct {
	Held        []HeldAlert         `json:"held"`
	Flapping    []FlappingAlert     `json:"flapping"`
	Unreachable []UnreachableDevice `json:"unreachable"`
	SiteOutages []string            `json:"site_outages"`
	Muted       []MutedEvent        `json:"muted_events"` // one-shot events not sent, newest last
}

// HeldAlert is an active noise control has not sent.
type HeldAlert struct {
	Event  event.Event `json:"event"`
	Reason string      `json:"reason"`
	By     []string    `json:"by,omitempty"`
	Since  time.Time   `json:"since"`
	Until  time.Time   `json:"until,omitzero"` // a verdict's deadline, or when a child back from behind a parent may go
}

// FlappingAlert is an alert key in a flap episode.
type FlappingAlert struct {
	EventID string    `json:"event_id"`
	Device  string    `json:"device"`
	Key     string    `json:"key,omitempty"`
	Changes int       `json:"changes"`
	Active  bool      `json:"active"`
	Ends    time.Time `json:"ends"` // when it ends if nothing changes
}

// UnreachableDevice fails behind its causes.
type UnreachableDevice struct {
	Name         string   `json:"name"`
	SuppressedBy []string `json:"suppressed_by"`
}

// Summary of what is held back now.
func (g *Gate) Summary() Summary {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Summary{Held: []HeldAlert{}, Flapping: []FlappingAlert{}, Unreachable: []UnreachableDevice{}, SiteOutages: []string{},
		Muted: append([]MutedEvent{}, g.muted...)}
	for _, k := range keysOf(g.recs) {
		rec := g.recs[k]
		if rec.Held != nil {
			until := rec.Deadline
			if rec.Reason == ReasonParent || rec.Reason == ReasonSite {
				until = rec.Eligible
			}
			s.Held = append(s.Held, HeldAlert{Event: *rec.Held, Reason: rec.Reason, By: rec.By, Since: rec.HeldAt, Until: until})
		}
		if rec.Flapping {
			s.Flapping = append(s.Flapping, FlappingAlert{EventID: rec.EventID, Device: rec.Device, Key: rec.Key,
				Changes: len(rec.Changes), Active: rec.Active, Ends: g.flapEndLocked(rec)})
		}
	}
	for _, d := range g.inv.Devices() {
		if g.unreachableLocked(d.Name) {
			s.Unreachable = append(s.Unreachable, UnreachableDevice{Name: d.Name, SuppressedBy: g.causesLocked(d)})
		}
	}
	for name := range g.sites {
		if g.siteOutageLocked(name) {
			s.SiteOutages = append(s.SiteOutages, name)
		}
	}
	sort.Strings(s.SiteOutages)
	return s
}
