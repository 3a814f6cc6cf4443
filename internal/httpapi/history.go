package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
)

// History is what the API reads of the alert history (history.History).
type History interface {
	Get(ctx context.Context, instanceID string) (history.Alert, error)
	List(ctx context.Context, q history.Query) (history.Page, error)
	Stats() history.Stats
}

// alertDetail is /api/v1/alerts/{id}: the alert as history holds it, with
// its timeline, and, while it is pending or active, its live state
// (the alert manager's and noise control's).
type alertDetail struct {
	history.Alert
	Live *alertView `json:"live,omitempty"`
}

// alertByID serves an alert, active, resolved or one-shot, for as long as
// history keeps it; 404 only when history does not have it and it is not
// active.
func (d Deps) alertByID(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var out alertDetail
	for _, in := range d.alerts() {
		if in.InstanceID == id || (in.Event != nil && in.Event.InstanceID == id) {
			out.Live = &in
			break
		}
	}
	err := history.ErrNotFound
	if d.History != nil {
		out.Alert, err = d.History.Get(r.Context(), id)
	}
	switch {
	case err == nil:
	case errors.Is(err, history.ErrNotFound) && out.Live != nil:
		out.Alert = liveOnly(id, out.Live) // history missed it (dropped entries) or does not run
	case errors.Is(err, history.ErrNotFound):
		msg := fmt.Sprintf("alert %s is not active", id)
		if d.History != nil {
			msg = fmt.Sprintf("alert %s is not in the alert history: unknown, or older than history.retention (%s)", id, d.History.Stats().Retention)
		}
		writeError(w, http.StatusNotFound, msg)
		return
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, out)
}

// liveOnly is an active alert as the alert manager knows it, without a
// timeline.
func liveOnly(id string, v *alertView) history.Alert {
	a := history.Alert{InstanceID: id, EventID: v.EventID, Device: v.Device.Name, Key: v.Key,
		Status: history.StatusPending, FirstAt: v.Since, LastAt: v.Since, Event: v.Event}
	if v.Event != nil {
		a.Name, a.Severity, a.Status, a.LastAt = v.Event.Name, v.Event.Severity, history.StatusActive, v.ActiveAt
		if v.Event.Status == event.StatusResolved {
			a.Status = history.StatusResolved
		}
	}
	return a
}

// historyList serves pages of alerts, the most recently changed first,
// filtered by device, event_id and status; without limit, a page of
// history.DefaultLimit.
func (d Deps) historyList(w http.ResponseWriter, r *http.Request) {
	if d.History == nil {
		writeError(w, http.StatusServiceUnavailable, "alert history is not kept by this process")
		return
	}
	p, ok := readPage(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	page, err := d.History.List(r.Context(), history.Query{Device: q.Get("device"), EventID: q.Get("event_id"),
		Status: q.Get("status"), Limit: p.limit, Cursor: p.cursor})
	switch {
	case errors.Is(err, history.ErrBadQuery):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	case page.Items == nil:
		page.Items = []history.Alert{}
	}
	writePage(w, r, page.Items, page.Next)
}

// historyStatus serves what the history writer did: retention, entries
// written, dropped by reason, waiting.
func (d Deps) historyStatus(w http.ResponseWriter, _ *http.Request) {
	if d.History == nil {
		writeError(w, http.StatusServiceUnavailable, "alert history is not kept by this process")
		return
	}
	writeJSON(w, d.History.Stats())
}
