package console

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/noise"
	"github.com/nocbridge/nocbridge/internal/outbox"
)

// overviewAlerts is how many active alerts the overview lists; the rest
// are counted (all are in /api/v1/alerts).
const overviewAlerts = 100

type overviewData struct {
	Devices           stateCounts
	Firing, Pending   int
	Held, Muted, Flap int
	DeliveriesPending int
	Failing           []string // destinations failing as a whole
	DeadLetters       int
	Alerts            []alertRow
	MoreAlerts        int
	Sites             []siteRow
	SiteOutages       []string
}

// stateCounts counts devices by state.
type stateCounts struct {
	Total, Up, Down, Unreachable, Unknown, Muted, Flapping int
}

func (s *stateCounts) add(state string, muted, flapping bool) {
	s.Total++
	switch state {
	case "up":
		s.Up++
	case "down":
		s.Down++
	case "unreachable":
		s.Unreachable++
	default:
		s.Unknown++
	}
	if muted {
		s.Muted++
	}
	if flapping {
		s.Flapping++
	}
}

// siteRow is a site's counts. C is a named field, not embedded: templates
// reach embedded fields through a slow reflect lookup.
type siteRow struct {
	Name string // "" for devices without a site
	C    stateCounts
}

// alertRow is an active alert as the lists show it.
type alertRow struct {
	ID          string // instance id; empty while pending (nothing notified yet)
	EventID     string
	Name        string
	Description string
	Device      string
	Key         string
	Severity    int
	State       string // pending | firing
	Since       time.Time
	Noise       []string // what noise control does with it, in words
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	now := c.now()
	devs := c.d.Devices()
	var sum noise.Summary
	if c.d.Noise != nil {
		sum = c.d.Noise.Summary()
	}
	mutes := c.muteMatcher(now)
	flapping := map[string]bool{}
	for _, f := range sum.Flapping {
		flapping[f.Device] = true
	}
	var data overviewData
	sites := map[string]*siteRow{}
	for i := range devs {
		d := &devs[i]
		muted, flaps := mutes.muted(d), flapping[d.Name]
		data.Devices.add(d.State, muted, flaps)
		s := sites[d.Site]
		if s == nil {
			s = &siteRow{Name: d.Site}
			sites[d.Site] = s
		}
		s.C.add(d.State, muted, flaps)
	}
	for _, s := range sites {
		data.Sites = append(data.Sites, *s)
	}
	slices.SortFunc(data.Sites, func(a, b siteRow) int { return cmp.Compare(a.Name, b.Name) })

	rows := c.alertRows(c.d.Alerts())
	for _, a := range rows {
		if a.State == string(alert.StateFiring) {
			data.Firing++
		} else {
			data.Pending++
		}
	}
	if len(rows) > overviewAlerts {
		data.MoreAlerts = len(rows) - overviewAlerts
		rows = rows[:overviewAlerts]
	}
	data.Alerts = rows
	for _, h := range sum.Held {
		if h.Reason == noise.ReasonMaintenance || h.Reason == noise.ReasonSilence {
			data.Muted++
		} else {
			data.Held++
		}
	}
	data.Flap = len(sum.Flapping)
	data.SiteOutages = sum.SiteOutages
	for _, dest := range c.destinations() {
		if c.d.Outbox.Health(dest).State == outbox.StateFailing {
			data.Failing = append(data.Failing, dest)
		}
	}
	for _, n := range c.d.Outbox.Pending() {
		data.DeliveriesPending += n
	}
	for _, n := range c.d.Outbox.DeadLetterCounts() {
		data.DeadLetters += n
	}
	v := c.page(r, "Overview", "overview", data)
	v.Refresh = true
	c.render(w, http.StatusOK, "overview", v)
}

// alertRows are the alerts with noise control's view, most severe first,
// then longest active first.
func (c *Console) alertRows(ins []alert.Instance) []alertRow {
	rows := make([]alertRow, 0, len(ins))
	for _, in := range ins {
		row := alertRow{EventID: in.EventID, Device: in.Device.Name, Key: in.Key, State: string(in.State), Since: in.Since,
			Severity: severityOfID(in.EventID)}
		ev := in.Event
		if ev == nil {
			ev = in.Unsent
		}
		if ev != nil {
			row.ID, row.Name, row.Description, row.Severity = ev.InstanceID, ev.Name, ev.Description, ev.Severity
		}
		if c.d.Noise != nil {
			row.Noise = noiseWords(c.d.Noise.AlertStatus(in.EventID, in.Device.Name, in.Key))
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b alertRow) int {
		return cmp.Or(cmp.Compare(a.Severity, b.Severity), a.Since.Compare(b.Since), cmp.Compare(a.Device, b.Device))
	})
	return rows
}

