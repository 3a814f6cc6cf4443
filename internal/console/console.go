// Package console is the operator's web console (SPEC 12): server-rendered
// pages over the read models the JSON API serves — devices, alerts and their
// history, deliveries, dead letters, silences, maintenance windows — and a
// login for the forms that change something. It reads state, and changes it
// only through the calls the CLI and the API make (the outbox's Replay and
// ReplayAll, the silences' Add and Expire). internal/httpapi mounts it on its
// mux and answers a page's URL with the API's JSON when a client asks for
// JSON.
//
// Every page works without JavaScript; a small script (assets/console.js)
// refreshes the live pages in place when it runs. States are text and
// colour, never colour alone; dark mode follows the system.
//
// Files: console.go the dependencies, routes and rendering; session.go the
// login, sessions and CSRF tokens; overview.go, devices.go, alerts.go,
// deliveries.go, silences.go, cluster.go the pages; chart.go the device's RTT and loss
// chart; templates/ and assets/ are embedded.
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/noise"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/vantage"
	"github.com/prometheus/client_golang/prometheus"
)

// Series is the per-minute ICMP history of a device (devstate.Tracker).
type Series interface {
	Series(device string) []devstate.Point
}

// History is the alert history kept in the store (internal/history).
type History interface {
	// Get is one alert with its timeline; history.ErrNotFound (wrapped)
	// when it is unknown or older than history.retention.
	Get(ctx context.Context, instanceID string) (history.Alert, error)
	// List is a page of alerts, newest first.
	List(ctx context.Context, q history.Query) (history.Page, error)
}

// Noise is what noise control says, per alert and in summary (noise.Gate).
type Noise interface {
	AlertStatus(eventID, device, key string) noise.AlertStatus
	Summary() noise.Summary
}

// Outbox is what the console reads of deliveries and dead letters, and the
// replays it asks for (outbox.Outbox).
type Outbox interface {
	DeadLetters(ctx context.Context) ([]outbox.DeadLetter, error)
	DeadLetterCounts() map[string]int
	Replay(ctx context.Context, id string) error
	ReplayAll(ctx context.Context, destination string) (int, error)
	Recent(destination string) []outbox.Attempt
	Pending() map[string]int
	Health(destination string) outbox.Health
}

// Mutes are the silences and maintenance windows (mute.Set).
type Mutes interface {
	Add(ctx context.Context, n mute.NewSilence) (mute.Silence, error)
	List() []mute.Silence
	Expire(ctx context.Context, id string) (mute.Silence, error)
	Windows() []*mute.Window
}

// Prober probes one device on demand, as `nocbridge probe` does (SPEC
// 13.2): its ping, SNMP and trap checks with the daemon's own settings.
type Prober interface {
	Probe(ctx context.Context, device string) (ProbeResult, error)
}

// ProbeResult is what a probe found, check by check.
type ProbeResult struct {
	Device string
	At     time.Time
	Checks []ProbeCheck
}

// ProbeCheck is one line of a probe: "ping" OK "3/3 replies, rtt
// min/avg/max/mdev 0.3/0.4/0.6/0.1 ms", "snmp" failed "timeout"…
type ProbeCheck struct {
	Name   string
	OK     bool
	Detail string
}

