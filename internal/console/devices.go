package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/noise"
	"github.com/nocbridge/nocbridge/internal/probe"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

// Paging of the lists: ?page=N (from 1) and ?limit=N.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// deviceStates are the states the device filter takes.
var deviceStates = []string{"up", "down", "unreachable", "unknown", "muted", "flapping"}

type devicesData struct {
	Filter       deviceFilter
	Sites, Roles []string
	States       []string
	Rows         []devicesRow
	Paging       paging
	Total        int // every device, before the filter
}

// devicesRow is a device in the list. D is a named field, not embedded:
// templates reach embedded fields through a slow reflect lookup.
type devicesRow struct {
	D               devstate.Status
	Muted, Flapping bool
}

type deviceFilter struct {
	Site, Role, State, Name string
}

// paging is one page of a list and the links around it.
type paging struct {
	Page, Pages, Limit int
	First, Last, Of    int // 1-based positions of the rows shown, and the count
	Prev, Next         string
	FirstURL, LastURL  string
}

// pageParams reads ?page and ?limit; an error is the 400's text.
func pageParams(q url.Values, defLimit int) (page, limit int, err error) {
	page, limit = 1, defLimit
	if s := q.Get("page"); s != "" {
		if page, err = strconv.Atoi(s); err != nil || page < 1 {
			return 0, 0, fmt.Errorf("page %q: want a whole number from 1", s)
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxLimit {
			return 0, 0, fmt.Errorf("limit %q: want a whole number from 1 to %d", s, maxLimit)
		}
	}
	return page, limit, nil
}

// paginate cuts [0, n) to one page; a page past the last is an error
// (except page 1 of nothing).
func paginate(u *url.URL, n, page, limit int) (lo, hi int, p paging, err error) {
	pages := max(1, (n+limit-1)/limit)
	if page > pages {
		return 0, 0, p, fmt.Errorf("page %d is past the last page, %d", page, pages)
	}
	lo, hi = (page-1)*limit, min(page*limit, n)
	p = paging{Page: page, Pages: pages, Limit: limit, Of: n}
	if n > 0 {
		p.First, p.Last = lo+1, hi
	}
	link := func(to int) string {
		q := u.Query()
		q.Set("page", strconv.Itoa(to))
		return u.Path + "?" + q.Encode()
	}
	if page > 1 {
		p.Prev, p.FirstURL = link(page-1), link(1)
	}
	if page < pages {
		p.Next, p.LastURL = link(page+1), link(pages)
	}
	return lo, hi, p, nil
}

func (c *Console) devices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := deviceFilter{Site: q.Get("site"), Role: q.Get("role"), State: q.Get("state"), Name: strings.TrimSpace(q.Get("name"))}
	page, limit, err := pageParams(q, defaultLimit)
	if err == nil && f.State != "" && !slices.Contains(deviceStates, f.State) {
		err = fmt.Errorf("state %q: want one of %s", f.State, strings.Join(deviceStates, ", "))
	}
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	now := c.now()
	all := c.d.Devices()
	// Only the muted filter asks every device's mutes; otherwise only the
	// page's rows are. The list is indices into all, so sorting 10,000
	// devices moves ints, not structs.
	mutes := c.muteMatcher(now)
	flapping := c.flappingDevices()
	data := devicesData{Filter: f, States: deviceStates, Total: len(all)}
	sites, roles := map[string]bool{}, map[string]bool{}
	name := strings.ToLower(f.Name)
	rows := make([]int, 0, len(all))
	for i := range all {
		d := &all[i]
		sites[d.Site], roles[d.Role] = true, true
		if (f.Site != "" && d.Site != f.Site) || (f.Role != "" && d.Role != f.Role) || !stateIs(d.State, f.State == "muted" && mutes.muted(d), flapping[d.Name], f.State) ||
			(name != "" && !strings.Contains(strings.ToLower(d.Name), name)) {
			continue
		}
		rows = append(rows, i)
	}
	data.Sites, data.Roles = setKeys(sites), setKeys(roles)
	byName := func(a, b int) int { return strings.Compare(all[a].Name, all[b].Name) }
	if !slices.IsSortedFunc(rows, byName) {
		slices.SortFunc(rows, byName)
	}
	lo, hi, p, err := paginate(r.URL, len(rows), page, limit)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad request", err.Error())
		return
	}
	shown := make([]devstate.Status, 0, hi-lo)
	for _, i := range rows[lo:hi] {
		shown = append(shown, all[i])
	}
	for _, d := range shown {
		data.Rows = append(data.Rows, devicesRow{D: d, Muted: mutes.muted(&d), Flapping: flapping[d.Name]})
	}
	data.Paging = p
	v := c.page(r, "Devices", "devices", data)
	v.Refresh = true
	c.render(w, http.StatusOK, "devices", v)
}

// stateIs reports whether a device in state (muted, flapping) passes the
// state filter.
func stateIs(state string, muted, flapping bool, filter string) bool {
	switch filter {
	case "":
		return true
	case "muted":
		return muted
	case "flapping":
		return flapping
	case "unknown":
		return state != "up" && state != "down" && state != "unreachable"
	}
	return state == filter
}

// setKeys are a set's members, sorted; "" (none) stays out.
func setKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// flappingDevices are the devices with a flapping alert.
func (c *Console) flappingDevices() map[string]bool {
	out := map[string]bool{}
	if c.d.Noise != nil {
		for _, f := range c.d.Noise.Summary().Flapping {
			out[f.Device] = true
		}
	}
	return out
}

