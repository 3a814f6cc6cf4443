package console

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/console/consoletest"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/history"
	"github.com/nocbridge/nocbridge/internal/httpapi"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/mute"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/webhook"
	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/outbox"
	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/testutil/logtest"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

// testToken is the API token of the test console; tests check that it
// never shows in a page, a log line or an error.
const testToken = "s3cret-console-token-0123456789"

// destination is the one configured destination: a real webhook to a
// loopback receiver.
const destination = "noc-webhook"

// env is the console mounted by the real httpapi handler over real
// pieces where they exist on this branch — the outbox and the silences on
// the embedded store, delivering to a loopback webhook receiver — and
// in-memory history and series (consoletest) where they do not.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	con     *Console
	ob      *outbox.Outbox
	mutes   *mute.Set
	fleet   *consoletest.Fleet
	noise   *consoletest.Noise
	rcv     *receiver
	logs    *logtest.Logs
	rcvURL  string  // the receiver's webhook URL
	history History // what the console reads: fleet.History unless replaced
	vantage *vantage.Set
	outvote []string // with cluster: the devices nb3 alone sees down

	mu     sync.Mutex
	alerts []alert.Instance
}

type envOptions struct {
	token   string // "" configures none
	devices int    // fleet size (default 300: three sites, three pages of devices)
	prober  Prober
	public  bool
	history func(*consoletest.History) History // wraps the history
	lookup  bool                               // set Deps.Device (else devices are found in Deps.Devices)
	cluster bool                               // a three-node cluster with vantage points (consoletest.ThreeNodes, e.vantage)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.devices == 0 {
		o.devices = 300
	}
	now := time.Now()
	e := &env{t: t, fleet: consoletest.NewFleet(o.devices, now), rcv: &receiver{}, logs: &logtest.Logs{}}
	e.rcv.status.Store(http.StatusNoContent)
	e.alerts = e.fleet.Alerts
	e.history = e.fleet.History
	if o.history != nil {
		e.history = o.history(e.fleet.History)
	}
	log := e.logs.TextLogger()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if e.ob, err = outbox.New(ctx, st, outbox.Options{Logger: log}); err != nil {
		t.Fatalf("outbox.New: %v", err)
	}
	rcvSrv := httptest.NewServer(e.rcv)
	t.Cleanup(rcvSrv.Close)
	e.rcvURL = rcvSrv.URL + "/hook"
	e.ob.SetDestinations([]outbox.Destination{{Name: destination, Notifier: newWebhook(t, e.rcvURL),
		Retry: outbox.RetryPolicy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, MaxAge: time.Minute, ProbeInterval: 50 * time.Millisecond}}})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.ob.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	bucket, err := st.Bucket(ctx, "silences")
	if err != nil {
		t.Fatal(err)
	}
	windows, err := mute.Compile([]config.Maintenance{
		{Name: "sunday-patching", Match: config.Match{Selector: config.Selector{Sites: []string{"site-001"}, Roles: []string{"access"}}},
			Every: "sun 02:00", Duration: config.Duration(2 * time.Hour), Timezone: "Europe/Berlin"},
		{Name: "core-upgrade", Match: config.Match{Selector: config.Selector{Devices: []string{"site-002-core"}}},
			Start: now.Add(-time.Hour).Format(time.RFC3339), End: now.Add(3 * time.Hour).Format(time.RFC3339), Timezone: "UTC"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.mutes, err = mute.New(ctx, bucket, windows, mute.Options{Logger: log}); err != nil {
		t.Fatal(err)
	}
	e.noise = consoletest.NewNoise(e.fleet, now)

	d := Deps{Logger: log, ExternalURL: func() string { return "https://nocbridge.example.net" },
		Alerts: e.liveAlerts, Devices: func() []devstate.Status { return e.fleet.Devices },
		Destinations: func() []string { return []string{destination} }, Series: e.fleet.Series, History: e.history,
		Noise: e.noise, Outbox: e.ob, Mutes: e.mutes, Prober: o.prober,
		Token: func() config.Secret { return config.Secret(o.token) }, Store: func() error { return nil }}
	if o.lookup {
		d.Device = func(name string) (devstate.Status, bool) {
			i := slices.IndexFunc(e.fleet.Devices, func(s devstate.Status) bool { return s.Name == name })
			if i < 0 {
				return devstate.Status{}, false
			}
			return e.fleet.Devices[i], true
		}
	}
	api := httpapi.Deps{Logger: log, Gatherer: prometheus.NewRegistry(),
		Ready: func() error { return nil }, Alerts: e.liveAlerts, Devices: d.Devices, Destinations: d.Destinations,
		Outbox: e.ob, Noise: e.noise, Silences: e.mutes, Token: d.Token, Public: o.public}
	if o.cluster {
		e.feedVantage(now)
		d.Cluster = func(context.Context) store.ClusterInfo { return consoletest.ThreeNodes() }
		d.ClusterVantage, d.Vantage = e.vantage.Status, e.vantage.Results
		api.Cluster, api.ClusterVantage, api.Vantage = d.Cluster, d.ClusterVantage, d.Vantage
	}
	if e.con, err = New(d); err != nil {
		t.Fatal(err)
	}
	api.Console = e.con
	e.srv = httptest.NewServer(httpapi.Handler(api))
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() {
		if strings.Contains(e.logs.String(), testToken) {
			t.Error("the API token is in the log")
		}
	})
	return e
}

// feedVantage has three nodes report a round of every pinged device of the
// fleet to a real vantage.Set (down_when: majority): they agree on all but
// three devices, which nb3 alone sees down (its uplink failing).
func (e *env) feedVantage(now time.Time) {
	var err error
	if e.vantage, err = vantage.New(vantage.Options{DownWhen: config.DownWhenMajority}); err != nil {
		e.t.Fatal(err)
	}
	for _, d := range e.fleet.Devices {
		if d.State == "unknown" {
			continue
		}
		dev := &inventory.Device{Name: d.Name, Address: d.Address, ICMP: &inventory.ICMP{Interval: 10 * time.Second, Timeout: time.Second, Count: 3}}
		up := d.State == "up"
		nb3 := up
		if up && len(e.outvote) < 3 {
			nb3 = false
			e.outvote = append(e.outvote, d.Name)
		}
		for i, node := range []string{"nb1", "nb2", "nb3"} {
			o := observation.Observation{Source: observation.ICMP, Device: dev, Time: now.Add(-time.Duration(i) * time.Second)}
			if (node != "nb3" && up) || (node == "nb3" && nb3) {
				o.Vars = map[string]any{"up": true, "loss": 0.0, "rtt_ms": d.RTTMs + float64(i), "rtt_min_ms": d.RTTMs, "rtt_max_ms": d.RTTMs + 1, "sent": 3, "recv": 3}
			} else {
				o.Vars = map[string]any{"up": false, "loss": 100.0, "rtt_ms": 0.0, "rtt_min_ms": 0.0, "rtt_max_ms": 0.0, "sent": 3, "recv": 0}
				o.Err = errors.New("no echo reply in 3 of 3")
			}
			e.vantage.Observe(node, o)
		}
	}
}

func (e *env) liveAlerts() []alert.Instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.alerts)
}

