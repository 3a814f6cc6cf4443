package teams

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nocbridge/nocbridge/internal/config"
	"github.com/nocbridge/nocbridge/internal/event"
	"github.com/nocbridge/nocbridge/internal/inventory"
	"github.com/nocbridge/nocbridge/internal/notify"
	"github.com/nocbridge/nocbridge/internal/notify/notifytest"
)

const (
	// The shape of a Workflows trigger URL; sig is the credential.
	flowPath  = "/workflows/0b4c7e1d9a2f4e6b8c3d5a7f9e1b2c4d/triggers/manual/paths/invoke"
	flowQuery = "api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Wf51gS3cr3tS1gn4tur3"
)

func activeEvent() event.Event {
	return event.Event{
		InstanceID:  "5f0c2a8e-1d2b-4c3d-9e4f-0a1b2c3d4e5f",
		EventID:     "NETWORK-INTERFACES-2-301",
		Name:        "Interface GigabitEthernet1/0/1 is down on core-sw1",
		EventName:   "Interface down",
		Description: "core-sw1 GigabitEthernet1/0/1 is down",
		Category:    "ALERT",
		Domain:      "Connectivity",
		SubDomain:   "Interfaces",
		Severity:    2,
		Source:      "trap",
		Timestamp:   time.UnixMilli(1763840000000).UTC(),
		Status:      event.StatusActive,
		Device:      inventory.Device{Name: "core-sw1", Address: "10.0.0.1", Site: "HQ", Role: "core"},
		Key:         "GigabitEthernet1/0/1",
	}
}

func resolvedEvent() event.Event {
	e := activeEvent()
	e.Status = event.StatusResolved
	e.Timestamp = e.Timestamp.Add(90 * time.Second)
	return e
}

func notification(ev event.Event) notify.Notification {
	return notify.Notification{ID: ev.NotificationID("noc-teams"), Event: ev, Attempt: 1}
}

// newFakeWorkflow answers like a Workflows trigger: 202 Accepted for the
// right path and signature, 401 otherwise; queued replies override that.
func newFakeWorkflow(t *testing.T) *notifytest.Server {
	return notifytest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == flowPath && r.URL.Query().Get("sig") == "Wf51gS3cr3tS1gn4tur3" {
			notifytest.Reply{Status: http.StatusAccepted}.Write(w)
			return
		}
		notifytest.Reply{Status: 401, Body: `{"error":{"code":"DirectApiAuthorizationRequired","message":"The request must be authenticated only by Shared Access scheme."}}`}.Write(w)
	}))
}

func flowYAML(base string) string {
	return "name: noc-teams\ntype: teams\nurl: \"" + base + flowPath + "?" + flowQuery + "\"\n"
}

func newNotifier(t *testing.T, d config.Destination, dir string, logs *notifytest.Logs) *Notifier {
	t.Helper()
	return notifytest.New[*Notifier](t, New, d, notifytest.TextEnv(dir, logs))
}

// TestGolden: the firing card, then the resolve as a card marked resolved.
func TestGolden(t *testing.T) {
	f := newFakeWorkflow(t)
	n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)), t.TempDir(), nil)
	for _, ev := range []event.Event{activeEvent(), resolvedEvent()} {
		if err := n.Send(context.Background(), notification(ev)); err != nil {
			t.Fatalf("Send %s: %v", ev.Status, err)
		}
	}
	reqs := f.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.Path != flowPath || r.RawQuery != flowQuery ||
			r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != notifytest.UserAgent {
			t.Errorf("request %d: %s %s Content-Type=%q User-Agent=%q", i, r.Method, r.Path, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
		}
	}
	notifytest.GoldenJSON(t, "active.json", reqs[0].Body)
	notifytest.GoldenJSON(t, "resolved.json", reqs[1].Body)

	var m message
	if err := json.Unmarshal(reqs[1].Body, &m); err != nil {
		t.Fatal(err)
	}
	band := m.Attachments[0].Content.Body[0].(map[string]any)
	title := band["items"].([]any)[0].(map[string]any)
	if band["style"] != "good" || title["color"] != "good" || title["text"] != "RESOLVED: Interface GigabitEthernet1/0/1 is down on core-sw1" {
		t.Errorf("resolved card not marked resolved: %v", band)
	}
}

func TestSeverityColours(t *testing.T) {
	for sev, want := range map[int]string{1: "attention", 2: "attention", 3: "warning", 4: "accent", 5: "default"} {
		ev := activeEvent()
		ev.Severity = sev
		if got := severityStyle(ev); got != want {
			t.Errorf("severity %d: %s, want %s", sev, got, want)
		}
	}
}

func TestTemplateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "teams.tmpl"), []byte("**{{ .Device.Name }}** ({{ .Device.Site }}): {{ .Description }} on {{ .Key }} — {{ .Status }}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeWorkflow(t)
	n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)+"template_file: teams.tmpl\n"), dir, nil)
	if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
		t.Fatal(err)
	}
	notifytest.GoldenJSON(t, "template.json", f.Requests()[0].Body)
}

func TestLongTextTruncated(t *testing.T) {
	f := newFakeWorkflow(t)
	n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)), t.TempDir(), nil)
	ev := activeEvent()
	ev.Description = strings.Repeat("Schnittstelle ausgefallen — ü ", 2000)
	if err := n.Send(context.Background(), notification(ev)); err != nil {
		t.Fatal(err)
	}
	var m message
	body := f.Requests()[0].Body
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	text := m.Attachments[0].Content.Body[1].(map[string]any)["text"].(string)
	if len(text) > MaxTextBytes || !utf8.ValidString(text) || !strings.HasSuffix(text, truncatedMark) {
		t.Errorf("text of %d bytes (valid UTF-8 %v), limit %d", len(text), utf8.ValidString(text), MaxTextBytes)
	}
	if len(body) > 28<<10 {
		t.Errorf("message of %d bytes exceeds Teams' 28 KB", len(body))
	}
}

func TestRateLimit(t *testing.T) {
	f := newFakeWorkflow(t)
	f.Queue(notifytest.Reply{Status: 429, Header: map[string]string{"Retry-After": "30"}, Body: `{"error":{"code":"WorkflowRequestsThrottled","message":"Number of workflow requests exceeded the limit."}}`})
	n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)), t.TempDir(), nil)
	err := n.Send(context.Background(), notification(activeEvent()))
	var ne *notify.Error
	if !errors.As(err, &ne) || !ne.Retryable || ne.RetryAfter != 30*time.Second || ne.Status != 429 {
		t.Fatalf("got %#v, want retryable 429 after 30s", err)
	}
	if !strings.Contains(ne.Reason, "WorkflowRequestsThrottled: Number of workflow requests exceeded the limit.") {
		t.Errorf("reason %q", ne.Reason)
	}
}

func TestErrorClassification(t *testing.T) {
	tests := []notifytest.StatusCase{
		{Name: "200 ok", Reply: notifytest.Reply{Status: 200}},
		{Name: "202 accepted", Reply: notifytest.Reply{Status: 202}},
		{Name: "400 schema", Reply: notifytest.Reply{Status: 400, Body: `{"error":{"code":"TriggerInputSchemaMismatch","message":"The input body for trigger 'manual' of type 'Request' did not match its schema definition."}}`}, WantReason: "HTTP 400: TriggerInputSchemaMismatch: The input body for trigger"},
		{Name: "401 bad signature", Reply: notifytest.Reply{Status: 401, Body: `{"error":{"code":"DirectApiInvalidAuthorizationSignature","message":"The provided SAS signature is invalid."}}`}, WantReason: "HTTP 401: DirectApiInvalidAuthorizationSignature"},
		{Name: "404 deleted flow", Reply: notifytest.Reply{Status: 404, Body: `{"error":{"code":"WorkflowNotFound","message":"The workflow was not found."}}`}, WantReason: "HTTP 404: WorkflowNotFound"},
		{Name: "500", Reply: notifytest.Reply{Status: 500, Body: `{"error":{"message":"Internal error"}}`}, Retryable: true, WantReason: "HTTP 500: Internal error"},
		{Name: "502 text", Reply: notifytest.Reply{Status: 502, Body: "Bad Gateway"}, Retryable: true, WantReason: "HTTP 502: Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.Name, func(t *testing.T) {
			f := newFakeWorkflow(t)
			f.Queue(tt.Reply)
			n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)), t.TempDir(), nil)
			tt.Check(t, n.Send(context.Background(), notification(activeEvent())), "teams workflow "+f.URL)
		})
	}
}