// Deps are the read models the console shows and the calls it makes.
// Noise, Prober, Device, Now, Location and Logger may be nil (no noise
// view; no "probe now" button; devices looked up in Devices; defaults); the
// others are required.
type Deps struct {
	Logger *slog.Logger
	// Now is the clock (nil: time.Now); Location the zone times are shown
	// in (nil: the machine's).
	Now      func() time.Time
	Location *time.Location
	// ExternalURL is external_url: the base of the alert link in the
	// payload the alert page shows, as it was sent.
	ExternalURL func() string
	// Alerts are the pending and firing alerts.
	Alerts func() []alert.Instance
	// Devices is every device of the inventory with what was last seen of
	// it, as /api/v1/devices serves it (noise control's view included),
	// by name as devstate.Tracker.List gives them (others are sorted here,
	// at a cost per page).
	Devices func() []devstate.Status
	// Device is one device as Devices has it, without copying every
	// device for a device page; nil looks it up in Devices.
	Device       func(name string) (devstate.Status, bool)
	Destinations func() []string
	Series       Series
	History      History
	Noise        Noise
	Outbox       Outbox
	Mutes        Mutes
	Prober       Prober
	// Token is http.token: the login asks for it; empty disables changes.
	Token func() config.Secret
	// Store says why the store cannot write, or nil.
	Store func() error
	// Registerer takes the console's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Cluster is the store's cluster (store.Store.ClusterInfo). Set it
	// only when the store is clustered: it links the /cluster page from
	// the navigation; nil: /cluster says this node is alone.
	Cluster func(ctx context.Context) store.ClusterInfo
	// ClusterVantage is the vantage points' rule and disagreements
	// (vantage.Set.Status) for /cluster; nil: not shown.
	ClusterVantage func() vantage.Status
	// Vantage is each node's last ICMP result of a device
	// (vantage.Set.Results), shown on its page; nil: not shown.
	Vantage func(device string) []vantage.Result
}

// Console serves the pages. Safe for concurrent use.
type Console struct {
	d        Deps
	log      *slog.Logger
	now      func() time.Time
	loc      *time.Location
	mux      *http.ServeMux
	patterns []string
	sessions *sessions
	// refused counts logins and forms the console turned away, by reason.
	refused *prometheus.CounterVec
}

// readTimeout bounds the store reads a page makes (alert history).
const readTimeout = 5 * time.Second

// maxForm bounds a form's body.
const maxForm = 64 << 10

// New checks the dependencies and builds the console.
func New(d Deps) (*Console, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"ExternalURL": d.ExternalURL != nil, "Alerts": d.Alerts != nil, "Devices": d.Devices != nil,
		"Destinations": d.Destinations != nil, "Series": d.Series != nil, "History": d.History != nil,
		"Outbox": d.Outbox != nil, "Mutes": d.Mutes != nil, "Token": d.Token != nil, "Store": d.Store != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("console: missing dependencies %s", strings.Join(missing, ", "))
	}
	c := &Console{d: d, log: d.Logger, now: d.Now, loc: d.Location, mux: http.NewServeMux(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nocbridge_console_refused_total",
			Help: "Logins and forms the console refused, by reason (wrong_token, too_many_failures, login_form, no_session, csrf)."}, []string{"reason"})}
	if d.Registerer != nil {
		if err := d.Registerer.Register(c.refused); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.loc == nil {
		c.loc = time.Local
	}
	var err error
	if c.sessions, err = newSessions(c.now); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"GET /{$}", c.overview},
		{"GET /devices", c.devices},
		{"GET /devices/{name}", c.device},
		{"POST /devices/{name}/probe", c.probe},
		{"GET /alerts/{id}", c.alert},
		{"GET /deliveries", c.deliveries},
		{"GET /deadletters", c.deadLetters},
		{"POST /deadletters/replay", c.replay},
		{"GET /silences", c.silences},
		{"POST /silences", c.addSilence},
		{"POST /silences/{id}/expire", c.expireSilence},
		{"GET /maintenance", c.maintenance},
		{"GET /cluster", c.cluster},
		{"GET /login", c.loginPage},
		{"POST /login", c.login},
		{"POST /logout", c.logout},
		{"GET /assets/{file}", serveAsset},
	} {
		c.mux.HandleFunc(r.pattern, r.h)
		c.patterns = append(c.patterns, r.pattern)
	}
	return c, nil
}