// resolve ends a live alert: it leaves the live list and its history
// records the resolve, as the alert manager and history would.
func (e *env) resolve(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := slices.IndexFunc(e.alerts, func(in alert.Instance) bool { return in.Event.InstanceID == id })
	if i < 0 {
		e.t.Fatalf("no live alert %s", id)
	}
	ev := *e.alerts[i].Event
	e.alerts = slices.Delete(e.alerts, i, i+1)
	e.fleet.History.Put(consoletest.Resolved(ev, destination, time.Now()))
}

// firstDown is the first device that is down, and its live alert.
func (e *env) firstDown() (devstate.Status, alert.Instance) {
	e.t.Helper()
	for _, in := range e.liveAlerts() {
		for _, d := range e.fleet.Devices {
			if d.Name == in.Device.Name {
				return d, in
			}
		}
	}
	e.t.Fatal("the fleet has no down device")
	return devstate.Status{}, alert.Instance{}
}

// deadLetter enqueues one notification the receiver refuses with a 400,
// waits for its dead letter and returns it; the receiver answers 204 again
// afterwards.
func (e *env) deadLetter() outbox.DeadLetter {
	e.t.Helper()
	_, in := e.firstDown()
	e.rcv.status.Store(http.StatusBadRequest)
	defer e.rcv.status.Store(http.StatusNoContent)
	ev := *in.Event
	ev.Timestamp = time.Now() // a new notification, a new webhook-id
	if err := e.ob.Enqueue(context.Background(), outbox.Item{Destination: destination, Event: ev}); err != nil {
		e.t.Fatal(err)
	}
	id := ev.NotificationID(destination)
	var dl outbox.DeadLetter
	eventually(e.t, "the dead letter of "+id, func() bool {
		dls, err := e.ob.DeadLetters(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		i := slices.IndexFunc(dls, func(d outbox.DeadLetter) bool { return d.ID == id })
		if i >= 0 {
			dl = dls[i]
		}
		return i >= 0
	})
	return dl
}

// eventually waits up to 10 s for cond, which watches real sockets and the
// real store (no fake clock reaches them).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receiver is the loopback webhook receiver: it answers status and notes
// the webhook-ids it was sent.
type receiver struct {
	status atomic.Int64
	mu     sync.Mutex
	ids    []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	r.mu.Lock()
	r.ids = append(r.ids, req.Header.Get("webhook-id"))
	r.mu.Unlock()
	w.WriteHeader(int(r.status.Load()))
}

// got counts the requests that carried the webhook-id.
func (r *receiver) got(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.ids {
		if x == id {
			n++
		}
	}
	return n
}

// newWebhook builds the real webhook notifier as the config loader would.
func newWebhook(t *testing.T, url string) notify.Notifier {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("name: "+destination+"\ntype: webhook\nurl: "+url+"\n"), &doc); err != nil {
		t.Fatal(err)
	}
	n, err := webhook.New(config.Destination{Name: destination, Type: "webhook", Node: doc.Content[0], Line: 1},
		notify.Env{ExternalURL: "https://nocbridge.example.net", UserAgent: "nocbridge/test"})
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	return n
}

