package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nocbridge/nocbridge/internal/alert"
	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/devstate"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/outbox"
)

const testToken = "s3cr3t-api-token-value"

type fakeOutbox struct {
	mu       sync.Mutex
	dead     []outbox.DeadLetter
	replayed []string // ids, or "all:<destination>"
}

// DeadLetterPage pages f.dead; its cursor is "d" and the next index
// (the real outbox's cursor is a log sequence, tested in outbox).
func (f *fakeOutbox) DeadLetterPage(_ context.Context, q outbox.DeadLetterQuery) ([]outbox.DeadLetter, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	start := 0
	if q.Cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(q.Cursor, "d"))
		if err != nil || !strings.HasPrefix(q.Cursor, "d") || n <= 0 || n > len(f.dead) {
			return nil, "", fmt.Errorf("%w: %q is not one a page of dead letters gave", outbox.ErrBadCursor, q.Cursor)
		}
		start = n
	}
	var out []outbox.DeadLetter
	for i := start; i < len(f.dead); i++ {
		if q.Destination != "" && f.dead[i].Destination != q.Destination {
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			return out, "d" + strconv.Itoa(i), nil
		}
		out = append(out, f.dead[i])
	}
	return out, "", nil
}

func (f *fakeOutbox) Replay(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.dead {
		if d.ID == id {
			f.replayed = append(f.replayed, id)
			return nil
		}
	}
	return fmt.Errorf("dead letter %s: %w", id, outbox.ErrNotFound)
}

func (f *fakeOutbox) ReplayAll(_ context.Context, destination string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replayed = append(f.replayed, "all:"+destination)
	n := 0
	for _, d := range f.dead {
		if destination == "" || d.Destination == destination {
			n++
		}
	}
	return n, nil
}

func (f *fakeOutbox) Recent(destination string) []outbox.Attempt {
	return []outbox.Attempt{{ID: "msg_1", Destination: destination, InstanceID: "inst-1", Attempt: 2, Result: "delivered"}}
}

func (f *fakeOutbox) Pending() map[string]int { return map[string]int{"noc-webhook": 3} }

func (f *fakeOutbox) Health(destination string) outbox.Health {
	if destination != "noc-webhook" {
		return outbox.Health{State: outbox.StateHealthy}
	}
	since := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	return outbox.Health{State: outbox.StateFailing, FailingSince: &since, Probes: 4, LastError: "HTTP 503: down"}
}

func newTestServer(t *testing.T, token config.Secret, ready bool) (*httptest.Server, *fakeOutbox, *bytes.Buffer) {
	t.Helper()
	d, ob, logs := testDeps(token, ready)
	srv := httptest.NewServer(Handler(d))
	t.Cleanup(srv.Close)
	return srv, ob, logs
}

// testDeps are fakes for every read model, with one dead letter per
// destination.
func testDeps(token config.Secret, ready bool) (Deps, *fakeOutbox, *bytes.Buffer) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nocbridge_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(7)
	ev := event.Sample("NETWORK-DEVICES-1-101", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	ob := &fakeOutbox{dead: []outbox.DeadLetter{
		{ID: "msg_dead1", Destination: "noc-webhook", Reason: "400 Bad Request: bad field", Attempts: 1},
		{ID: "msg_dead2", Destination: "other", Reason: "401", Attempts: 1},
	}}
	var logs bytes.Buffer
	d := Deps{
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Gatherer: reg,
		Ready: func() error {
			if !ready {
				return errors.New("state store cannot write: no space left on device")
			}
			return nil
		},
		Alerts: func() []alert.Instance {
			return []alert.Instance{{EventID: ev.EventID, Device: inventory.Device{Name: "core-sw1"}, State: "firing", Since: ev.Timestamp, Event: &ev}}
		},
		Devices: func() []devstate.Status {
			return []devstate.Status{{Name: "core-sw1", Address: "192.0.2.10", State: "down", LossPct: 100}}
		},
		Destinations: func() []string { return []string{"noc-webhook", "noc-log"} },
		Outbox:       ob,
		Silences:     &fakeSilences{},
		Token:        func() config.Secret { return token },
		Console:      newFakeConsole(),
	}
	return d, ob, &logs
}

func do(t *testing.T, method, url, auth, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(t, req)
}

