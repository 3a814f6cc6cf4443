package console

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/noise"
)

type alertData struct {
	ID       string
	History  *history.Alert // nil: history does not hold it (yet)
	HistErr  string         // history could not be read
	Live     *alert.Instance
	LiveRow  *alertRow
	Noise    noise.AlertStatus
	Event    *event.Event // the last notification (history's, else the live one)
	Payload  string       // its DNA Center rendering, indented
	Device   string
	OneShot  bool
	Resolved bool
}

func (c *Console) alert(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data := alertData{ID: id}
	ctx, cancel := readContext(r)
	defer cancel()
	h, err := c.d.History.Get(ctx, id)
	switch {
	case err == nil:
		data.History = &h
	case !isNotFound(err):
		data.HistErr = err.Error()
	}
	for _, in := range c.d.Alerts() {
		ev := in.Event
		if ev == nil {
			ev = in.Unsent
		}
		if ev != nil && ev.InstanceID == id {
			data.Live = &in
			rows := c.alertRows([]alert.Instance{in})
			data.LiveRow = &rows[0]
			if c.d.Noise != nil {
				data.Noise = c.d.Noise.AlertStatus(in.EventID, in.Device.Name, in.Key)
			}
			break
		}
	}
	if data.History == nil && data.Live == nil {
		if data.HistErr != "" {
			c.fail(w, r, http.StatusServiceUnavailable, "Alert history unavailable",
				fmt.Sprintf("Alert %s is not active, and its history could not be read: %s", id, data.HistErr))
			return
		}
		c.fail(w, r, http.StatusNotFound, "Alert not found",
			fmt.Sprintf("Alert %s is not known: it is older than history.retention (default 30 days), or it never existed.", id))
		return
	}
	switch {
	case data.History != nil && data.History.Event != nil:
		data.Event = data.History.Event
	case data.Live != nil && data.Live.Event != nil:
		data.Event = data.Live.Event
	case data.Live != nil:
		data.Event = data.Live.Unsent
	}
	if data.History != nil {
		data.Device = data.History.Device
		data.OneShot = data.History.Status == string(history.KindEvent)
		data.Resolved = data.History.Status == string(history.KindResolved)
	} else {
		data.Device = data.Live.Device.Name
	}
	if data.Event != nil {
		b, err := json.MarshalIndent(data.Event.DNAC(c.d.ExternalURL()), "", "  ")
		if err == nil {
			data.Payload = string(b)
		}
		data.OneShot = data.OneShot || data.Event.Kind == event.KindEvent
	}
	title := "Alert " + id
	if data.Event != nil {
		title = data.Event.Name + " on " + data.Device
	}
	v := c.page(r, title, "", data)
	v.Refresh = data.Live != nil
	c.render(w, http.StatusOK, "alert", v)
}
