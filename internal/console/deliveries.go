package console

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/nocbridge/nocbridge/internal/outbox"
)

type deliveriesData struct {
	Destinations []destinationRow
}

type destinationRow struct {
	Name        string
	Pending     int
	DeadLetters int
	Health      outbox.Health
	Recent      []outbox.Attempt
}

func (c *Console) deliveries(w http.ResponseWriter, r *http.Request) {
	pending, dead := c.d.Outbox.Pending(), c.d.Outbox.DeadLetterCounts()
	var data deliveriesData
	for _, name := range c.destinations() {
		data.Destinations = append(data.Destinations, destinationRow{Name: name, Pending: pending[name], DeadLetters: dead[name],
			Health: c.d.Outbox.Health(name), Recent: c.d.Outbox.Recent(name)})
	}
	v := c.page(r, "Deliveries", "deliveries", data)
	v.Refresh = true
	c.render(w, http.StatusOK, "deliveries", v)
}

// deadLetterLimit is the dead-letter page's default size.
const deadLetterLimit = 50

type deadLettersData struct {
	Destination string // the filter
	Counts      []destCount
	Total       int
	Rows        []outbox.DeadLetter
	Paging      paging
}

type destCount struct {
	Name  string
	Count int
}

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, limit, err := pageParams(q, deadLetterLimit)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	ctx, cancel := readContext(r)
	defer cancel()
	all, err := c.d.Outbox.DeadLetters(ctx)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "Dead letters unavailable", "The dead letters could not be read: "+err.Error())
		return
	}
	data := deadLettersData{Destination: q.Get("destination")}
	counts := map[string]int{}
	var rows []outbox.DeadLetter
	for i := len(all) - 1; i >= 0; i-- { // newest first
		dl := all[i]
		counts[dl.Destination]++
		if data.Destination == "" || dl.Destination == data.Destination {
			rows = append(rows, dl)
		}
	}
	data.Total = len(all)
	for name, n := range counts {
		data.Counts = append(data.Counts, destCount{Name: name, Count: n})
	}
	slices.SortFunc(data.Counts, func(a, b destCount) int { return cmp.Compare(a.Name, b.Name) })
	lo, hi, p, err := paginate(r.URL, len(rows), page, limit)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	data.Rows, data.Paging = rows[lo:hi], p
	c.render(w, http.StatusOK, "deadletters", c.page(r, "Dead letters", "deadletters", data))
}

// replay replays one dead letter (id), a destination's (destination), or
// all (all=1), through the outbox as `nocbridge dlq replay` does.
func (c *Console) replay(w http.ResponseWriter, r *http.Request) {
	ses, ok := c.form(w, r)
	if !ok {
		return
	}
	id, dest, all := r.PostForm.Get("id"), r.PostForm.Get("destination"), r.PostForm.Get("all") == "1"
	var msg string
	switch {
	case id != "":
		err := c.d.Outbox.Replay(r.Context(), id)
		switch {
		case errors.Is(err, outbox.ErrNotFound):
			msg = fmt.Sprintf("Dead letter %s is no longer there (replayed already?).", id)
		case err != nil:
			c.fail(w, r, http.StatusInternalServerError, "Replay failed", fmt.Sprintf("Dead letter %s could not be replayed: %v", id, err))
			return
		default:
			c.log.Info("console: dead letter replayed", "id", id, "remote", r.RemoteAddr)
			msg = fmt.Sprintf("Dead letter %s replayed: it is queued again with the same webhook-id.", id)
		}
	case dest != "" || all:
		n, err := c.d.Outbox.ReplayAll(r.Context(), dest)
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, "Replay failed", fmt.Sprintf("The dead letters could not be replayed: %v", err))
			return
		}
		c.log.Info("console: dead letters replayed", "destination", dest, "count", n, "remote", r.RemoteAddr)
		what := "all destinations"
		if dest != "" {
			what = dest
		}
		msg = fmt.Sprintf("%d dead letter(s) of %s replayed.", n, what)
	default:
		c.fail(w, r, http.StatusBadRequest, "Bad form", "Say which dead letter to replay (id), whose (destination), or all.")
		return
	}
	c.sessions.flash(ses.id, msg)
	http.Redirect(w, r, "/deadletters", http.StatusSeeOther)
}
