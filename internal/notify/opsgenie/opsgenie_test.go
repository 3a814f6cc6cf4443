package opsgenie

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

const apiKey = "3f9d1c0e-5b7a-4e21-9c3d-7a8b6c5d4e3f"

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("og"), Event: ev, Attempt: 1}
}

func ogConfig(apiURL, extra string) string {
	return "name: og\ntype: opsgenie\napi_key: " + apiKey + "\napi_url: " + apiURL + "\n" + extra
}

func newNotifier(t *testing.T, yamlSrc string, env notify.Env) *Notifier {
	t.Helper()
	n := notifytest.New[*Notifier](t, New, notifytest.Destination(t, yamlSrc), env)
	n.api.Now = func() time.Time { return notifytest.AttemptTime }
	return n
}

// fakeOpsgenie is the Alert API: GenieKey auth, validation with 422 and the
// service's error JSON, de-duplication of open alerts by alias, close by
// alias (404 when nothing is open under it).
type fakeOpsgenie struct {
	*httptest.Server
	t *testing.T

	mu       sync.Mutex
	alerts   []*fakeAlert
	requests []seen
	fail     func(w http.ResponseWriter, r *http.Request) bool
}

type fakeAlert struct {
	alias  string
	open   bool
	count  int
	create createRequest
	note   string
}

type seen struct {
	method, path, query string
	body                []byte
}

func newFakeOpsgenie(t *testing.T) *fakeOpsgenie {
	f := &fakeOpsgenie{t: t}
	f.Server = httptest.NewServer(http.HandlerFunc(f.handle))
	t.Cleanup(f.Close)
	return f
}

func ogAnswer(w http.ResponseWriter, code int, v map[string]any) {
	v["took"] = 0.012
	v["requestId"] = "7b4e2c4a-1f6e-4a3f-9d55-0c2d3e4f5a6b"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeOpsgenie) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, seen{r.Method, r.URL.Path, r.URL.RawQuery, body})
	if f.fail != nil && f.fail(w, r) {
		return
	}
	if r.Header.Get("Authorization") != "GenieKey "+apiKey {
		ogAnswer(w, http.StatusUnauthorized, map[string]any{"message": "Could not authenticate"})
		return
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != notifytest.UserAgent {
		f.t.Errorf("Content-Type %q, User-Agent %q", r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
	}
	if r.Method != http.MethodPost {
		ogAnswer(w, http.StatusMethodNotAllowed, map[string]any{"message": "Method not allowed"})
		return
	}
	if r.URL.Path == "/v2/alerts" {
		var req createRequest
		if err := json.Unmarshal(body, &req); err != nil {
			ogAnswer(w, http.StatusBadRequest, map[string]any{"message": "Could not parse request body"})
			return
		}
		errs := map[string]string{}
		switch {
		case req.Message == "":
			errs["message"] = "Message can not be empty."
		case len([]rune(req.Message)) > 130:
			errs["message"] = "Message can not be longer than 130 characters."
		}
		if !strings.HasPrefix(req.Priority, "P") || len(req.Priority) != 2 || req.Priority[1] < '1' || req.Priority[1] > '5' {
			errs["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]"
		}
		for _, tag := range req.Tags {
			if len([]rune(tag)) > 50 {
				errs["tags"] = "Tags can not be longer than 50 characters."
			}
		}
		if len(errs) > 0 {
			ogAnswer(w, http.StatusUnprocessableEntity, map[string]any{"message": "Request body is not processable. Please check the errors.", "errors": errs})
			return
		}
		if a := f.open(req.Alias); a != nil && req.Alias != "" {
			a.count++ // Opsgenie's de-duplication
		} else {
			f.alerts = append(f.alerts, &fakeAlert{alias: req.Alias, open: true, count: 1, create: req})
		}
		ogAnswer(w, http.StatusAccepted, map[string]any{"result": "Request will be processed"})
		return
	}
	if alias, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v2/alerts/"), "/close"); ok && strings.HasPrefix(r.URL.Path, "/v2/alerts/") {
		if r.URL.Query().Get("identifierType") != "alias" {
			f.t.Errorf("close without identifierType=alias: %q", r.URL.RawQuery)
		}
		var req closeRequest
		_ = json.Unmarshal(body, &req)
		a := f.open(alias)
		if a == nil {
			ogAnswer(w, http.StatusNotFound, map[string]any{"message": "Alert with alias [" + alias + "] does not exist"})
			return
		}
		a.open, a.note = false, req.Note
		ogAnswer(w, http.StatusAccepted, map[string]any{"result": "Request will be processed"})
		return
	}
	ogAnswer(w, http.StatusNotFound, map[string]any{"message": "No handler for " + r.URL.Path})
}

func (f *fakeOpsgenie) open(alias string) *fakeAlert {
	for _, a := range f.alerts {
		if a.alias == alias && a.open {
			return a
		}
	}
	return nil
}

func (f *fakeOpsgenie) snapshot() ([]seen, []fakeAlert) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var alerts []fakeAlert
	for _, a := range f.alerts {
		alerts = append(alerts, *a)
	}
	return append([]seen(nil), f.requests...), alerts
}

