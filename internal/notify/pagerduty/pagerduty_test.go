package pagerduty

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

const routingKey = "R0uTiNgKeY0123456789abcdefABCDEF" // 32 characters, like a real one

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("pd"), Event: ev, Attempt: 1}
}

func newNotifier(t *testing.T, yamlSrc string, env notify.Env) *Notifier {
	t.Helper()
	n := notifytest.New[*Notifier](t, New, notifytest.Destination(t, yamlSrc), env)
	n.api.Now = func() time.Time { return notifytest.AttemptTime }
	return n
}

// fakePagerDuty is an Events API v2 endpoint: it checks each request the way
// PagerDuty does and keeps incidents by dedup_key, so tests see what an
// on-call engineer would.
type fakePagerDuty struct {
	*httptest.Server
	t *testing.T

	mu        sync.Mutex
	bodies    [][]byte
	incidents map[string]*incident
	order     []string
	// fail, when set, answers the next requests instead of processing them.
	fail func(w http.ResponseWriter) bool
}

type incident struct {
	open   bool
	alerts int // triggers folded into this incident
}

func newFakePagerDuty(t *testing.T) *fakePagerDuty {
	f := &fakePagerDuty{t: t, incidents: map[string]*incident{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.Close)
	return f
}

func (f *fakePagerDuty) url() string { return f.URL + "/v2/enqueue" }

func (f *fakePagerDuty) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = append(f.bodies, body)
	if f.fail != nil && f.fail(w) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v2/enqueue" {
		f.t.Errorf("request %s %s, want POST /v2/enqueue", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("Content-Type = %q", ct)
	}
	if ua := r.Header.Get("User-Agent"); ua != notifytest.UserAgent {
		f.t.Errorf("User-Agent = %q", ua)
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		f.t.Errorf("Events API v2 takes the key in the body, but Authorization was sent")
	}
	var ev eventRequest
	if err := json.Unmarshal(body, &ev); err != nil {
		writeJSON(w, http.StatusBadRequest, `{"status":"invalid event","message":"Event object is invalid","errors":["Malformed JSON"]}`)
		return
	}
	var problems []string
	if ev.RoutingKey != routingKey {
		problems = append(problems, "Invalid routing key")
	}
	if ev.DedupKey == "" {
		problems = append(problems, "'dedup_key' is missing")
	}
	switch ev.EventAction {
	case "trigger":
		if ev.Payload == nil || ev.Payload.Summary == "" || ev.Payload.Source == "" || ev.Payload.Severity == "" {
			problems = append(problems, "'payload' is missing or incomplete")
		} else if _, err := time.Parse(time.RFC3339, ev.Payload.Timestamp); err != nil {
			problems = append(problems, "'payload.timestamp' is not a valid timestamp")
		}
	case "resolve":
	default:
		problems = append(problems, "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
	}
	if len(problems) > 0 {
		b, _ := json.Marshal(errorResponse{Status: "invalid event", Message: "Event object is invalid", Errors: problems})
		writeJSON(w, http.StatusBadRequest, string(b))
		return
	}
	inc := f.incidents[ev.DedupKey]
	switch ev.EventAction {
	case "trigger":
		if inc == nil || !inc.open {
			inc = &incident{open: true}
			f.incidents[ev.DedupKey] = inc
			f.order = append(f.order, ev.DedupKey)
		}
		inc.alerts++
	case "resolve":
		if inc != nil {
			inc.open = false
		}
	}
	writeJSON(w, http.StatusAccepted, `{"status":"success","message":"Event processed","dedup_key":"`+ev.DedupKey+`"}`)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (f *fakePagerDuty) lastBody(t *testing.T) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		t.Fatal("PagerDuty received no request")
	}
	return f.bodies[len(f.bodies)-1]
}