// send does req and returns its status, body and headers.
func send(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestReadEndpoints(t *testing.T) {
	srv, _, _ := newTestServer(t, testToken, true)
	ev := event.Sample("NETWORK-DEVICES-1-101", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
	tests := []struct {
		path     string
		status   int
		contains []string
		jsonType string
	}{
		{"/healthz", 200, []string{"ok"}, ""},
		{"/readyz", 200, []string{"ready"}, ""},
		{"/metrics", 200, []string{"nocbridge_test_total 7"}, ""},
		{"/api/v1/alerts", 200, []string{`"event_id": "NETWORK-DEVICES-1-101"`, `"name": "core-sw1"`}, "application/json"},
		{"/api/v1/alerts/" + ev.InstanceID, 200, []string{ev.InstanceID}, "application/json"},
		{"/api/v1/alerts/no-such-instance", 404, []string{"not active"}, "application/json"},
		{"/alerts/" + ev.InstanceID, 200, []string{ev.InstanceID}, "application/json"}, // the console's URL, asked without text/html
		{"/alerts/no-such-instance", 404, []string{"not active"}, "application/json"},
		{"/api/v1/devices", 200, []string{`"state": "down"`, `"loss_pct": 100`}, "application/json"},
		{"/api/v1/deliveries", 200, []string{`"noc-webhook"`, `"pending": 3`, `"state": "failing"`, `"failing_since": "2026-11-24T10:00:00Z"`,
			`"state": "healthy"`, `"noc-log"`, `"result": "delivered"`}, "application/json"},
		{"/api/v1/deliveries?destination=noc-log", 200, []string{`"noc-log"`}, "application/json"},
		{"/api/v1/deadletters", 200, []string{`"msg_dead1"`, `400 Bad Request: bad field`}, "application/json"},
		{"/", 200, []string{"console page GET /{$}"}, "text/html; charset=utf-8"},
		{"/nope", 404, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			status, body, hdr := do(t, http.MethodGet, srv.URL+tt.path, "", "")
			if status != tt.status {
				t.Fatalf("GET %s: status %d, want %d; body %s", tt.path, status, tt.status, body)
			}
			for _, want := range tt.contains {
				if !strings.Contains(body, want) {
					t.Errorf("GET %s: body lacks %q:\n%s", tt.path, want, body)
				}
			}
			if tt.jsonType != "" && hdr.Get("Content-Type") != tt.jsonType {
				t.Errorf("GET %s: Content-Type %q, want %q", tt.path, hdr.Get("Content-Type"), tt.jsonType)
			}
		})
	}
	if status, body, _ := do(t, http.MethodGet, srv.URL+"/api/v1/deliveries?destination=noc-log", "", ""); status != 200 || strings.Contains(body, "noc-webhook") {
		t.Errorf("destination filter not applied: %s", body)
	}
}

func TestReadyzNotReady(t *testing.T) {
	srv, _, _ := newTestServer(t, testToken, false)
	status, body, _ := do(t, http.MethodGet, srv.URL+"/readyz", "", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		t.Fatalf("readyz %d %q, want 503 with the reason", status, body)
	}
}

func TestReplay(t *testing.T) {
	tests := []struct {
		name       string
		token      config.Secret
		auth       string
		body       string
		status     int
		contains   string
		wantReplay []string
	}{
		{"disabled without token", "", "Bearer anything", `{"id":"msg_dead1"}`, 403, "http.token", nil},
		{"missing token", testToken, "", `{"id":"msg_dead1"}`, 401, "bearer token", nil},
		{"wrong token", testToken, "Bearer wrong", `{"id":"msg_dead1"}`, 401, "bearer token", nil},
		{"basic auth is not bearer", testToken, "Basic " + testToken, `{"id":"msg_dead1"}`, 401, "bearer token", nil},
		{"one by id", testToken, "Bearer " + testToken, `{"id":"msg_dead1"}`, 200, `"replayed": 1`, []string{"msg_dead1"}},
		{"unknown id", testToken, "Bearer " + testToken, `{"id":"msg_nope"}`, 404, "msg_nope", nil},
		{"all of a destination", testToken, "Bearer " + testToken, `{"destination":"noc-webhook"}`, 200, `"replayed": 1`, []string{"all:noc-webhook"}},
		{"all, empty body", testToken, "Bearer " + testToken, ``, 200, `"replayed": 2`, []string{"all:"}},
		{"unknown field", testToken, "Bearer " + testToken, `{"ids":"x"}`, 400, "unknown field", nil},
		{"not JSON", testToken, "Bearer " + testToken, `id=x`, 400, "invalid JSON", nil},
		{"too large", testToken, "Bearer " + testToken, `{"id":"` + strings.Repeat("a", maxBody) + `"}`, 400, "invalid JSON", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, ob, logs := newTestServer(t, tt.token, true)
			status, body, hdr := do(t, http.MethodPost, srv.URL+"/api/v1/deadletters/replay", tt.auth, tt.body)
			if status != tt.status || !strings.Contains(body, tt.contains) {
				t.Fatalf("status %d body %.200s; want %d containing %q", status, body, tt.status, tt.contains)
			}
			if status == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if strings.Contains(body, testToken) || strings.Contains(logs.String(), testToken) {
				t.Error("the API token leaked into a response or a log")
			}
			ob.mu.Lock()
			defer ob.mu.Unlock()
			if fmt.Sprint(ob.replayed) != fmt.Sprint(tt.wantReplay) {
				t.Errorf("replayed %v, want %v", ob.replayed, tt.wantReplay)
			}
		})
	}
	srv, _, _ := newTestServer(t, testToken, true)
	if status, _, _ := do(t, http.MethodGet, srv.URL+"/api/v1/deadletters/replay", "Bearer "+testToken, ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET on replay: status %d, want 405", status)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	var logs bytes.Buffer
	h := Handler(Deps{
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Gatherer: prometheus.NewRegistry(),
		Ready:    func() error { return nil },
		Alerts:   func() []alert.Instance { panic("boom") },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	status, body, _ := do(t, http.MethodGet, srv.URL+"/api/v1/alerts", "", "")
	if status != 500 || !strings.Contains(body, "internal error") {
		t.Fatalf("status %d body %s", status, body)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	// The server survives the panic.
	if status, _, _ := do(t, http.MethodGet, srv.URL+"/healthz", "", ""); status != 200 {
		t.Fatalf("healthz after panic: %d", status)
	}
}

func TestServerListenServeShutdown(t *testing.T) {
	s, err := Listen(config.HTTP{Listen: "127.0.0.1:0"}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hi")) }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(config.HTTP{Listen: s.Addr()}, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Fatalf("second Listen on %s: err %v, want an error naming the address", s.Addr(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	status, body, _ := do(t, http.MethodGet, "http://"+s.Addr()+"/", "", "")
	if status != 200 || body != "hi" {
		t.Fatalf("status %d body %q", status, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