func TestFiringThenResolved(t *testing.T) {
	og := newFakeOpsgenie(t)
	n := newNotifier(t, ogConfig(og.URL+"/", ""), notifytest.Env(t.TempDir(), nil))
	if err := n.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatalf("firing: %v", err)
	}
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	reqs, alerts := og.snapshot()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want create and close", len(reqs))
	}
	if r := reqs[0]; r.method != http.MethodPost || r.path != "/v2/alerts" || r.query != "" {
		t.Errorf("create sent as %s %s?%s", r.method, r.path, r.query)
	}
	notifytest.GoldenJSON(t, "create.json", reqs[0].body)
	if r := reqs[1]; r.path != "/v2/alerts/5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f/close" || r.query != "identifierType=alias" {
		t.Errorf("close sent as %s %s?%s", r.method, r.path, r.query)
	}
	notifytest.GoldenJSON(t, "close.json", reqs[1].body)
	if len(alerts) != 1 || alerts[0].open {
		t.Fatalf("want one closed alert, got %+v", alerts)
	}
}

// TestDedupAcrossRestart: the same firing notification from a restarted
// nocbridge carries the same alias, so Opsgenie folds it into the open alert.
func TestDedupAcrossRestart(t *testing.T) {
	og := newFakeOpsgenie(t)
	nt := notification(notifytest.DeviceDown())
	for attempt := 1; attempt <= 2; attempt++ {
		nt.Attempt = attempt
		if err := newNotifier(t, ogConfig(og.URL, ""), notifytest.Env(t.TempDir(), nil)).Send(context.Background(), nt); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	reqs, alerts := og.snapshot()
	if len(alerts) != 1 || alerts[0].count != 2 {
		t.Fatalf("want one alert seen twice, got %+v", alerts)
	}
	if !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Errorf("a retry must send the identical alert:\n%s\n%s", reqs[0].body, reqs[1].body)
	}
}

func TestCloseUnknownIsSuccess(t *testing.T) {
	og := newFakeOpsgenie(t)
	var logs notifytest.Logs
	n := newNotifier(t, ogConfig(og.URL, ""), notifytest.Env(t.TempDir(), &logs))
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatalf("closing an alert that is not open: %v", err)
	}
	if !strings.Contains(logs.String(), "opsgenie alert already closed or unknown") {
		t.Errorf("expected an info line:\n%s", logs.String())
	}
}

func TestPriorityTagsLimits(t *testing.T) {
	for sev, want := range map[int]string{0: "P1", 1: "P1", 2: "P2", 3: "P3", 4: "P4", 5: "P5", 9: "P5"} {
		if got := priority(sev); got != want {
			t.Errorf("priority(%d) = %s, want %s", sev, got, want)
		}
	}
	og := newFakeOpsgenie(t)
	n := newNotifier(t, ogConfig(og.URL, ""), notifytest.Env(t.TempDir(), nil))
	ev := notifytest.DeviceDown()
	ev.Severity = 4
	ev.Description = strings.Repeat("d", 20000)
	ev.Device.Site = strings.Repeat("s", 80)
	ev.Device.Role = ""
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatalf("long fields must be cut to Opsgenie's limits, not rejected: %v", err)
	}
	_, alerts := og.snapshot()
	c := alerts[0].create
	if c.Priority != "P4" || len([]rune(c.Message)) != maxMessage || len([]rune(c.Description)) != maxDescription {
		t.Errorf("priority %s, message %d chars, description %d chars", c.Priority, len([]rune(c.Message)), len([]rune(c.Description)))
	}
	if len(c.Tags) != 2 || c.Tags[0] != "NETWORK-DEVICES-1-101" || len([]rune(c.Tags[1])) != maxTag {
		t.Errorf("tags = %q", c.Tags)
	}
}