func TestGolden(t *testing.T) {
	pd := newFakePagerDuty(t)
	n := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nurl: "+pd.url()+"\n", notifytest.Env(t.TempDir(), nil))
	for _, tt := range []struct {
		golden string
		ev     event.Event
	}{
		{"trigger.json", notifytest.DeviceDown()},
		{"resolve.json", notifytest.DeviceUp()},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			if err := n.Send(context.Background(), notification(tt.ev)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			notifytest.GoldenJSON(t, tt.golden, pd.lastBody(t))
		})
	}
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if inc := pd.incidents[notifytest.DeviceDown().InstanceID]; inc == nil || inc.open {
		t.Fatalf("after trigger and resolve the incident should exist and be resolved: %+v", inc)
	}
}

// TestDedupAcrossRestart: the same firing notification sent again by a new
// notifier (nocbridge restarted before it saw the 202) folds into the one
// incident, and the resolve closes it.
func TestDedupAcrossRestart(t *testing.T) {
	pd := newFakePagerDuty(t)
	cfg := "name: pd\ntype: pagerduty\nrouting_key: " + routingKey + "\nurl: " + pd.url() + "\n"
	nt := notification(notifytest.DeviceDown())
	for i := 0; i < 2; i++ {
		n := newNotifier(t, cfg, notifytest.Env(t.TempDir(), nil))
		nt.Attempt = i + 1
		if err := n.Send(context.Background(), nt); err != nil {
			t.Fatalf("Send #%d: %v", i+1, err)
		}
		_ = n.Close()
	}
	pd.mu.Lock()
	if len(pd.incidents) != 1 || pd.incidents[nt.Event.InstanceID].alerts != 2 {
		t.Fatalf("want one incident folding both triggers, got %d incidents", len(pd.incidents))
	}
	var a, b eventRequest
	_ = json.Unmarshal(pd.bodies[0], &a)
	_ = json.Unmarshal(pd.bodies[1], &b)
	pd.mu.Unlock()
	if !reflect.DeepEqual(a, b) {
		t.Errorf("a retry must send the identical event:\n%+v\n%+v", a, b)
	}

	n := newNotifier(t, cfg, notifytest.Env(t.TempDir(), nil))
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.incidents[nt.Event.InstanceID].open {
		t.Fatal("incident still open after resolve")
	}
}

func TestSeverity(t *testing.T) {
	for sev, want := range map[int]string{0: "critical", 1: "critical", 2: "error", 3: "warning", 4: "info", 5: "info"} {
		if got := severity(sev); got != want {
			t.Errorf("severity(%d) = %q, want %q", sev, got, want)
		}
	}
	pd := newFakePagerDuty(t)
	n := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nurl: "+pd.url()+"\n", notifytest.Env(t.TempDir(), nil))
	ev := notifytest.DeviceDown()
	ev.Severity = 3
	ev.Key = "GigabitEthernet1/0/3"
	ev.Device = inventory.Device{Name: "edge-rtr", Address: "edge-rtr"}
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	var got eventRequest
	if err := json.Unmarshal(pd.lastBody(t), &got); err != nil {
		t.Fatal(err)
	}
	p := got.Payload
	if p.Severity != "warning" || p.Component != "GigabitEthernet1/0/3" || p.Source != "edge-rtr" || p.Group != "" {
		t.Errorf("payload = %+v", p)
	}
	if !strings.HasPrefix(p.Summary, "[P3] ") || p.CustomDetails["Instance"] != "GigabitEthernet1/0/3" {
		t.Errorf("summary %q / details %v", p.Summary, p.CustomDetails)
	}
}

func TestSummaryLimitAndNoExternalURL(t *testing.T) {
	pd := newFakePagerDuty(t)
	env := notifytest.Env(t.TempDir(), nil)
	env.ExternalURL = ""
	n := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nurl: "+pd.url()+"\n", env)
	ev := notifytest.DeviceDown()
	ev.Description = strings.Repeat("é", 2000)
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	var got eventRequest
	if err := json.Unmarshal(pd.lastBody(t), &got); err != nil {
		t.Fatal(err)
	}
	if c := len([]rune(got.Payload.Summary)); c != maxSummary || !strings.HasSuffix(got.Payload.Summary, "…") {
		t.Errorf("summary has %d characters, want %d ending in an ellipsis", c, maxSummary)
	}
	if got.Links != nil || got.ClientURL != "" {
		t.Errorf("without external_url there is no link to send: links=%v client_url=%q", got.Links, got.ClientURL)
	}
}