// TestSecretsNeverLeak: the trigger URL's signature and path must stay out
// of errors and logs on every path.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"Wf51gS3cr3tS1gn4tur3", "0b4c7e1d9a2f4e6b8c3d5a7f9e1b2c4d"}
	check := func(t *testing.T, err error, logs *notifytest.Logs) {
		t.Helper()
		notifytest.NoSecrets(t, secrets, err, logs.String())
	}
	t.Run("success", func(t *testing.T) {
		f := newFakeWorkflow(t)
		logs := &notifytest.Logs{}
		n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)), dir, logs)
		if err := n.Send(context.Background(), notification(activeEvent())); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "teams card accepted") {
			t.Fatalf("debug log not captured")
		}
		check(t, nil, logs)
	})
	t.Run("status error", func(t *testing.T) {
		f := newFakeWorkflow(t)
		f.Queue(notifytest.Reply{Status: 500, Body: "boom"})
		logs := &notifytest.Logs{}
		n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)), dir, logs)
		err := n.Send(context.Background(), notification(activeEvent()))
		if err == nil {
			t.Fatal("expected an error")
		}
		check(t, err, logs)
	})
	notifytest.NetworkFailures(t, secrets, func(t *testing.T, base, extra string, logs *notifytest.Logs) error {
		n := newNotifier(t, notifytest.Destination(t, flowYAML(base)+extra), dir, logs)
		return n.Send(context.Background(), notification(activeEvent()))
	})
	t.Run("config errors", func(t *testing.T) {
		for _, y := range []string{
			"url: \"ftp://h" + flowPath + "?" + flowQuery + "\"\n",
			"url: \"http://h" + flowPath + "?" + flowQuery + "%zz\\x7f\"\n",
		} {
			_, err := New(notifytest.Destination(t, "name: t\ntype: teams\n"+y), notify.Env{ConfigFile: "c.yaml", BaseDir: dir})
			if err == nil {
				t.Fatalf("%q: expected an error", y)
			}
			check(t, err, &notifytest.Logs{})
		}
	})
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"flow":        "https://prod-00.westeurope.logic.azure.com" + flowPath + "?" + flowQuery + "\n",
		"broken.tmpl": "{{ .Name | nosuchfunc }}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notifytest.ConfigCases(t, New, "name: t\ntype: teams\n", dir, []notifytest.ConfigCase{
		{Name: "missing url", YAML: "template_file: x\n", Want: []string{`c.yaml:1: destination "t": url is required`, `c.yaml:3: destination "t": template_file: open `}},
		{Name: "unknown key", YAML: "url_file: flow\nwebhook_url: x\n", Want: []string{`c.yaml:4: destination "t": unknown key "webhook_url" (known: template_file, url, url_file)`}},
		{Name: "url and url_file", YAML: "url: https://x.logic.azure.com/w\nurl_file: flow\n", Want: []string{`c.yaml:4: destination "t": url: set either the value or the _file key, not both`}},
		{Name: "url_file missing", YAML: "url_file: nope\n", Want: []string{`c.yaml:3: destination "t": url: reading secret file`}},
		{Name: "scheme", YAML: "url: x.logic.azure.com/w\n", Want: []string{`c.yaml:3: destination "t": url must be an http or https URL`}},
		{Name: "host", YAML: "url: https:///w\n", Want: []string{`c.yaml:3: destination "t": url is missing a host`}},
		{Name: "broken template", YAML: "url_file: flow\ntemplate_file: broken.tmpl\n", Want: []string{`c.yaml:4: destination "t": template_file: template: broken.tmpl:1: function "nosuchfunc" not defined`}},
	})
}

func TestCloseDropsIdleConnections(t *testing.T) {
	notifytest.ClosesIdleConnections(t, notifytest.Reply{Status: http.StatusAccepted}, func(base string) notify.Notifier {
		return newNotifier(t, notifytest.Destination(t, flowYAML(base)), t.TempDir(), nil)
	}, notification(activeEvent()))
}

// TestDigestGolden: one card per digest, to the Workflow like any card.
func TestDigestGolden(t *testing.T) {
	f := newFakeWorkflow(t)
	n := newNotifier(t, notifytest.Destination(t, flowYAML(f.URL)), t.TempDir(), nil)
	want := notifytest.Want{Method: http.MethodPost, Path: flowPath, RawQuery: flowQuery, Header: map[string]string{"Content-Type": "application/json", "User-Agent": notifytest.UserAgent}}
	notifytest.ServerDigestGoldens(t, "", f, want, n.SendDigest)
}

// TestDigestLimits: a digest of long names stays under the ~28 KB Teams
// accepts, the lines past MaxTextBytes counted instead of listed.
func TestDigestLimits(t *testing.T) {
	d := notifytest.LongDigest(60, strings.Repeat("名", 300))
	for i := range d.Notifications {
		d.Notifications[i].Event.Device.Name = strings.Repeat("d", 300)
	}
	body, err := json.Marshal(renderDigest(d, notify.DefaultDigest, notifytest.ExternalURL))
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > 28<<10 {
		t.Errorf("card of %d bytes, Teams refuses more than about 28 KB", len(body))
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, b := range m.Attachments[0].Content.Body[1 : len(m.Attachments[0].Content.Body)-1] { // the band and the id left out
		lines = append(lines, b.(map[string]any)["text"].(string))
	}
	if listed := notifytest.Listed(t, d, lines, notify.NewDigestView(d, notify.DefaultDigest, notifytest.ExternalURL).MarkdownMore); listed < 10 || listed == notify.MaxDigestEntries {
		t.Errorf("%d listed: want MaxTextBytes to bound the list", listed)
	}
}

func TestDigestKey(t *testing.T) {
	notifytest.DigestKey(t, New, flowYAML("https://prod.example.com"))
}