func TestTemplate(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "og.tmpl", "{{ .Status }} on {{ .Device.Name }} ({{ .Device.Site }}): {{ .Description }}\n")
	og := newFakeOpsgenie(t)
	n := newNotifier(t, ogConfig(og.URL, "template_file: og.tmpl\n"), notifytest.Env(dir, nil))
	if err := n.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	if err := n.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}
	_, alerts := og.snapshot()
	a := alerts[0]
	if a.create.Description != "active on core-sw1 (HQ): core-sw1 (10.0.0.1) is unreachable" {
		t.Errorf("description = %q", a.create.Description)
	}
	if a.note != "resolved on core-sw1 (HQ): core-sw1 (10.0.0.1) is unreachable" {
		t.Errorf("close note = %q", a.note)
	}
	if a.create.Message != "[P1] Device unreachable: core-sw1 (10.0.0.1) is unreachable" {
		t.Errorf("message is not templated: %q", a.create.Message)
	}
}

func TestStatusClassification(t *testing.T) {
	httpDate := notifytest.AttemptTime.Add(42 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter)
		status     int
		retryable  bool
		retryAfter time.Duration
		reason     string
	}{
		{"422", func(w http.ResponseWriter) {
			ogAnswer(w, 422, map[string]any{"message": "Request body is not processable. Please check the errors.", "errors": map[string]string{"message": "Message can not be empty."}})
		}, 422, false, 0, "POST %s/v2/alerts: HTTP 422: Request body is not processable. Please check the errors.; message: Message can not be empty."},
		{"400", func(w http.ResponseWriter) {
			ogAnswer(w, 400, map[string]any{"message": "Could not parse request body"})
		}, 400, false, 0, "HTTP 400: Could not parse request body"},
		{"401", func(w http.ResponseWriter) { ogAnswer(w, 401, map[string]any{"message": "Could not authenticate"}) },
			401, false, 0, "HTTP 401: Could not authenticate"},
		{"403", func(w http.ResponseWriter) {
			ogAnswer(w, 403, map[string]any{"message": "You are not authorized to take this action."})
		}, 403, false, 0, "HTTP 403: You are not authorized to take this action."},
		{"429", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "12")
			ogAnswer(w, 429, map[string]any{"message": "You are making too many requests! To avoid errors, we recommend you limit requests."})
		}, 429, true, 12 * time.Second, "HTTP 429: You are making too many requests!"},
		{"429 with date", func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", httpDate)
			w.WriteHeader(429)
		}, 429, true, 42 * time.Second, "HTTP 429"},
		{"500", func(w http.ResponseWriter) { ogAnswer(w, 500, map[string]any{"message": "Internal Server Error"}) },
			500, true, 0, "HTTP 500: Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			og := newFakeOpsgenie(t)
			og.fail = func(w http.ResponseWriter, r *http.Request) bool { tt.answer(w); return true }
			n := newNotifier(t, ogConfig(og.URL, ""), notifytest.Env(t.TempDir(), nil))
			err := n.Send(context.Background(), notification(notifytest.DeviceDown()))
			notifytest.Classified{Status: tt.status, Retryable: tt.retryable, RetryAfter: tt.retryAfter,
				Reason: strings.ReplaceAll(tt.reason, "%s", og.URL)}.Check(t, err)
		})
	}
	// Only a 404 on close means "nothing open"; other close failures stay
	// failures.
	og := newFakeOpsgenie(t)
	og.fail = func(w http.ResponseWriter, r *http.Request) bool {
		ogAnswer(w, 503, map[string]any{"message": "Service Unavailable"})
		return true
	}
	if err := newNotifier(t, ogConfig(og.URL, ""), notifytest.Env(t.TempDir(), nil)).Send(context.Background(), notification(notifytest.DeviceUp())); !notify.Retryable(err) {
		t.Errorf("close answered 503: got %v, want retryable", err)
	}
}