// failingHistory is a history whose store cannot be read.
type failingHistory struct{}

func (failingHistory) Get(context.Context, string) (history.Alert, error) {
	return history.Alert{}, errors.New("reading history: nats: timeout")
}
func (failingHistory) List(context.Context, history.Query) (history.Page, error) {
	return history.Page{}, errors.New("reading history: nats: timeout")
}

// client is a browser-like client of the env: a cookie jar, no redirects
// followed, HTML preferred.
type client struct {
	e   *env
	hc  *http.Client
	jar http.CookieJar
}

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, jar: jar, hc: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// resp is an answer, read whole.
type resp struct {
	status int
	body   string
	h      http.Header
}

func (c *client) do(method, path, accept string, form url.Values) resp {
	c.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if strings.Contains(string(b), testToken) {
		c.e.t.Errorf("%s %s: the API token is in the answer", method, path)
	}
	return resp{status: res.StatusCode, body: string(b), h: res.Header}
}

func (c *client) page(path string) resp { return c.do("GET", path, browserAccept, nil) }

func (c *client) post(path string, form url.Values) resp {
	return c.do("POST", path, browserAccept, form)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrf is the CSRF token of the first form on the page at path.
func (c *client) csrf(path string) string {
	c.e.t.Helper()
	m := csrfField.FindStringSubmatch(c.page(path).body)
	if m == nil || m[1] == "" {
		c.e.t.Fatalf("no CSRF token in a form on %s", path)
	}
	return m[1]
}

// login logs in with token and returns the answer to the form.
func (c *client) login(token string) resp {
	c.e.t.Helper()
	return c.post("/login", url.Values{"csrf": {c.csrf("/login")}, "token": {token}, "next": {"/"}})
}

// mustLogin logs in with the right token.
func (c *client) mustLogin() {
	c.e.t.Helper()
	if r := c.login(testToken); r.status != http.StatusSeeOther {
		c.e.t.Fatalf("login: %d %s", r.status, r.body)
	}
}

// sampleEvent is a one-shot event of the fleet's first device.
func sampleEvent(e *env) event.Event {
	ev := event.Sample("NETWORK-DEVICES-3-102", time.Now().Add(-2*time.Hour))
	ev.InstanceID, ev.Name, ev.Kind = "oneshot-0001", "Device restarted", event.KindEvent
	d := e.fleet.Devices[0]
	ev.Device.Name, ev.Device.Address, ev.Device.Site, ev.Device.Role = d.Name, d.Address, d.Site, d.Role
	return ev
}
