package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/mute"
)

type silencesData struct {
	Silences []mute.Silence
	Form     silenceForm
	Error    string
	Zone     string // the zone times without an offset are read in
}

// silenceForm is the create form as entered, kept to show it again with
// what was wrong.
type silenceForm struct {
	Devices, Sites, Roles, Labels, EventIDs string
	StartsAt, EndsAt, Duration              string
	Comment, CreatedBy                      string
}

func (c *Console) silences(w http.ResponseWriter, r *http.Request) {
	f := silenceForm{Duration: "2h", Devices: r.URL.Query().Get("device")}
	c.showSilences(w, r, http.StatusOK, f, "")
}

func (c *Console) showSilences(w http.ResponseWriter, r *http.Request, status int, f silenceForm, problem string) {
	data := silencesData{Silences: c.d.Mutes.List(), Form: f, Error: problem, Zone: c.now().In(c.loc).Format("MST (-07:00)")}
	c.render(w, status, "silences", c.page(r, "Silences", "silences", data))
}

func (c *Console) addSilence(w http.ResponseWriter, r *http.Request) {
	ses, ok := c.form(w, r)
	if !ok {
		return
	}
	pf := r.PostForm
	f := silenceForm{Devices: pf.Get("devices"), Sites: pf.Get("sites"), Roles: pf.Get("roles"), Labels: pf.Get("labels"),
		EventIDs: pf.Get("event_ids"), StartsAt: pf.Get("starts_at"), EndsAt: pf.Get("ends_at"), Duration: pf.Get("duration"),
		Comment: pf.Get("comment"), CreatedBy: pf.Get("created_by")}
	n, problems := c.newSilence(f)
	if len(problems) > 0 {
		c.showSilences(w, r, http.StatusBadRequest, f, strings.Join(problems, "; "))
		return
	}
	sl, err := c.d.Mutes.Add(r.Context(), n)
	switch {
	case errors.Is(err, mute.ErrInvalid):
		c.showSilences(w, r, http.StatusBadRequest, f, err.Error())
		return
	case err != nil:
		c.fail(w, r, http.StatusInternalServerError, "Silence not added", "The silence could not be stored: "+err.Error())
		return
	}
	c.log.Info("console: silence added", "id", sl.ID, "remote", r.RemoteAddr)
	c.sessions.flash(ses.id, fmt.Sprintf("Silence %s added (%s), %s until %s.", sl.ID, sl.Match, sl.State,
		sl.EndsAt.In(c.loc).Format("2006-01-02 15:04 MST")))
	http.Redirect(w, r, "/silences", http.StatusSeeOther)
}

// newSilence reads the form; problems are in the form's words.
func (c *Console) newSilence(f silenceForm) (mute.NewSilence, []string) {
	var problems []string
	n := mute.NewSilence{Comment: strings.TrimSpace(f.Comment), CreatedBy: strings.TrimSpace(f.CreatedBy)}
	if n.CreatedBy == "" {
		n.CreatedBy = "console"
	}
	n.Match = config.Match{Selector: config.Selector{Devices: list(f.Devices), Sites: list(f.Sites), Roles: list(f.Roles)}, EventIDs: list(f.EventIDs)}
	for _, kv := range list(f.Labels) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			problems = append(problems, fmt.Sprintf("label %q: write key=value", kv))
			continue
		}
		if n.Match.Labels == nil {
			n.Match.Labels = map[string]string{}
		}
		n.Match.Labels[k] = v
	}
	var err error
	if n.StartsAt, err = c.parseTime(f.StartsAt); err != nil {
		problems = append(problems, "starts: "+err.Error())
	}
	if n.EndsAt, err = c.parseTime(f.EndsAt); err != nil {
		problems = append(problems, "ends: "+err.Error())
	}
	if s := strings.TrimSpace(f.Duration); s != "" {
		if err := n.Duration.UnmarshalText([]byte(s)); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return n, problems
}

// list splits a form field on commas and white space.
func list(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

// parseTime reads RFC 3339, or a browser's datetime-local value (or the same
// with a space) in the console's zone; "" is the zero time.
func (c *Console) parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, c.loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: write 2026-12-12T22:00 (in %s) or RFC 3339", s, c.loc)
}

func (c *Console) expireSilence(w http.ResponseWriter, r *http.Request) {
	ses, ok := c.form(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	sl, err := c.d.Mutes.Expire(r.Context(), id)
	switch {
	case errors.Is(err, mute.ErrNotFound):
		c.fail(w, r, http.StatusNotFound, "No such silence", fmt.Sprintf("There is no silence %q (expired more than a day ago?).", id))
		return
	case err != nil:
		c.fail(w, r, http.StatusInternalServerError, "Silence not expired", "The silence could not be stored: "+err.Error())
		return
	}
	c.log.Info("console: silence expired", "id", sl.ID, "remote", r.RemoteAddr)
	c.sessions.flash(ses.id, fmt.Sprintf("Silence %s expired.", sl.ID))
	http.Redirect(w, r, "/silences", http.StatusSeeOther)
}

type maintenanceData struct {
	Windows []windowRow
}

type windowRow struct {
	Name, Match, Schedule string
	Open                  bool
	Start, End            time.Time
	Next                  bool // Start/End hold an occurrence
}

func (c *Console) maintenance(w http.ResponseWriter, r *http.Request) {
	now := c.now()
	var data maintenanceData
	for _, win := range c.d.Mutes.Windows() {
		row := windowRow{Name: win.Name, Match: win.Match.String(), Schedule: win.Schedule()}
		row.Start, row.End, row.Next = win.NextOccurrence(now)
		row.Open = row.Next && !now.Before(row.Start)
		data.Windows = append(data.Windows, row)
	}
	c.render(w, http.StatusOK, "maintenance", c.page(r, "Maintenance windows", "maintenance", data))
}

// silenceLink is the silences page with the create form filled for a device.
func silenceLink(device string) string { return "/silences?device=" + url.QueryEscape(device) + "#new" }