func TestNetworkErrorsAreRetryable(t *testing.T) {
	u := notifytest.RefusedURL(t)
	n := newNotifier(t, ogConfig(u, ""), notifytest.Env(t.TempDir(), nil))
	notifytest.Unreachable(t, n, notification(notifytest.DeviceDown()), notification(notifytest.DeviceUp()))
}

func TestSecretNeverLeaks(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "key", apiKey+"\n")
	var logs notifytest.Logs
	var texts notifytest.Failures
	og := newFakeOpsgenie(t)
	ok := newNotifier(t, "name: og\ntype: opsgenie\napi_key_file: key\napi_url: "+og.URL+"\n", notifytest.Env(dir, &logs))
	if err := ok.Send(context.Background(), notification(notifytest.DeviceDown())); err != nil {
		t.Fatal(err)
	}
	if err := ok.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil {
		t.Fatal(err)
	}
	if err := ok.Send(context.Background(), notification(notifytest.DeviceUp())); err != nil { // 404: already closed
		t.Fatal(err)
	}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ogAnswer(w, http.StatusUnprocessableEntity, map[string]any{"message": "bad header " + r.Header.Get("Authorization")})
	}))
	defer echo.Close()
	texts.Add(t, newNotifier(t, ogConfig(echo.URL, ""), notifytest.Env(dir, &logs)).Send(context.Background(), notification(notifytest.DeviceDown())))
	_, err := New(notifytest.Destination(t, "name: og\ntype: opsgenie\napi_key: "+apiKey+"\napi_key_file: key\napi_url: https://x:"+apiKey+"@api.opsgenie.com\n"), notifytest.Env(dir, &logs))
	texts.Add(t, err)
	notifytest.NoSecretsIn(t, []string{apiKey}, append(texts, logs.String()))
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notifytest.WriteFile(t, dir, "key", apiKey+"\n")
	notifytest.WriteFile(t, dir, "broken.tmpl", "ok\n{{ end }}\n")
	notifytest.ConfigCases(t, New, "name: og\ntype: opsgenie\n", dir, []notifytest.ConfigCase{
		{Name: "missing key", YAML: "api_url: https://api.eu.opsgenie.com\n", Want: []string{`c.yaml:1: destination "og": api_key (or api_key_file) is required`}},
		{Name: "unknown key", YAML: "api_key: k\napikey: k\n", Want: []string{`c.yaml:4: destination "og": unknown key "apikey" (known: api_key, api_key_file, api_url, template_file)`}},
		{Name: "inline and file", YAML: "api_key: k\napi_key_file: key\n", Want: []string{`c.yaml:4: destination "og": api_key: set either the value or the _file key, not both`}},
		{Name: "file missing", YAML: "api_key_file: nope\n", Want: []string{`c.yaml:3: destination "og": api_key: reading secret file`}},
		{Name: "key with spaces", YAML: "api_key: \"GenieKey abc\"\n", Want: []string{`c.yaml:3: destination "og": api_key must not contain white space`}},
		{Name: "bad api_url", YAML: "api_key: k\napi_url: api.opsgenie.com\n", Want: []string{`c.yaml:4: destination "og": api_url api.opsgenie.com: scheme must be http or https`}},
		{Name: "broken template", YAML: "api_key: k\ntemplate_file: broken.tmpl\n", Want: []string{`c.yaml:4: destination "og": template_file: template: broken.tmpl:2: unexpected {{end}}`}},
	})
}

func TestDefaultAndEUURL(t *testing.T) {
	n := newNotifier(t, "name: og\ntype: opsgenie\napi_key: k\n", notifytest.Env(t.TempDir(), nil))
	if got := n.apiURL("/v2/alerts", nil).String(); got != "https://api.opsgenie.com/v2/alerts" {
		t.Errorf("default = %s", got)
	}
	n = newNotifier(t, ogConfig("https://api.eu.opsgenie.com/", ""), notifytest.Env(t.TempDir(), nil))
	if got := n.apiURL("/v2/alerts", nil).String(); got != "https://api.eu.opsgenie.com/v2/alerts" {
		t.Errorf("EU = %s", got)
	}
}
