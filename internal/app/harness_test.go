package app

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/observation"
	"github.com/nocbridge/nocbridge/internal/probe/icmp"
	"github.com/nocbridge/nocbridge/internal/webhooksig"
)

// The Standard Webhooks test secret; deliveries in these tests are signed
// with it and the receiver verifies every one.
const testSigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// skipOrFail skips, or fails under NOCBRIDGE_REQUIRE_INTEROP=1 (CI), where
// every interop test must run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("NOCBRIDGE_REQUIRE_INTEROP") == "1" {
		t.Fatalf("NOCBRIDGE_REQUIRE_INTEROP=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

// requireICMP skips unless this process may open an ICMP socket.
func requireICMP(t *testing.T) {
	t.Helper()
	e, err := icmp.New(icmp.Options{Privileged: icmp.Mode("auto"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		skipOrFail(t, "needs ICMP sockets (root, CAP_NET_RAW or net.ipv4.ping_group_range): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = e.Run(ctx, func(observation.Observation) {}) // closes the sockets
}

// delivery is one request the receiver saw.
type delivery struct {
	WebhookID   string
	InstanceID  string
	EventID     string
	Description string
	Link        string // ciscoDnaEventLink
	Status      string // active | resolved
	Answered    int
	SigErr      error
	At          time.Time
}

// receiver is a webhook endpoint answering from a script.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	answer func(n int) (int, string) // n counts requests from 1
	got    []delivery
	notify chan struct{}
}

func newReceiver(t *testing.T, answer func(n int) (int, string)) *receiver {
	r := &receiver{t: t, answer: answer, notify: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setAnswer(f func(n int) (int, string)) {
	r.mu.Lock()
	r.answer = f
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{WebhookID: req.Header.Get("webhook-id"), At: time.Now()}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.t.Errorf("receiver: %s with Content-Type %q, want POST application/json", req.Method, req.Header.Get("Content-Type"))
	}
	d.SigErr = webhooksig.Verify(testSigningSecret, req.Header, body, time.Now(), 5*time.Minute)
	var p struct {
		InstanceID  string            `json:"instanceId"`
		EventID     string            `json:"eventId"`
		Description string            `json:"description"`
		Link        string            `json:"ciscoDnaEventLink"`
		Details     map[string]string `json:"details"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("receiver: body is not the DNA Center payload: %v", err)
	}
	d.InstanceID, d.EventID, d.Status = p.InstanceID, p.EventID, p.Details["Assurance Issue Status"]
	d.Description, d.Link = p.Description, p.Link

	r.mu.Lock()
	status, text := r.answer(len(r.got) + 1)
	d.Answered = status
	r.got = append(r.got, d)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// waitFor waits until pred holds over the deliveries, or fails after d.
func (r *receiver) waitFor(d time.Duration, what string, pred func([]delivery) bool) []delivery {
	r.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if got := r.deliveries(); pred(got) {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline.C:
			r.t.Fatalf("after %v still waiting for %s; deliveries: %+v", d, what, r.deliveries())
		}
	}
}

func always(status int) func(int) (int, string) {
	return func(int) (int, string) { return status, "" }
}

// testConfig is the knobs a test sets; writeConfig renders the YAML.
type testConfig struct {
	Listen      string // http.listen
	Token       string
	Device      string // address
	Interval    string
	Timeout     string
	ReceiverURL string
	RetryMax    string
	RuleWhen    string // the test rule's condition
	RuleClear   string
	RuleFor     string
	ClearFor    string
}

// writeConfig writes nocbridge.yaml and one rule file into dir.
func writeConfig(t *testing.T, dir string, c testConfig) string {
	t.Helper()
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.Listen, "127.0.0.1:0")
	def(&c.Interval, "1s")
	def(&c.Timeout, "500ms")
	def(&c.RetryMax, "200ms")
	def(&c.RuleFor, "0s")
	def(&c.ClearFor, "0s")
	token := ""
	if c.Token != "" {
		token = "\n  token: " + c.Token
	}
	cfg := fmt.Sprintf(`state_dir: ./state
http:
  listen: %s%s
rules: [rules/*.yaml]
icmp:
  interval: %s
  timeout: %s
devices:
  - name: dut
    address: %s
    site: Lab
    role: access
destinations:
  - name: hook
    type: webhook
    url: %s/hook
    secret: %s
    timeout: 2s
    retry: {initial: 50ms, max: %s, max_age: 1h}
subscriptions:
  - name: all
    destinations: [hook]
`, c.Listen, token, c.Interval, c.Timeout, c.Device, c.ReceiverURL, testSigningSecret, c.RetryMax)
	rule := fmt.Sprintf(`rules:
  - event_id: NETWORK-DEVICES-1-101
    name: Device unreachable
    source: icmp
    when: %s
    for: %s
    clear_when: %s
    clear_for: %s
    severity: 1
    category: ALERT
    domain: Connectivity
    sub_domain: Devices
    description: "{{ .Device.Name }} ({{ .Device.Address }}) test rule"
`, c.RuleWhen, c.RuleFor, c.RuleClear, c.ClearFor)
	writeRuleFile(t, dir, rule)
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeRuleFile writes rule as rules/test.yaml in dir.
func writeRuleFile(t *testing.T, dir, rule string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "test.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nodeConfig is one daemon's config in the tests that run several (cluster
// nodes, a hub and its edge); writeNodeConfig renders it.
type nodeConfig struct {
	Listen  string      // http.listen
	Token   string      // http.token; none when empty
	Rules   string      // the rules glob
	Rule    string      // written as rules/test.yaml beside the config when set
	Extra   string      // YAML sections of the daemon's role (icmp, traps, cluster, hub, edge…), each line ending in \n
	Devices []string    // one flow mapping a device
	Hook    *hookConfig // the webhook destination "hook" every alert goes to; none when nil
}

// hookConfig is a webhook destination to a test receiver, signed with
// testSigningSecret and retried from 50 ms up to 200 ms apart.
type hookConfig struct {
	URL     string // the receiver's base URL; it is sent to URL/hook
	Timeout string // the destination's timeout; the default when empty
	MaxAge  string // retry.max_age; the default when empty
}

// writeNodeConfig writes c as nocbridge.yaml (and its rule file, if any)
// into dir and returns the config's path.
func writeNodeConfig(t *testing.T, dir string, c nodeConfig) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir: ./state\nhttp: {listen: %q", c.Listen)
	if c.Token != "" {
		fmt.Fprintf(&b, ", token: %q", c.Token)
	}
	fmt.Fprintf(&b, "}\nrules: [%q]\n%s", c.Rules, c.Extra)
	if len(c.Devices) > 0 {
		b.WriteString("devices:\n")
		for _, d := range c.Devices {
			fmt.Fprintf(&b, "  - %s\n", d)
		}
	}
	if h := c.Hook; h != nil {
		fmt.Fprintf(&b, "destinations:\n  - name: hook\n    type: webhook\n    url: %s/hook\n    secret: %s\n", h.URL, testSigningSecret)
		if h.Timeout != "" {
			fmt.Fprintf(&b, "    timeout: %s\n", h.Timeout)
		}
		maxAge := ""
		if h.MaxAge != "" {
			maxAge = ", max_age: " + h.MaxAge
		}
		fmt.Fprintf(&b, "    retry: {initial: 50ms, max: 200ms%s}\nsubscriptions:\n  - {name: all, destinations: [hook]}\n", maxAge)
	}
	if c.Rule != "" {
		writeRuleFile(t, dir, c.Rule)
	}
	path := filepath.Join(dir, "nocbridge.yaml")
	writeFile(t, path, b.String())
	return path
}

// clusterConfig is a cluster of nodes nb1, nb2… for writeClusterConfigs.
type clusterConfig struct {
	Name     string                 // cluster.name
	Routes   []string               // node i's cluster.listen (host:port), one a node
	HTTP     []string               // node i's http.listen
	DownWhen string                 // cluster.down_when; the default when empty
	Node     func(i int) nodeConfig // the rest of node i's config
}

// writeClusterConfigs writes each node's config, peering it with the
// others' routes, each in a directory of its own; it returns their paths.
func writeClusterConfigs(t *testing.T, c clusterConfig) []string {
	t.Helper()
	var paths []string
	for i := range c.Routes {
		var peers []string
		for j, r := range c.Routes {
			if j != i {
				peers = append(peers, fmt.Sprintf("%q", "nats://"+r))
			}
		}
		n := c.Node(i)
		n.Listen = c.HTTP[i]
		n.Extra += fmt.Sprintf("cluster:\n  name: %s\n  node: nb%d\n  listen: %q\n  peers: [%s]\n", c.Name, i+1, c.Routes[i], strings.Join(peers, ", "))
		if c.DownWhen != "" {
			n.Extra += "  down_when: " + c.DownWhen + "\n"
		}
		paths = append(paths, writeNodeConfig(t, t.TempDir(), n))
	}
	return paths
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback address that was free a moment ago, for
// tests that need to know http.listen before the daemon starts.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testLogger writes through t.Log, so logs show up next to a failure.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startApp runs the app until the test ends or stop is called, logging
// through t.Log.
func startApp(t *testing.T, path string) (a *App, stop func()) {
	t.Helper()
	return startAppWithLogger(t, path, testLogger(t))
}

// startAppWithLogger is startApp with the caller's logger (to inspect logs).
func startAppWithLogger(t *testing.T, path string, logger *slog.Logger) (a *App, stop func()) {
	t.Helper()
	r := goRun(t, "", path, logger)
	waitReady(t, 20*time.Second, r)
	return r.App, r.stop
}

// runningApp is an App whose Run goes on in the background.
type runningApp struct {
	*App
	name   string        // in failures: "nb1", "" for a lone app
	exited chan struct{} // closed when Run has returned err
	err    error
	stop   func() // cancels Run and waits for it; also run when the test ends
}

// goRun creates the app on path and starts its Run. Its stop fails the
// test if Run returns an error or does not return within 30 s of cancel.
func goRun(t *testing.T, name, path string, logger *slog.Logger) *runningApp {
	t.Helper()
	prefix := ""
	if name != "" {
		prefix = name + ": "
	}
	a, err := New(Options{ConfigPath: path, Version: "test", Logger: logger})
	if err != nil {
		t.Fatalf("%sNew: %v", prefix, err)
	}
	r := &runningApp{App: a, name: name, exited: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		r.err = a.Run(ctx)
		close(r.exited)
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-r.exited:
				if r.err != nil {
					t.Errorf("%sRun returned %v", prefix, r.err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%sRun did not stop within 30s of cancel", prefix)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// waitReady waits until every app is ready, failing the test when one's
// Run ends first or within passes.
func waitReady(t *testing.T, within time.Duration, apps ...*runningApp) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(within)
	for _, r := range apps {
		name := cmp.Or(r.name, "app")
		for !r.Ready() {
			select {
			case <-r.exited:
				t.Fatalf("%s: Run ended before ready: %v", name, r.err)
			case <-deadline:
				t.Fatalf("%s not ready after %v", name, within)
			case <-tick.C:
			}
		}
	}
}

// nodeLogger is testLogger at info, each line naming the cluster node.
func nodeLogger(t *testing.T, node string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", node)
}

// getJSON GETs url and decodes its 200 answer into out, or fails the test.
func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	getJSONWithToken(t, url, "", out)
}

// getJSONWithToken is getJSON sending the bearer token, for a node that
// listens beyond loopback.
func getJSONWithToken(t *testing.T, url, token string, out any) {
	t.Helper()
	if err := fetchJSON(http.DefaultClient, url, token, out); err != nil {
		t.Fatal(err)
	}
}

// fetchJSON GETs url with c, sending the bearer token if any, and decodes
// its answer into out; an answer other than 200 is an error.
func fetchJSON(c *http.Client, url, token string, out any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// waitUntil polls cond every 100 ms until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	waitState(t, d, what, func() (bool, string) { return cond(), "" })
}

// waitState is waitUntil for a cond that also says what it saw, which a
// failure shows.
func waitState(t *testing.T, d time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if seen != "" {
				t.Fatalf("after %v still waiting for %s; last seen: %s", d, what, seen)
			}
			t.Fatalf("after %v still waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