func TestTemplateSummary(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "summary.tmpl", "{{ .Device.Site }}/{{ .Device.Name }}\n  {{ upper .GenericName }} ({{ .Priority }})\n")
	pd := newFakePagerDuty(t)
	n := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nurl: "+pd.url()+"\ntemplate_file: summary.tmpl\n", notifytest.Env(dir, nil))
	if err := n.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	var got eventRequest
	if err := json.Unmarshal(pd.lastBody(t), &got); err != nil {
		t.Fatal(err)
	}
	if want := "HQ/core-sw1 DEVICE UNREACHABLE (P1)"; got.Payload.Summary != want {
		t.Errorf("summary = %q, want %q (one line)", got.Payload.Summary, want)
	}
	// The rest of the event is unchanged by a template.
	if got.Payload.Severity != "critical" || got.DedupKey != notifytest.DeviceDown().InstanceID {
		t.Errorf("payload = %+v", got.Payload)
	}
}

func TestStatusClassification(t *testing.T) {
	httpDate := notifytest.AttemptTime.Add(42 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		retryable  bool
		retryAfter time.Duration
		reason     string
	}{
		{"400 invalid event", 400, nil, `{"status":"invalid event","message":"Event object is invalid","errors":["'payload.summary' is missing or blank","Length of 'routing_key' is incorrect (should be 32 characters)"]}`,
			false, 0, "HTTP 400: Event object is invalid: 'payload.summary' is missing or blank; Length of 'routing_key' is incorrect (should be 32 characters)"},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "30"}, `{"status":"throttle event","message":"Requests for this service are arriving too quickly.  Please retry later."}`,
			true, 30 * time.Second, "HTTP 429: Requests for this service are arriving too quickly."},
		{"429 without Retry-After", 429, nil, "", true, 0, "HTTP 429"},
		{"500", 500, nil, "Internal Server Error", true, 0, "HTTP 500: Internal Server Error"},
		{"503 with Retry-After date", 503, map[string]string{"Retry-After": httpDate}, "", true, 42 * time.Second, "HTTP 503"},
		{"403 from a proxy (HTML)", 403, nil, "<html>Forbidden</html>", false, 0, "HTTP 403: <html>Forbidden</html>"},
		{"404 wrong url", 404, nil, "", false, 0, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pd := newFakePagerDuty(t)
			pd.fail = func(w http.ResponseWriter) bool {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
				return true
			}
			n := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nurl: "+pd.url()+"\n", notifytest.Env(t.TempDir(), nil))
			err := n.Send(context.Background(), notification(notifytest.DeviceDown()))
			ne := notifytest.Classified{Status: tt.status, Retryable: tt.retryable, RetryAfter: tt.retryAfter, Reason: tt.reason}.Check(t, err)
			if !strings.HasPrefix(ne.Reason, "POST "+pd.url()+": ") {
				t.Errorf("reason %q does not start with the endpoint", ne.Reason)
			}
		})
	}
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	u := notifytest.RefusedURL(t)
	n := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nurl: "+u+"/v2/enqueue\n", notifytest.Env(t.TempDir(), nil))
	notifytest.Unreachable(t, n, notification(notifytest.DeviceDown()), notification(notifytest.DeviceDown()))
}