// severityOfID reads the severity from a DNA Center event id
// (TYPE-SUBDOMAIN-SEVERITY-NUMBER), for an alert with no event yet; 5 when
// the id does not say.
func severityOfID(id string) int {
	parts := strings.Split(id, "-")
	if len(parts) >= 2 {
		if n, err := strconv.Atoi(parts[len(parts)-2]); err == nil && n >= 1 && n <= 5 {
			return n
		}
	}
	return 5
}

// noiseWords says what noise control does with an alert.
func noiseWords(st noise.AlertStatus) []string {
	var out []string
	switch {
	case st.Suppressed != "":
		out = append(out, "suppressed ("+st.Suppressed+": behind "+strings.Join(st.SuppressedBy, ", ")+")")
	case len(st.MutedBy) > 0:
		out = append(out, "muted by "+strings.Join(st.MutedBy, ", "))
	case st.Held == noise.ReasonParentWait:
		out = append(out, "held: waiting for its parents' verdict")
	case st.Held != "":
		out = append(out, "held ("+st.Held+")")
	}
	if st.Flapping {
		out = append(out, "flapping")
	}
	return out
}

// activeMute is a silence or an open maintenance window.
type activeMute struct {
	What  string // "silence <id> (match): comment", "maintenance <name> (match)"
	Sel   config.Selector
	Until time.Time
}

// activeMutes are the silences active and the windows open now.
func (c *Console) activeMutes(now time.Time) []activeMute {
	var out []activeMute
	for _, w := range c.d.Mutes.Windows() {
		if _, end, open := w.Covering(now); open {
			out = append(out, activeMute{What: fmt.Sprintf("maintenance %s (%s)", w.Name, w.Match), Sel: w.Match.Selector, Until: end})
		}
	}
	for _, sl := range c.d.Mutes.List() {
		if sl.StateAt(now) == mute.Active {
			out = append(out, activeMute{What: fmt.Sprintf("silence %s (%s): %s", sl.ID, sl.Match, sl.Comment), Sel: sl.Match.Selector, Until: sl.EndsAt})
		}
	}
	return out
}

// muteMatcher says whether a silence or an open maintenance window
// selects a device now (for some or all events). When no mute names
// devices or labels, the answer depends on the site and role only, and is
// worked out once per pair: an overview at 10,000 devices asks it 10,000
// times.
type muteMatcher struct {
	sels   []config.Selector
	byPair map[[2]string]bool // nil: names or labels matter
}

func (c *Console) muteMatcher(now time.Time) *muteMatcher {
	m := &muteMatcher{byPair: map[[2]string]bool{}}
	for _, a := range c.activeMutes(now) {
		m.sels = append(m.sels, a.Sel)
		if len(a.Sel.Devices) > 0 || len(a.Sel.Labels) > 0 {
			m.byPair = nil
		}
	}
	return m
}

func (m *muteMatcher) muted(d *devstate.Status) bool {
	if len(m.sels) == 0 {
		return false
	}
	if m.byPair != nil {
		key := [2]string{d.Site, d.Role}
		if v, ok := m.byPair[key]; ok {
			return v
		}
		v := m.match(d)
		m.byPair[key] = v
		return v
	}
	return m.match(d)
}

func (m *muteMatcher) match(d *devstate.Status) bool {
	for _, sel := range m.sels {
		if sel.Matches(d.Name, d.Site, d.Role, d.Labels) {
			return true
		}
	}
	return false
}

// destinations are the configured destinations, then any other that still
// has notifications pending or dead (removed from the config since).
func (c *Console) destinations() []string {
	names := c.d.Destinations()
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	var extra []string
	for n := range c.d.Outbox.Pending() {
		if !seen[n] {
			seen[n] = true
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	return append(append([]string(nil), names...), extra...)
}
