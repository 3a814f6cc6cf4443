package app

import (
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
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules", "test.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "nocbridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
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
	a, err := New(Options{ConfigPath: path, Version: "test", Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not stop within 30s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !a.Ready() {
		select {
		case err := <-done:
			t.Fatalf("Run ended before ready: %v", err)
		case <-deadline:
			t.Fatal("app not ready after 20s")
		case <-tick.C:
		}
	}
	return a, stop
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