type deviceData struct {
	D            devstate.Status
	Behind       []behind // what an unreachable device fails behind
	MutedBy      []string // silences and open windows that select it now
	Flapping     []noise.FlappingAlert
	Chart        chart
	Active       []alertRow
	History      []history.Alert
	HistoryNext  string // the URL of the next (older) page of its history
	HistoryError string
	CanProbe     bool
	Probe        *ProbeResult
	ProbeError   string
	// Vantage are the nodes' last ICMP results (a cluster).
	Vantage []vantage.Result
}

// behind is a cause an unreachable device fails behind: a device (linked)
// or a site outage.
type behind struct {
	Name     string
	IsDevice bool
}

// historyPage is how many of a device's past alerts its page lists.
const historyPage = 20

func (c *Console) device(w http.ResponseWriter, r *http.Request) {
	c.showDevice(w, r, nil, "")
}

// showDevice renders a device's page, with a probe's result after "probe
// now".
func (c *Console) showDevice(w http.ResponseWriter, r *http.Request, probe *ProbeResult, probeErr string) {
	name := r.PathValue("name")
	d, ok := c.deviceNamed(name)
	if !ok {
		c.fail(w, r, http.StatusNotFound, "No such device", fmt.Sprintf("There is no device named %q in the inventory.", name))
		return
	}
	now := c.now()
	data := deviceData{D: d, CanProbe: c.d.Prober != nil, Probe: probe, ProbeError: probeErr}
	for _, b := range d.SuppressedBy { // a device (linked), or "site S"
		_, isDevice := c.deviceNamed(b)
		data.Behind = append(data.Behind, behind{Name: b, IsDevice: isDevice})
	}
	data.MutedBy = c.mutesOf(&inventory.Device{Name: d.Name, Site: d.Site, Role: d.Role, Labels: d.Labels}, now)
	if c.d.Noise != nil {
		for _, f := range c.d.Noise.Summary().Flapping {
			if f.Device == name {
				data.Flapping = append(data.Flapping, f)
			}
		}
	}
	data.Chart = buildChart(c.d.Series.Series(name), now, c.loc)
	if c.d.Vantage != nil {
		data.Vantage = c.d.Vantage(name)
	}
	var mine []alert.Instance
	for _, in := range c.d.Alerts() {
		if in.Device.Name == name {
			mine = append(mine, in)
		}
	}
	data.Active = c.alertRows(mine)
	ctx, cancel := readContext(r)
	defer cancel()
	cursor := r.URL.Query().Get("cursor")
	hp, err := c.d.History.List(ctx, history.Query{Device: name, Limit: historyPage, Cursor: cursor})
	if err != nil {
		data.HistoryError = err.Error()
	}
	data.History = hp.Items
	if hp.Next != "" {
		data.HistoryNext = "/devices/" + url.PathEscape(name) + "?cursor=" + url.QueryEscape(hp.Next) + "#history"
	}
	v := c.page(r, d.Name, "devices", data)
	v.Refresh = probe == nil && probeErr == ""
	c.render(w, http.StatusOK, "device", v)
}

// mutesOf names the silences and open maintenance windows that select the
// device now (for some or all events), and until when.
func (c *Console) mutesOf(d *inventory.Device, now time.Time) []string {
	var out []string
	for _, m := range c.activeMutes(now) {
		if d.In(m.Sel) {
			out = append(out, m.What+", until "+m.Until.In(c.loc).Format("2006-01-02 15:04 MST"))
		}
	}
	return out
}

// probeTimeout bounds "probe now".
const probeTimeout = 30 * time.Second

func (c *Console) probe(w http.ResponseWriter, r *http.Request) {
	if c.d.Prober == nil {
		c.fail(w, r, http.StatusNotFound, "Probing is not available", "This nocbridge cannot probe devices from the console.")
		return
	}
	if _, ok := c.form(w, r); !ok {
		return
	}
	name := r.PathValue("name")
	if _, ok := c.deviceNamed(name); !ok {
		c.fail(w, r, http.StatusNotFound, "No such device", fmt.Sprintf("There is no device named %q in the inventory.", name))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	res, err := c.d.Prober.Probe(ctx, name)
	c.log.Info("console probe", "device", name, "err", err)
	if err != nil {
		c.showDevice(w, r, nil, err.Error())
		return
	}
	c.showDevice(w, r, &res, "")
}

// deviceNamed is one device: through Deps.Device when set, else looked up
// in Deps.Devices.
func (c *Console) deviceNamed(name string) (devstate.Status, bool) {
	if c.d.Device != nil {
		return c.d.Device(name)
	}
	all := c.d.Devices()
	if i := slices.IndexFunc(all, func(d devstate.Status) bool { return d.Name == name }); i >= 0 {
		return all[i], true
	}
	return devstate.Status{}, false
}

// ProbeWith is the console's Prober over `nocbridge probe`'s engine
// (internal/probe), so the button runs the same checks, limits included,
// as the command and POST /api/v1/devices/{name}/probe.
func ProbeWith(p interface {
	Device(ctx context.Context, name string) (probe.Result, error)
}) Prober {
	return probeEngine{p}
}

type probeEngine struct {
	p interface {
		Device(ctx context.Context, name string) (probe.Result, error)
	}
}

func (e probeEngine) Probe(ctx context.Context, device string) (ProbeResult, error) {
	at := time.Now()
	res, err := e.p.Device(ctx, device)
	if err != nil {
		return ProbeResult{}, err
	}
	out := ProbeResult{Device: device, At: at}
	for _, c := range res.Checks() {
		out.Checks = append(out.Checks, ProbeCheck(c))
	}
	return out, nil
}