// Patterns are the mux patterns of the console's pages, forms and assets,
// for the API's mux to route to it.
func (c *Console) Patterns() []string { return append([]string(nil), c.patterns...) }

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Allows reports whether r may see the console without the API's bearer
// token where the API needs it for reads (off loopback): the login page and
// the assets always, everything else with a signed-in session.
func (c *Console) Allows(r *http.Request) bool {
	if r.URL.Path == "/login" || strings.HasPrefix(r.URL.Path, "/assets/") {
		return true
	}
	_, ok := c.sessions.get(r, c.token())
	return ok
}

// SendToLogin redirects a browser to the login page, to come back to the
// page it asked for.
func (c *Console) SendToLogin(w http.ResponseWriter, r *http.Request) {
	next := "/"
	if r.Method == http.MethodGet {
		next = r.URL.RequestURI()
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

func (c *Console) token() string { return c.d.Token().Reveal() }

// view is what every page's template gets.
type view struct {
	Title   string
	Nav     string // the current section
	Now     time.Time
	Auth    authView
	Flash   string
	Store   string // why the store cannot write
	Refresh bool   // the page refreshes in place when JavaScript runs
	// Clustered links the cluster page from the navigation.
	Clustered bool
	Data      any

	zone *time.Location
}

// authView is the login state a page shows.
type authView struct {
	TokenSet bool
	SignedIn bool
	Expires  time.Time
	CSRF     string
	Next     string // this page, to come back to after logging in
}

// navItems are the sections in the header.
var navItems = []struct{ Key, Href, Label string }{
	{"overview", "/", "Overview"},
	{"devices", "/devices", "Devices"},
	{"deliveries", "/deliveries", "Deliveries"},
	{"deadletters", "/deadletters", "Dead letters"},
	{"silences", "/silences", "Silences"},
	{"maintenance", "/maintenance", "Maintenance"},
}

// page starts a view for r: the clock, the login state (and the session's
// flash, shown once) and the store's health.
func (c *Console) page(r *http.Request, title, nav string, data any) *view {
	v := &view{Title: title, Nav: nav, Now: c.now(), Data: data, zone: c.loc, Clustered: c.d.Cluster != nil}
	v.Auth.TokenSet = c.token() != ""
	v.Auth.Next = r.URL.RequestURI()
	if s, ok := c.sessions.get(r, c.token()); ok {
		v.Auth.SignedIn, v.Auth.Expires, v.Auth.CSRF = true, s.expires, c.sessions.csrf(s.id)
		v.Flash = c.sessions.takeFlash(s.id)
	}
	if err := c.d.Store(); err != nil {
		v.Store = err.Error()
	}
	return v
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render executes the page's template into a buffer first, so a failure
// is a clean 500, never half a page.
func (c *Console) render(w http.ResponseWriter, status int, name string, v *view) {
	t, ok := pages[name]
	if !ok {
		panic("console: no template " + name)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := t.ExecuteTemplate(buf, "layout", v); err != nil {
		c.log.Error("console page failed to render", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	pageHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageHeaders keep pages out of caches (they carry CSRF tokens) and frames,
// and allow only the console's own script and styles.
func pageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// message is the data of a page that only says something.
type message struct {
	Heading string
	Text    string
	Login   bool // offer the login page
}

// fail answers with a page that says what went wrong.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	c.render(w, status, "message", c.page(r, heading, "", message{Heading: heading, Text: text}))
}

// readContext bounds a page's store reads.
func readContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), readTimeout)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// assetVersion is a hash of the assets, appended to their URLs so browsers
// may cache them for good and still get new ones after an upgrade.
var assetVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(assetFS, "assets", func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := assetFS.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

func serveAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if strings.ContainsAny(name, "/\\") {
		http.NotFound(w, r)
		return
	}
	b, err := assetFS.ReadFile(path.Join("assets", name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") == assetVersion {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(b)
}

// pages are the parsed templates, one set per page on the shared layout.
var pages = func() map[string]*template.Template {
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return out
}()

// errString is err's text, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// isNotFound reports a history miss.
func isNotFound(err error) bool { return errors.Is(err, history.ErrNotFound) }