// TestSecretNeverLeaks drives success and failure paths, including a
// service that echoes the request, and checks errors and every log line.
func TestSecretNeverLeaks(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "pd-key", routingKey+"\n")
	var logs notifytest.Logs
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(b) // a misbehaving proxy echoing the body
	}))
	defer echo.Close()
	pd := newFakePagerDuty(t)

	var texts []string
	collect := func(err error) {
		if err != nil {
			texts = append(texts, err.Error(), strings.ReplaceAll(err.Error(), "%", ""))
		}
	}
	ok := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key_file: pd-key\nurl: "+pd.url()+"\n", notifytest.Env(dir, &logs))
	if err := ok.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	bad := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nurl: "+echo.URL+"\n", notifytest.Env(dir, &logs))
	err := bad.Send(context.Background(), notification(notifytest.DeviceDown()))
	if err == nil {
		t.Fatal("echoing 400 should fail")
	}
	collect(err)
	_, err = New(notifytest.Destination(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\nrouting_key_file: pd-key\nurl: ftp://x/\n"), notifytest.Env(dir, &logs))
	collect(err)
	if !strings.Contains(logs.String(), "pagerduty event accepted") {
		t.Errorf("expected a debug line for the accepted event")
	}
	notifytest.NoSecretsIn(t, []string{routingKey}, append(texts, logs.String()))
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "key", routingKey+"\n")
	notifytest.WriteFile(t, dir, "empty", "\n")
	notifytest.WriteFile(t, dir, "broken.tmpl", "[{{ .Priority }]\n")
	notifytest.WriteFile(t, dir, "missing.tmpl", "{{ .NoSuchField }}")
	notifytest.ConfigCases(t, New, "name: pd\ntype: pagerduty\n", dir, []notifytest.ConfigCase{
		{Name: "missing routing key", YAML: "url: http://127.0.0.1/x\n", Want: []string{`c.yaml:1: destination "pd": routing_key (or routing_key_file) is required`}},
		{Name: "unknown key", YAML: "routing_key: k\nrouting-key: k\n", Want: []string{`c.yaml:4: destination "pd": unknown key "routing-key" (known: routing_key, routing_key_file, template_file, url)`}},
		{Name: "inline and file", YAML: "routing_key: k\nrouting_key_file: key\n", Want: []string{`c.yaml:4: destination "pd": routing_key: set either the value or the _file key, not both`}},
		{Name: "file missing", YAML: "routing_key_file: nope\n", Want: []string{`c.yaml:3: destination "pd": routing_key: reading secret file`}},
		{Name: "file empty", YAML: "routing_key_file: empty\n", Want: []string{`c.yaml:3: destination "pd": routing_key: secret file ` + filepath.Join(dir, "empty") + ` is empty`}},
		{Name: "bad url scheme", YAML: "routing_key: k\nurl: ftp://events.example/x\n", Want: []string{`c.yaml:4: destination "pd": url ftp://events.example/x: scheme must be http or https`}},
		{Name: "url with credentials", YAML: "routing_key: k\nurl: https://u:p@events.example/x\n", Want: []string{`c.yaml:4: destination "pd": url https://events.example/x: must not hold credentials`}},
		{Name: "broken template", YAML: "routing_key: k\ntemplate_file: broken.tmpl\n", Want: []string{`c.yaml:4: destination "pd": template_file: template: broken.tmpl:1: unexpected "}" in operand`}},
		{Name: "template with unknown field", YAML: "routing_key: k\ntemplate_file: missing.tmpl\n", Want: []string{`c.yaml:4: destination "pd": template_file: ` + filepath.Join(dir, "missing.tmpl") + `: template: missing.tmpl:1:`}},
		{Name: "template file missing", YAML: "routing_key: k\ntemplate_file: none.tmpl\n", Want: []string{`c.yaml:4: destination "pd": template_file: open ` + filepath.Join(dir, "none.tmpl")}},
		{Name: "several at once", YAML: "url: gopher://x/\ntemplate_file: broken.tmpl\n", Want: []string{
			`c.yaml:1: destination "pd": routing_key`,
			`c.yaml:3: destination "pd": url gopher://x/`,
			`c.yaml:4: destination "pd": template_file`}},
	})
}

func TestDefaultURL(t *testing.T) {
	n := newNotifier(t, "name: pd\ntype: pagerduty\nrouting_key: "+routingKey+"\n", notifytest.Env(t.TempDir(), nil))
	if n.s.url.String() != DefaultURL || n.target != "POST "+DefaultURL {
		t.Fatalf("url = %s, want %s", n.s.url, DefaultURL)
	}
}
